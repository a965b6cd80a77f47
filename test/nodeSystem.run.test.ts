import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderStorageLayout } from "../components/storage/layout";
import { localStorage, runProgram, tempRoot } from "./helpers/run";

/**
 * What a node must run (issue 21, item 6): as root, a program stops before its first step, in
 * one sentence, on a system that is not Debian or Ubuntu. Real runs as root; the other system
 * is an /etc/os-release bound over this machine's in a mount namespace of the program's own.
 */
const dir = mkdtempSync(join(tmpdir(), "modelshare-os-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runAs(osRelease: string) {
  const file = join(dir, `os-release-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, osRelease);
  const root = tempRoot();
  const program = renderStorageLayout(localStorage({ root, owner: { uid: 1000, gid: 1000 } }));
  const r = runProgram(program, "converge", {
    wrap: ["unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind ${file} /etc/os-release && exec "$@"`, "sh"],
  });
  return { ...r, root };
}

describe("the system a node runs", () => {
  it("refuses one that is not Debian or Ubuntu before changing anything, naming it", () => {
    const r = runAs('PRETTY_NAME="Fedora Linux 40"\nID=fedora\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^modelshare: \S+ \(Fedora Linux 40\) is not Debian or Ubuntu; modelshare manages Debian and Ubuntu nodes \(apt; systemd where it installs services; tested on Debian 12\), so nothing was changed here\.\n$/,
    );
    expect(existsSync(r.root)).toBe(false);
  });

  it("takes Debian, and a system like it (ID_LIKE), as it is", () => {
    expect(runAs('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n').code).toBe(0);
    const mint = runAs('PRETTY_NAME="Linux Mint 22"\nID=linuxmint\nID_LIKE="ubuntu debian"\n');
    expect(mint.code, mint.stderr).toBe(0);
    expect(existsSync(mint.root)).toBe(true);
  });
});
