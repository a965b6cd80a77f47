import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderNfsCache } from "../components/cache/cachefilesd";
import { parseSite } from "../components/config";
import { commandFor, type Verb } from "../components/shell/script";
import { OWNER, asOwner } from "./helpers/attack";
import { sh } from "./helpers/run";
import { seedsWithNfs } from "./fixtures/site";

/**
 * The cache program run for real on this machine, as root, with the system around it stood in
 * for: systemctl, modprobe, dpkg-query and journalctl are scripts that record their calls, the
 * kernel's cache list is a file, and /etc/modelshare and /etc/systemd/system are folders of the
 * test's bound over a copy of /etc (unshare -m), so nothing of this machine's /etc is touched. The folder, its
 * marker, the refusals and what destroy empties are real. (The lab runs the real daemon.)
 */
const base = mkdtempSync("/var/cache/modelshare-test-"); // root's, like a real cache's place
chmodSync(base, 0o755); // the storage owner may look, as in /var/cache
// The runs see a copy of this machine's /etc (bound over it in their own mount namespace), in
// which the two system folders they mount over exist: the machine's /etc is never written.
const etcCopy = join(base, "etc");
sh(`cp -a /etc/. ${etcCopy}/ && mkdir -p ${etcCopy}/modelshare ${etcCopy}/systemd/system`);
afterAll(() => sh(`rm -rf --one-file-system ${base}`));

interface World {
  dir: string;
  stub: string;
  run: (verb?: Verb, cacheDir?: string) => { code: number; stdout: string; stderr: string; changed: number };
  calls: () => string[];
  etc: string;
}

let worlds = 0;
function world(opts: { kernel?: boolean } = {}): World {
  const at = join(base, `w${++worlds}`);
  const stub = join(at, "stub");
  const etc = join(at, "etc");
  mkdirSync(join(stub, "bin"), { recursive: true, mode: 0o755 });
  chmodSync(at, 0o755);
  mkdirSync(join(etc, "modelshare"), { recursive: true });
  mkdirSync(join(etc, "systemd"), { recursive: true });
  // Another of modelshare's files there (the env file): the folder is a mount point here, which
  // destroy's rmdir of an emptied /etc/modelshare could not remove.
  writeFileSync(join(etc, "modelshare/env"), "MODELSHARE_MODELS=/mnt/modelshare\n");
  const tool = (name: string, body: string) =>
    writeFileSync(join(stub, "bin", name), `#!/bin/bash\necho "${name} $*" >> ${stub}/calls\n${body}\n`, { mode: 0o755 });
  tool(
    "systemctl",
    [
      "unit=${*: -1}",
      "case $1 in",
      `  is-enabled) [ -e ${stub}/enabled-"$unit" ] ;;`,
      `  is-active) [ -e ${stub}/active-"$unit" ] ;;`,
      `  enable) touch ${stub}/enabled-"$unit" ;;`,
      `  start|restart) touch ${stub}/active-"$unit" ;;`,
      `  stop) rm -f ${stub}/active-"$unit" ;;`,
      `  disable) rm -f ${stub}/enabled-"$unit" ${stub}/active-"$unit" ;;`,
      "esac",
    ].join("\n"),
  );
  // As modprobe answers: -n -v names the module file it would insert; a plain load succeeds.
  tool("modprobe", opts.kernel === false ? "exit 1" : 'case " $* " in *" -n "*) echo "insmod /lib/modules/6.1.0/kernel/fs/cachefiles/cachefiles.ko" ;; esac');
  tool("dpkg-query", "echo installed");
  tool("journalctl", "echo 'cachefilesd: the last words'");
  // The kernel lists the cache once the daemon runs.
  writeFileSync(join(stub, "caches"), "");
  const dir = join(at, "cache");
  const run = (verb: Verb = "converge", cacheDir = dir) => {
    const site = parseSite({ ...seedsWithNfs(), nfs: { ...seedsWithNfs().nfs, cache: { enabled: true, dir: cacheDir } } }, { homedir: "/home/ada" });
    const program = renderNfsCache(site.nfs.cache, site.storage);
    // The world's own folders over the two system ones, in this run's mount namespace only.
    const inside = `mount --bind ${etcCopy} /etc && mount --bind ${etc}/modelshare /etc/modelshare && mount --bind ${etc}/systemd /etc/systemd/system && ${commandFor(verb)}`;
    const r = spawnSync("unshare", ["-m", "--propagation", "private", "bash", "-c", inside], {
      encoding: "utf8",
      input: program,
      env: { ...process.env, PATH: `${stub}/bin:${process.env.PATH}`, MODELSHARE_FSCACHE_CACHES: join(stub, "caches"), MODELSHARE_CACHE_WAIT: "2" },
      timeout: 120_000,
    });
    const last = /changed=(\d+)\s*$/.exec(r.stdout ?? "");
    return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", changed: last ? Number(last[1]) : NaN };
  };
  const calls = () => (existsSync(join(stub, "calls")) ? readFileSync(join(stub, "calls"), "utf8").trim().split("\n") : []);
  return { dir, stub, run, calls, etc };
}

