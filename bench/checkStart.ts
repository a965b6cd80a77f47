/**
 * `npm run check` as a user runs it (a fresh `tsx ops/cli.ts check <stack>` process, without npm's
 * own start), timed from
 * its start to its first TCP connection (the first SSH dial: what a user waits for before any
 * node is asked) and to its end. A stand-in `pulumi` on PATH answers the Automation API with
 * the stack's config (the real CLI cannot run here), so the figure leaves out the real CLI's
 * own start-up (two `pulumi` runs, each ~1 s with a file backend).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quote } from "../components/shell/quote";

const STAND_IN = (configJson: string) => `#!/bin/sh
case "$1" in
  version) echo v3.265.0 ;;
  config) cat ${quote(configJson)} ;;
  *) ;;
esac
`;

export interface CheckStart {
  /** Seconds from the process's start to its first connection (NaN: it made none). */
  firstConnectionS: number;
  wallS: number;
  exit: number | null;
}

export function measureCheckStart(stack: string, config: Record<string, string>, secretKeys: string[]): CheckStart {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-bench-check-"));
  try {
    const configJson = join(dir, "config.json");
    writeFileSync(configJson, JSON.stringify(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, { value: v, secret: secretKeys.includes(k) }]))));
    writeFileSync(join(dir, "pulumi"), STAND_IN(configJson));
    chmodSync(join(dir, "pulumi"), 0o755);
    const env = {
      ...process.env,
      PATH: `${dir}:${process.env.PATH}`,
      NODE_OPTIONS: `--require ${join(__dirname, "firstConnect.cjs")}`,
      PULUMI_BACKEND_URL: `file://${dir}`,
      PULUMI_CONFIG_PASSPHRASE: "",
    };
    const t0 = Date.now();
    const r = spawnSync(join("node_modules", ".bin", "tsx"), ["ops/cli.ts", "check", stack], { cwd: join(__dirname, ".."), env, encoding: "utf8" });
    const wallS = (Date.now() - t0) / 1000;
    const at = /bench: first connection at (\d+)/.exec(r.stderr);
    if (r.status !== 0 && r.status !== 1) process.stderr.write(r.stderr);
    return { firstConnectionS: at ? (Number(at[1]) - t0) / 1000 : NaN, wallS, exit: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
