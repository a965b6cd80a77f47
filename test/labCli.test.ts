import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * A PATH holding every command of the system's bin folders except the missing ones, plus
 * do-nothing stand-ins for the lab's run tools (so the check under test is reached on a
 * machine without QEMU too).
 */
function pathWithout(...missing: string[]): string {
  const bin = join(mkdtempSync(join(tmpdir(), "modelshare-path-")), "bin");
  mkdirSync(bin);
  for (const tool of ["qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "mkfs.ext4", "ip"]) {
    if (!missing.includes(tool)) writeFileSync(join(bin, tool), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  }
  for (const dir of ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    for (const name of readdirSync(dir)) {
      if (missing.includes(name)) continue;
      try {
        symlinkSync(join(dir, name), join(bin, name));
      } catch {
        /* the same name from an earlier dir wins */
      }
    }
  }
  return bin;
}

const lab = (args: string[], env: NodeJS.ProcessEnv = {}, user?: string) => {
  const labDir = mkdtempSync(join(tmpdir(), "modelshare-labdir-"));
  const argv = user ? ["runuser", "-u", user, "--", "bash", "lab/lab.sh", ...args] : ["bash", "lab/lab.sh", ...args];
  return spawnSync(argv[0], argv.slice(1), { encoding: "utf8", env: { ...process.env, MODELSHARE_LAB_DIR: labDir, ...env } });
};

describe("lab/lab.sh refuses clearly when a prerequisite is missing", () => {
  it("not root", () => {
    const r = lab(["up"], {}, "nobody");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("lab: error: the lab needs root");
  });

  it("no QEMU, naming the package to install", () => {
    const r = lab(["up", "1"], { PATH: pathWithout("qemu-system-x86_64") });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("'qemu-system-x86_64' is missing: install the Debian package 'qemu-system-x86'");
  });

  it("no debootstrap when the image must be built", () => {
    const r = lab(["up", "1"], { PATH: pathWithout("debootstrap") });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("'debootstrap' is missing: install the Debian package 'debootstrap'");
  });

  it("a bad node count or an unknown command", () => {
    expect(lab(["up", "12"]).stderr).toContain("N must be between 1 and 9");
    expect(lab(["explode"]).status).not.toBe(0);
  });
});
