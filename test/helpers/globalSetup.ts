import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The unit suite leaves the machine as it found it (issue 21, item 8): every temp folder a test
 * makes (mkdtemp under os.tmpdir()) goes into one folder of this run's, removed at the end, and
 * the environment file a converge as root writes goes there instead of /etc/modelshare/env
 * (MODELSHARE_ENV_FILE). 0755, like /tmp without its sticky bit: the storage owner's steps must
 * reach the temp roots inside it.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-tests-"));
  chmodSync(dir, 0o755);
  process.env.TMPDIR = dir;
  process.env.MODELSHARE_ENV_FILE = join(dir, "etc", "modelshare", "env");
  return () => rmSync(dir, { recursive: true, force: true });
}
