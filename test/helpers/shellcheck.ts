import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** shellcheck's findings for the scripts, at every severity; "" when clean. */
export function shellcheck(scripts: string[], extra: readonly string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-sc-"));
  const files = scripts.map((text, i) => {
    const f = join(dir, `script-${i}.sh`);
    writeFileSync(f, text);
    return f;
  });
  const r = spawnSync("shellcheck", ["--shell=bash", "--severity=style", ...extra, ...files], { encoding: "utf8" });
  if (r.error) throw new Error("shellcheck is not installed (Debian package shellcheck)");
  rmSync(dir, { recursive: true });
  return r.stdout + r.stderr;
}
