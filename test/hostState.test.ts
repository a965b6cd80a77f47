import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hostChanges, hostState } from "./helpers/hostState";

// The global setup's host check (issue 21, item 8) on a pretend /etc and /tmp: each kind of
// change a test could make is seen, and another job's files in /tmp are not counted.
describe("the host-untouched check", () => {
  let root: string;
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const pretend = () => {
    root = mkdtempSync(join(tmpdir(), "modelshare-host-"));
    const etc = join(root, "etc");
    const tmp = join(root, "tmp");
    mkdirSync(join(etc, "modelshare"), { recursive: true });
    mkdirSync(tmp);
    writeFileSync(join(etc, "passwd"), "root:x:0:0::/root:/bin/bash\n");
    symlinkSync("../proc/self/mounts", join(etc, "mtab"));
    return { etc, tmp, state: () => hostState(etc, tmp) };
  };

  it("sees nothing when nothing changed, and every write, chmod, new or removed name under /etc", () => {
    const { etc, state } = pretend();
    const before = state();
    expect(hostChanges(before, state())).toEqual([]);

    writeFileSync(join(etc, "modelshare", "env"), "X=1\n");
    chmodSync(join(etc, "passwd"), 0o600);
    unlinkSync(join(etc, "mtab"));
    const changes = hostChanges(before, state());
    expect(changes).toContain(`${join(etc, "modelshare", "env")} was made`);
    expect(changes.some((l) => l.startsWith(`${join(etc, "passwd")} changed`))).toBe(true);
    expect(changes).toContain(`${join(etc, "mtab")} was removed`);
  });

  it("counts the suite's own names left in /tmp, not another job's", () => {
    const { tmp, state } = pretend();
    const before = state();
    mkdirSync(join(tmp, "modelshare-test-abc"));
    mkdirSync(join(tmp, "tmp.Xy12"));
    mkdirSync(join(tmp, "someone-elses-build"));
    expect(hostChanges(before, state())).toEqual([`/tmp/modelshare-test-abc left behind`, `/tmp/tmp.Xy12 left behind`]);
  });
});
