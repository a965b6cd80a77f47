/**
 * How many modules loading a file pulls in, and how many of them are Pulumi's: the plan and the
 * renderers are meant to be pure (no Pulumi), so that `npm run check` and the tests load little.
 * Usage: npx tsx bench/modules.ts components/plan.ts [more files…]; prints one line per file, each
 * in a fresh process so the counts do not mix.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

if (process.argv[2] === "--one") {
  require(resolve(process.argv[3]));
  const loaded = Object.keys(require.cache);
  console.log(`modules file=${process.argv[3]} loaded=${loaded.length} pulumi=${loaded.filter((m) => m.includes("/@pulumi/")).length}`);
} else {
  for (const file of process.argv.slice(2)) {
    const r = spawnSync(process.execPath, [...process.execArgv, __filename, "--one", file], { encoding: "utf8" });
    process.stdout.write(r.status === 0 ? r.stdout : `modules file=${file} failed: ${r.stderr.split("\n")[0]}\n`);
  }
}
