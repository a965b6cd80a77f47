import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostChanges, hostState } from "./hostState";

/**
 * The unit suite leaves the machine as it found it (issue 21, item 8): every temp folder a test
 * makes (mkdtemp under os.tmpdir(), mktemp in a script) goes into one folder of this run's,
 * removed at the end, and the environment file a converge as root writes goes there instead of
 * /etc/modelshare/env (MODELSHARE_ENV_FILE). Mode 1777, as /tmp's: a program run as another user
 * keeps its lock folder in TMPDIR, and the storage owner's steps must reach the temp roots inside. At the end, /etc and /tmp are compared with
 * how they were: any difference is listed and fails the run (vitest ignores a teardown's throw,
 * so the exit code is set instead).
 */
export default function setup(): () => void {
  const before = hostState();
  const dir = mkdtempSync(join(tmpdir(), "modelshare-tests-"));
  chmodSync(dir, 0o1777);
  process.env.TMPDIR = dir;
  process.env.MODELSHARE_ENV_FILE = join(dir, "etc", "modelshare", "env");
  return () => {
    rmSync(dir, { recursive: true, force: true });
    const changes = hostChanges(before, hostState());
    if (changes.length === 0) return;
    console.error(`The tests changed the machine outside their temp folder:\n  ${changes.join("\n  ")}`);
    process.exitCode = 1;
  };
}
