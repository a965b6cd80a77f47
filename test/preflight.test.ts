import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/**
 * The Node preflight (issue 21, item 3): every main npm command runs scripts/preflight.cjs
 * first, which on a Node older than 22 stops with the one line that fixes it. Real runs with
 * this Node (22+), and with an older one when the machine has one (Debian's /usr/bin/node).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { nodeProblem } = require("../scripts/preflight.cjs") as { nodeProblem: (version: string, execPath: string) => string };
const FIX = 'export PATH="$(dirname "$(npx -y node@22 -p process.execPath)"):$PATH"';

describe("the Node preflight", () => {
  it("passes Node 22 and later, and stops an older one with the command that fixes it", () => {
    expect(nodeProblem("v22.0.0", "/x/node")).toBe("");
    expect(nodeProblem("v24.1.0", "/x/node")).toBe("");
    const old = nodeProblem("v20.20.2", "/usr/bin/node");
    expect(old).toContain("modelshare needs Node.js 22 or newer; this is v20.20.2 (/usr/bin/node).");
    expect(old.split("\n").at(-1)).toBe(`  ${FIX}`);
  });

  it("is what npm runs before dev, test, check, validate and the other commands", () => {
    const scripts = JSON.parse(readFileSync("package.json", "utf8")).scripts as Record<string, string>;
    for (const name of ["dev", "dev:preview", "dev:destroy", "test", "check", "validate", "repair", "warm", "dedupe"])
      expect(scripts[`pre${name}`], name).toBe("node scripts/preflight.cjs");
  });

  it("runs for real: this Node passes; an older Node on the machine, if any, is stopped with the fix", () => {
    expect(spawnSync(process.execPath, ["scripts/preflight.cjs"]).status).toBe(0);
    const system = spawnSync("/usr/bin/node", ["-p", "process.versions.node"], { encoding: "utf8" });
    if (system.status !== 0 || Number(system.stdout.split(".")[0]) >= 22) return; // no older Node here
    const r = spawnSync("/usr/bin/node", ["scripts/preflight.cjs"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(FIX);
  });
});