/** The stub daemon binds its cache when started: the kernel's list shows it from then on. */
const bind = (w: World) => writeFileSync(join(w.stub, "caches"), "Cache modelshare\n");

describe("the cache program, run for real", () => {
  it("makes the folder root's 0700 with its marker, writes config and unit, starts the daemon; a second run changes nothing", () => {
    const w = world();
    bind(w);
    const first = w.run();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`changed: made ${w.dir}`);
    expect(first.stdout).toContain("changed: started modelshare-cachefilesd.service");
    const st = statSync(w.dir);
    expect([st.uid, (st.mode & 0o7777).toString(8)]).toEqual([0, "700"]);
    expect(readFileSync(join(w.dir, ".modelshare-cache"), "utf8")).toMatch(/^modelshare: FS-Cache data/);
    expect(readFileSync(join(w.etc, "modelshare/cachefilesd.conf"), "utf8")).toContain(`dir ${w.dir}\ntag modelshare\n`);
    expect(readFileSync(join(w.etc, "systemd/modelshare-cachefilesd.service"), "utf8")).toContain(
      "ExecStart=/sbin/cachefilesd -n -s -f /etc/modelshare/cachefilesd.conf",
    );
    const second = w.run();
    expect(second.code, second.stderr).toBe(0);
    expect(second.changed).toBe(0);
    expect(w.run("check").stdout).toMatch(new RegExp(`^report: cache \\d+ \\d+ ${w.dir}$`, "m"));
  });

  it("a daemon that does not bring its cache up stops the run with its last words", () => {
    const w = world();
    const r = w.run();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cachefilesd: the last words");
    expect(r.stderr).toContain("modelshare: cachefilesd did not bring up the cache (modelshare-cachefilesd.service, its last lines are above)");
  });

  it("a changed config restarts the daemon once; a folder moved elsewhere: the old one is emptied and gone", () => {
    const w = world();
    bind(w);
    expect(w.run().code).toBe(0);
    mkdirSync(join(w.dir, "cache/@4/a"), { recursive: true });
    writeFileSync(join(w.dir, "cache/@4/a/blob"), "cached bytes");
    const moved = `${w.dir}-nvme`;
    const r = w.run("converge", moved);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("changed: restarted modelshare-cachefilesd.service");
    expect(r.stdout).toContain(`changed: emptied ${w.dir}/cache`);
    expect(existsSync(w.dir)).toBe(false);
    expect(readFileSync(join(moved, ".modelshare-cache"), "utf8")).toMatch(/^modelshare:/);
    expect(w.run("converge", moved).changed).toBe(0);
  });

  it("a kernel without CacheFiles: one sentence, nothing made or installed, and check says the mount is uncached", () => {
    const w = world({ kernel: false });
    const r = w.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.changed).toBe(0);
    expect(r.stdout).toMatch(/^this kernel cannot cache NFS reads \(no CacheFiles module: CONFIG_CACHEFILES\); \S+ mounts the storage uncached$/m);
    expect(existsSync(w.dir)).toBe(false);
    expect(w.calls().filter((c) => !c.startsWith("modprobe"))).toEqual([]);
    expect(w.run("check").stdout).toMatch(/^report: cache-off 0 0 \S+$/m);
  });

  it("destroy stops and removes the daemon's unit and config, empties the cache it made, and leaves a folder it did not make", () => {
    const w = world();
    bind(w);
    expect(w.run().code).toBe(0);
    mkdirSync(join(w.dir, "graveyard/x"), { recursive: true });
    mkdirSync(join(w.dir, "cache/y"), { recursive: true });
    writeFileSync(join(w.dir, "cache/y/blob"), "cached");
    const r = w.run("remove");
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(w.dir)).toBe(false);
    expect(existsSync(join(w.etc, "modelshare/cachefilesd.conf"))).toBe(false);
    expect(existsSync(join(w.etc, "systemd/modelshare-cachefilesd.service"))).toBe(false);
    expect(w.calls()).toContain("systemctl disable --now --quiet -- modelshare-cachefilesd.service");
    // A folder without the marker (the admin's own, named by mistake) keeps every file.
    mkdirSync(join(w.dir, "cache"), { recursive: true, mode: 0o700 });
    writeFileSync(join(w.dir, "cache/keep"), "the admin's");
    const again = w.run("remove");
    expect(again.stdout).toContain(`left ${w.dir}: it has no .modelshare-cache, so modelshare did not make it`);
    expect(readFileSync(join(w.dir, "cache/keep"), "utf8")).toBe("the admin's");
  });
});

