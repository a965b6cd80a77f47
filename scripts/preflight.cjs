// Run before npm's main commands (the pre* scripts in package.json): modelshare needs Node.js
// 22 or newer (@pulumi/pulumi does), and on an older one every command fails later with words
// that do not say so. Plain CommonJS, so that any Node can run it and say what to do.
"use strict";

const NEEDED = 22;

/** What is wrong with this Node, and the one line that fixes it; "" when it will do. */
function nodeProblem(version, execPath) {
  const major = Number(String(version).replace(/^v/, "").split(".")[0]);
  if (major >= NEEDED) return "";
  return [
    `modelshare needs Node.js ${NEEDED} or newer; this is ${version} (${execPath}).`,
    `Put a Node ${NEEDED} first on this shell's PATH (fetched once from the npm registry, nothing installed system-wide), then run the command again:`,
    `  export PATH="$(dirname "$(npx -y node@${NEEDED} -p process.execPath)"):$PATH"`,
  ].join("\n");
}

module.exports = { nodeProblem };

if (require.main === module) {
  const problem = nodeProblem(process.version, process.execPath);
  if (problem) {
    process.stderr.write(`${problem}\n`);
    process.exit(1);
  }
}