describe("the cache folder, attacked as the storage owner (uid 1000: every SMB user and container)", () => {
  it("a folder above the cache that the owner holds: refused before anything is installed or made", () => {
    const w = world();
    const mine = join(base, `owned${worlds}`);
    mkdirSync(mine, { mode: 0o755 });
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${mine}`);
    const r = w.run("converge", join(mine, "cache"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`modelshare: ${mine}, above nfs.cache.dir (${mine}/cache), belongs to uid ${OWNER.uid}`);
    expect(readdirSync(mine)).toEqual([]);
    expect(w.calls().filter((c) => /^(dpkg-query|systemctl)/.test(c))).toEqual([]);
  });

  it("a folder above it that others may write, or a link on the way: refused", () => {
    const w = world();
    const open = join(base, `open${worlds}`);
    mkdirSync(open);
    sh(`chmod 0777 ${open}`);
    expect(w.run("converge", join(open, "cache")).stderr).toContain(
      `${open}, above nfs.cache.dir (${open}/cache), may be written by others than root (mode 777)`,
    );
    const link = join(base, `link${worlds}`);
    symlinkSync("/etc", link);
    expect(w.run("converge", join(link, "cache")).stderr).toContain(`${link}, above nfs.cache.dir (${link}/cache), is a symbolic link (to /etc)`);
    expect(existsSync("/etc/cache")).toBe(false);
  });

  it("the cache folder made by the owner beforehand (with a forged marker and a link to a victim): converge refuses, destroy leaves it and the victim whole", () => {
    const w = world();
    const victim = mkdtempSync(join(base, "victim-"));
    writeFileSync(join(victim, "precious"), "root's file");
    // The owner can only do this where root lets it; here root made the folder the owner's.
    mkdirSync(w.dir, { mode: 0o700 });
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${w.dir}`);
    asOwner(`echo forged > ${w.dir}/.modelshare-cache && ln -s ${victim} ${w.dir}/cache`);
    const r = w.run();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`modelshare: ${w.dir} (nfs.cache.dir) belongs to uid ${OWNER.uid}, not root`);
    const gone = w.run("remove");
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toContain(`left ${w.dir}: it is not root's`);
    expect(readFileSync(join(victim, "precious"), "utf8")).toBe("root's file");
    expect(lstatSync(join(w.dir, "cache")).isSymbolicLink()).toBe(true);
  });

  it("a folder of someone else's files named as the cache: refused, nothing emptied", () => {
    const w = world();
    mkdirSync(w.dir, { mode: 0o700 });
    writeFileSync(join(w.dir, "notes.txt"), "mine");
    const r = w.run();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${w.dir} (nfs.cache.dir) holds files modelshare did not put there`);
    expect(readFileSync(join(w.dir, "notes.txt"), "utf8")).toBe("mine");
  });
});
