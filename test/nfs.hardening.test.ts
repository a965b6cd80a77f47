import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Storage } from "../components/config";
import { markerText, mountUnitName, READAHEAD_TAG, renderReadAheadConf, UNIT_TAG } from "../components/nfs/exports";
import { renderNfsMount } from "../components/nfs/mount";
import { nfsSchema, type Nfs } from "../components/nfs/schema";
import { call } from "../components/shell/quote";
import { renderProgram, shellLib, SYSTEM, type StorageOwner } from "../components/shell/script";
import { asOwner, decoy, OWNER } from "./helpers/attack";
import { localStorage, runProgram, tempRoot, type Run } from "./helpers/run";

/**
 * NFS as the storage owner would attack it, run for real: the export's paths (the kernel
 * resolves them again at every `exportfs -r`), the marker at the export's root, and a worker's
 * mounts. The worker side runs the rendered program with bind mounts standing in for NFS
 * mounts (a fake systemctl that starts a unit by bind-mounting What's path on Where, read-only
 * for `ro`, and a fake findmnt that names the source as an NFS client would).
 */
const WAY = shellLib("components/nfs", "way");
const SERVER = shellLib("components/nfs", "server");

/** A storage tree as the storage layout makes it: migrated (root's skeleton) or not (all the owner's). */
function tree(skeleton: "root" | "owner") {
  const root = tempRoot();
  const store = join(root, "storage-models/models");
  mkdirSync(join(store, "checkpoints"), { recursive: true });
  writeFileSync(join(store, "checkpoints/sd.safetensors"), "model-bytes\n");
  const own = skeleton === "root" ? 0 : OWNER.uid;
  for (const d of [root, dirname(store), store]) {
    chownSync(d, own, own);
    chmodSync(d, 0o755);
  }
  for (const p of [join(store, "checkpoints"), join(store, "checkpoints/sd.safetensors")]) chownSync(p, OWNER.uid, OWNER.gid);
  chmodSync(join(store, "checkpoints"), 0o775);
  return { root, store };
}

const serverSteps = (root: string, privileged: string[], owner: string[] = [], who: StorageOwner["owner"] = OWNER) =>
  runProgram(renderProgram({ title: "export paths", libs: [SYSTEM, WAY, SERVER], storage: { root, owner: who }, converge: { privileged, owner } }));
const exportPaths = (root: string, paths: string[], who: StorageOwner["owner"] = OWNER) =>
  serverSteps(
    root,
    paths.map((p) => call("nfs_export_path", p)),
    [],
    who,
  );
const refused = (r: Run, says: RegExp) => {
  expect(r.code, r.stdout).not.toBe(0);
  expect(r.stderr).toMatch(says);
};

describe("the export's paths: nothing on the way the owner could swap for a link", () => {
  it("a migrated skeleton (root's, 0755, down to the store) exports both paths, and the owner cannot rename any of them", () => {
    const { root, store } = tree("root");
    const r = exportPaths(root, [root, store]);
    expect(r.code, r.stderr).toBe(0);
    for (const victim of [store, dirname(store)]) expect(() => asOwner(`mv ${victim} ${victim}.old`)).toThrow(/Permission denied/);
  });

  it("a skeleton not yet migrated: the models export is refused naming the folder the owner can write; the root export passes (its parent is root's)", () => {
    const { root, store } = tree("owner");
    refused(
      exportPaths(root, [root, store]),
      new RegExp(
        `^modelshare: ${root} can be written by the storage owner \\(uid 1000\\), who could rename ${root}/storage-models, on the way to the exported folder ${store}, and put a link in its place between converges`,
        "m",
      ),
    );
    expect(exportPaths(root, [root]).code).toBe(0);
  });

  it("the attack itself: the owner swaps the store's parent for a link to a root-only tree; refused, nothing outside changes", () => {
    const { root, store } = tree("owner");
    const outside = decoy();
    mkdirSync(join(outside.secret, "models"));
    const before = outside.digest();
    asOwner(`mv ${root}/storage-models ${root}/storage-models.old && ln -s ${outside.secret} ${root}/storage-models`);
    refused(
      exportPaths(root, [root, store]),
      new RegExp(`^modelshare: ${root}/storage-models, on the way to the exported folder ${store}, is a symbolic link \\(to ${outside.secret}\\)`, "m"),
    );
    expect(outside.digest()).toEqual(before);
  });

  it("a parent writable through the owner's group, or by everyone, is refused; a sticky /tmp holding root's folders is not", () => {
    const { root, store } = tree("root");
    chownSync(dirname(store), 0, OWNER.gid);
    chmodSync(dirname(store), 0o775);
    refused(exportPaths(root, [store]), /storage-models can be written by the storage owner \(uid 1000\), who could rename .*storage-models\/models/);
    chownSync(dirname(store), 0, 0);
    chmodSync(dirname(store), 0o757);
    refused(exportPaths(root, [store]), /storage-models can be written by the storage owner/);
    chmodSync(dirname(store), 0o755);
    expect(exportPaths(root, [store]).code).toBe(0); // under /tmp: sticky, and the next folder is root's
  });

  it("in a sticky folder, a folder of the owner's on the way is refused (the owner may rename its own names there)", () => {
    const base = mkdtempSync(join(tmpdir(), "modelshare-sticky-"));
    chmodSync(base, 0o1777);
    const mine = join(base, "mine");
    mkdirSync(join(mine, "cw"), { recursive: true });
    chownSync(mine, OWNER.uid, OWNER.gid);
    chmodSync(mine, 0o555); // even without its write bit: the owner may chmod its own folder
    refused(
      exportPaths(join(mine, "cw"), [join(mine, "cw")]),
      new RegExp(`${base} can be written by the storage owner \\(uid 1000\\), who could rename ${mine}`),
    );
  });

  it("owner: unmanaged takes the root folder's owner: the root export passes, the models export under its folders is refused", () => {
    const { root, store } = tree("owner");
    const unmanaged = "unmanaged";
    expect(exportPaths(root, [root], unmanaged).code).toBe(0);
    refused(exportPaths(root, [store], unmanaged), /can be written by the storage owner \(uid 1000\)/);
  });
});

describe("the export's marker", () => {
  const marker = (root: string) => [join(root, ".modelshare-export"), "modelshare export here:/srv/cw"];
  const writeMarker = (root: string) => serverSteps(root, [call("nfs_root_marker", ...marker(root))], [call("nfs_owner_marker", ...marker(root))]);

  it("in the root's skeleton root writes it, never through a link the owner left there before the migration", () => {
    const { root } = tree("owner");
    const outside = decoy();
    const target = join(outside.open, "00-system.sh");
    asOwner(`ln -s ${target} ${root}/.modelshare-export.modelshare-new && echo old > ${root}/.modelshare-export`);
    chownSync(root, 0, 0); // the layout's migration
    const before = outside.digest();
    const r = writeMarker(root);
    expect(r.code, r.stderr).toBe(0);
    const st = statSync(join(root, ".modelshare-export"));
    expect([st.uid, (st.mode & 0o777).toString(8), readFileSync(join(root, ".modelshare-export"), "utf8")]).toEqual([
      0,
      "644",
      "modelshare export here:/srv/cw\n",
    ]);
    expect(outside.digest()).toEqual(before);
    expect(writeMarker(root).changed).toBe(0);
  });

  it("in a root folder the owner can write, the owner writes it (root never acts there)", () => {
    const { root } = tree("owner");
    const r = writeMarker(root);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(join(root, ".modelshare-export")).uid).toBe(OWNER.uid);
    expect(writeMarker(root).changed).toBe(0);
  });
});

// --- a worker's mounts, with bind mounts standing in for NFS ---

const FAKE_SYSTEMCTL = `#!/bin/bash
# systemctl for the tests: units in $MODELSHARE_UNIT_DIR, enablement in $FAKE/enabled, every call logged.
set -eu
printf '%s\\n' "$*" >>"$FAKE/log"
words=() now=no
for a in "$@"; do case $a in --quiet | --) ;; --now) now=yes ;; *) words+=("$a") ;; esac; done
verb=\${words[0]} unit=\${words[1]-}
field() { sed -n "s/^$1=//p" "$MODELSHARE_UNIT_DIR/$unit" | head -n 1; }
stop() { local where; where=$(field Where); if /usr/bin/findmnt -M "$where" >/dev/null; then umount -R -- "$where"; fi; }
case $verb in
  is-enabled) [ -e "$FAKE/enabled/$unit" ] ;;
  enable) touch "$FAKE/enabled/$unit" ;;
  disable) rm -f "$FAKE/enabled/$unit"; [ $now = no ] || stop ;;
  daemon-reload) ;;
  start)
    what=$(field What) where=$(field Where)
    mount --bind -- "\${what#*:}" "$where"
    case ",$(field Options)," in *,ro,*) mount -o remount,bind,ro -- "$where" ;; esac
    # As udev's nfsrahead rule does for a new NFS mount: its readahead from nfs.conf.d.
    dev=$(/usr/bin/findmnt -n -M "$where" -o MAJ:MIN | tail -n 1 | tr -d ' ')
    ra=$(sed -n 's/^nfs4=//p' "$MODELSHARE_NFS_CONF_DIR"/*.conf 2>/dev/null | tail -n 1)
    mkdir -p "$FAKE/bdi/$dev" && echo "\${ra:-128}" >"$FAKE/bdi/$dev/read_ahead_kb"
    printf '%s %s\\n' "$where" "$what" >>"$FAKE/sources" ;;
  stop) stop ;;
  *) exit 1 ;;
esac
`;
const FAKE_FINDMNT = `#!/bin/bash
# findmnt for the tests: a bind mount's SOURCE is the What its unit named, as an NFS client shows it.
args=("$@") where="" out=""
while [ $# -gt 0 ]; do case $1 in -M) where=$2; shift ;; -o) out=$2; shift ;; esac; shift; done
if [ "$out" = SOURCE ] && [ -n "$where" ]; then
  /usr/bin/findmnt -n -M "$where" >/dev/null || exit 1
  awk -v w="$where" '$1 == w { s = $2 } END { if (s) print s }' "$FAKE/sources"
  exit 0
fi
exec /usr/bin/findmnt "\${args[@]}"
`;

/** A worker: its own unit folder and fakes; the "server" is the local tree. */
function worker() {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-worker-"));
  chmodSync(dir, 0o755);
  const bin = join(dir, "bin");
  const units = join(dir, "units");
  for (const d of [bin, units, join(dir, "enabled")]) mkdirSync(d);
  writeFileSync(join(bin, "systemctl"), FAKE_SYSTEMCTL, { mode: 0o755 });
  writeFileSync(join(bin, "findmnt"), FAKE_FINDMNT, { mode: 0o755 });
  writeFileSync(join(bin, "dpkg-query"), "#!/bin/sh\necho installed\n", { mode: 0o755 });
  writeFileSync(join(dir, "sources"), "");
  writeFileSync(join(dir, "log"), "");
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    FAKE: dir,
    MODELSHARE_UNIT_DIR: units,
    MODELSHARE_NFS_CONF_DIR: join(dir, "nfs.conf.d"),
    MODELSHARE_BDI_DIR: join(dir, "bdi"),
    MODELSHARE_NFS_WAIT: "5",
    MODELSHARE_NFS_GRACE: "4",
  };
  workers.push(dir);
  return {
    dir,
    units,
    run: (program: string, verb: "converge" | "check" | "remove" = "converge") => runProgram(program, verb, { env }),
    log: () => readFileSync(join(dir, "log"), "utf8").trim().split("\n").filter(Boolean),
    enabled: () => readdirSync(join(dir, "enabled")).sort(),
    unitFiles: () => readdirSync(units).sort(),
  };
}
const workers: string[] = [];
afterAll(() => {
  // Inner mounts first: every bind mount a test left under its folders.
  const mounted = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m && workers.some((w) => m.startsWith(`${w}/`)));
  for (const m of mounted.sort((a, b) => b.length - a.length)) spawnSync("umount", ["-l", m]);
});

const SERVER_HOST = "fake";
const nfsOf = (mountPoint: string, more: Partial<Nfs> = {}): Nfs => ({ ...nfsSchema.parse({ enabled: true, mountPoint, modelsReadOnly: true }), ...more });
const storageOf = (root: string): Storage => localStorage({ root, owner: OWNER });
/** The served tree, with this site's marker at its root (root's, as the server program leaves it). */
function served(skeleton: "root" | "owner" = "root") {
  const t = tree(skeleton);
  writeFileSync(join(t.root, ".modelshare-export"), `${markerText(SERVER_HOST, storageOf(t.root))}\n`, { mode: 0o644 });
  return t;
}
const mounted = (where: string) => spawnSync("findmnt", ["-n", "-M", where, "-o", "OPTIONS"], { encoding: "utf8" }).stdout.split(",")[0] || "unmounted";
const at = (w: { log: () => string[] }, line: string) => w.log().indexOf(line);

describe("a worker with nfs.modelsReadOnly", () => {
  it("mounts the root, then the store read-only over its place (its category folders are no local files), enables each only once mounted and proven; a second run changes nothing", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    const program = renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST);
    const first = w.run(program);
    expect(first.code, first.stderr).toBe(0);
    const inner = join(mp, "storage-models/models");
    expect(first.stdout).toContain(`changed: mounted ${SERVER_HOST}:${root} at ${mp}\n`);
    expect(first.stdout).toContain(`changed: mounted ${SERVER_HOST}:${root}/storage-models/models at ${inner} (read-only)\n`);
    expect([mounted(mp), mounted(inner)]).toEqual(["rw", "ro"]);
    const [rootUnit, innerUnit] = [mountUnitName(mp), mountUnitName(inner)];
    expect(w.enabled()).toEqual([rootUnit, innerUnit].sort());
    // Each unit is started, and only then enabled.
    for (const u of [rootUnit, innerUnit]) expect(at(w, `enable --quiet -- ${u}`)).toBeGreaterThan(at(w, `start -- ${u}`));
    expect(at(w, `start -- ${innerUnit}`)).toBeGreaterThan(at(w, `enable --quiet -- ${rootUnit}`));
    // The owner (a container's uid) reads the models and cannot write them.
    expect(asOwner(`cat ${inner}/checkpoints/sd.safetensors`)).toBe("model-bytes\n");
    expect(() => asOwner(`echo x > ${inner}/checkpoints/new.safetensors`)).toThrow(/Read-only file system/);
    expect(w.run(program).changed).toBe(0);
    const check = w.run(program, "check");
    expect([check.code, check.stdout.trim().split("\n").pop()]).toEqual([0, "drift=0"]);
  });

  it("a mount that does not prove itself (another site's marker) is never enabled at boot", () => {
    const { root } = served();
    writeFileSync(join(root, ".modelshare-export"), "modelshare export elsewhere:/srv/cw\n");
    const w = worker();
    const mp = join(w.dir, "mnt");
    const r = w.run(renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST));
    expect(r.stderr).toContain(`modelshare: ${mp} shows ${SERVER_HOST}:${root}, but not this site's marker file`);
    expect(w.enabled()).toEqual([]);
    expect(w.log().some((l) => l.startsWith("enable"))).toBe(false);
  });

  it("a unit enabled with other content is disabled before it is rewritten, and enabled again once its mount is proven", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    expect(w.run(renderNfsMount(nfsOf(mp, { modelsReadOnly: false }), storageOf(root), SERVER_HOST)).code).toBe(0);
    writeFileSync(join(w.dir, "log"), "");
    const r = w.run(renderNfsMount(nfsOf(mp, { modelsReadOnly: false, mountOptions: ["noatime"] }), storageOf(root), SERVER_HOST));
    expect(r.code, r.stderr).toBe(0);
    const unit = mountUnitName(mp);
    expect(w.log()).toEqual([
      `is-enabled --quiet -- ${unit}`,
      `disable --quiet -- ${unit}`,
      "daemon-reload",
      `is-enabled --quiet -- ${unit}`,
      `enable --quiet -- ${unit}`,
    ]);
    expect(readFileSync(join(w.units, unit), "utf8")).toContain("Options=nfsvers=4.2,hard,rw,_netdev,noatime\n");
  });

  it("turning modelsReadOnly off: check names the stale unit, converge unmounts the store and removes its unit; the root stays", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    const inner = join(mp, "storage-models/models");
    expect(w.run(renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST)).code).toBe(0);
    const off = renderNfsMount(nfsOf(mp, { modelsReadOnly: false }), storageOf(root), SERVER_HOST);
    const check = w.run(off, "check");
    expect(check.stdout).toContain(`drift: ${inner} is still mounted\n`);
    // (The drift line escapes the unit name's backslashes.)
    expect(check.stdout).toMatch(/^drift: .*\/units\/.*storage\\+x2dmodels-models\.mount is still there$/m);
    const r = w.run(off);
    expect(r.code, r.stderr).toBe(0);
    expect([mounted(mp), mounted(inner), w.unitFiles(), w.enabled()]).toEqual(["rw", "unmounted", [mountUnitName(mp)], [mountUnitName(mp)]]);
    expect(w.run(off).changed).toBe(0);
  });

  it("a moved mount point: the old mounts and units go (inner first), the new one is mounted; destroy leaves no unit of modelshare's and the admin's own", () => {
    const { root } = served();
    const w = worker();
    const [a, b] = [join(w.dir, "a"), join(w.dir, "b")];
    writeFileSync(join(w.units, "srv-backup.mount"), "[Mount]\nWhat=/dev/sdb1\nWhere=/srv/backup\n");
    expect(w.run(renderNfsMount(nfsOf(a), storageOf(root), SERVER_HOST)).code).toBe(0);
    const moved = renderNfsMount(nfsOf(b), storageOf(root), SERVER_HOST);
    const r = w.run(moved);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.indexOf(`changed: unmounted ${join(a, "storage-models/models")}\n`)).toBeLessThan(r.stdout.indexOf(`changed: unmounted ${a}\n`));
    expect([mounted(a), mounted(b), mounted(join(b, "storage-models/models"))]).toEqual(["unmounted", "rw", "ro"]);
    expect(w.unitFiles()).toEqual([mountUnitName(b), mountUnitName(join(b, "storage-models/models")), "srv-backup.mount"].sort());
    const destroyed = w.run(moved, "remove");
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect([mounted(b), w.unitFiles(), w.enabled()]).toEqual(["unmounted", ["srv-backup.mount"], []]);
    expect(readFileSync(join(root, "storage-models/models/checkpoints/sd.safetensors"), "utf8")).toBe("model-bytes\n");
  });

  it("a store unmounted by hand: check says so, converge mounts it again", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    const inner = join(mp, "storage-models/models");
    const program = renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST);
    expect(w.run(program).code).toBe(0);
    spawnSync("umount", [inner]);
    expect(w.run(program, "check").stdout).toContain(`drift: ${SERVER_HOST}:${inner.replace(mp, root)} is not mounted at ${inner}\n`);
    expect(w.run(program).changed).toBe(1);
    expect(mounted(inner)).toBe("ro");
  });
});

describe("a worker's mount points: nothing on the way the owner could swap", () => {
  it("a mount point under a folder the owner can write is refused before any unit is written; the owner's link there is never followed", () => {
    const { root } = served();
    const w = worker();
    const theirs = join(w.dir, "theirs");
    mkdirSync(theirs);
    chownSync(theirs, OWNER.uid, OWNER.gid);
    const outside = decoy();
    const before = outside.digest();
    const program = renderNfsMount(nfsOf(join(theirs, "mnt")), storageOf(root), SERVER_HOST);
    refused(w.run(program), new RegExp(`^modelshare: ${theirs} can be written by the storage owner \\(uid 1000\\), who could rename ${theirs}/mnt`, "m"));
    asOwner(`ln -s ${outside.open} ${theirs}/mnt`);
    refused(
      w.run(program),
      new RegExp(`^modelshare: ${theirs} can be written by the storage owner|${theirs}/mnt, on the way to the mount point .* is a symbolic link`, "m"),
    );
    expect([w.unitFiles(), w.enabled(), outside.digest()]).toEqual([[], [], before]);
  });

  it("a server whose skeleton the owner can write: the worker refuses the store's mount (its path resolves through the owner's folders) and enables nothing for it", () => {
    const { root } = served("owner");
    const w = worker();
    const mp = join(w.dir, "mnt");
    const inner = join(mp, "storage-models/models");
    const r = w.run(renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST));
    refused(
      r,
      new RegExp(
        `^modelshare: ${mp} can be written by the storage owner \\(uid 1000\\), who could rename ${mp}/storage-models, on the way to the model store's mount point ${inner}`,
        "m",
      ),
    );
    expect([w.enabled(), existsSync(join(w.units, mountUnitName(inner)))]).toEqual([[mountUnitName(mp)], false]);
  });

  it("every mount unit starts with the tag by which later runs find it", () => {
    expect(readFileSync("components/nfs/mount.sh", "utf8")).toContain(`\nNFS_UNIT_TAG="${UNIT_TAG}"\n`);
  });
});

describe("a worker's readahead (nfs.readAheadKiB)", () => {
  const confOf = (w: { dir: string }) => join(w.dir, "nfs.conf.d/modelshare.conf");
  /** The fake bdi file of the mount at WHERE (every bind mount of the test's file system shares it). */
  const readAhead = (w: { dir: string }, where: string) => {
    const dev = spawnSync("findmnt", ["-n", "-M", where, "-o", "MAJ:MIN"], { encoding: "utf8" }).stdout.trim();
    return join(w.dir, "bdi", dev, "read_ahead_kb");
  };

  it("the setting is written before the mounts, so a new mount has it from the start; a second run changes nothing", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    const program = renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST);
    const r = w.run(program);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(confOf(w), "utf8")).toBe(`${renderReadAheadConf(15360)}\n`);
    expect(r.stdout.indexOf(`changed: wrote ${confOf(w)}\n`)).toBeLessThan(r.stdout.indexOf(`changed: mounted ${SERVER_HOST}:${root} at ${mp}\n`));
    expect(r.stdout).not.toMatch(/KiB ahead/);
    expect(readFileSync(readAhead(w, mp), "utf8")).toBe("15360\n");
    expect(w.run(program).changed).toBe(0);
  });

  it("a mount made before the setting: check names it, converge sets it in place (no remount), then nothing is left to do", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    expect(w.run(renderNfsMount(nfsOf(mp, { readAheadKiB: 0 }), storageOf(root), SERVER_HOST)).code).toBe(0);
    expect([existsSync(confOf(w)), readFileSync(readAhead(w, mp), "utf8")]).toEqual([false, "128\n"]);
    const program = renderNfsMount(nfsOf(mp, { readAheadKiB: 1024 }), storageOf(root), SERVER_HOST);
    const check = w.run(program, "check");
    expect(check.stdout).toContain(`drift: ${mp} reads 128 KiB ahead, not 1024 (nfs.readAheadKiB)\n`);
    writeFileSync(join(w.dir, "log"), "");
    const r = w.run(program);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`changed: set ${mp} to read 1024 KiB ahead\n`);
    expect(w.log().filter((l) => /^(start|stop)/.test(l))).toEqual([]);
    expect(readFileSync(readAhead(w, mp), "utf8")).toBe("1024\n");
    expect(w.run(program).changed).toBe(0);
    expect(w.run(program, "check").stdout.trim().split("\n").pop()).toBe("drift=0");
  });

  it("readAheadKiB: 0 removes modelshare's setting and leaves the mounts' readahead as it is; destroy removes it too", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    const program = renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST);
    expect(w.run(program).code).toBe(0);
    const off = w.run(renderNfsMount(nfsOf(mp, { readAheadKiB: 0 }), storageOf(root), SERVER_HOST));
    expect(off.stdout).toContain(`changed: removed ${confOf(w)}\n`);
    expect([existsSync(confOf(w)), readFileSync(readAhead(w, mp), "utf8")]).toEqual([false, "15360\n"]);
    expect(w.run(program).code).toBe(0);
    expect(w.run(program, "remove").code).toBe(0);
    expect(existsSync(confOf(w))).toBe(false);
  });

  it("a file of that name that is not modelshare's is refused before anything is mounted, and left alone by destroy", () => {
    const { root } = served();
    const w = worker();
    const mp = join(w.dir, "mnt");
    mkdirSync(join(w.dir, "nfs.conf.d"));
    writeFileSync(confOf(w), "[nfsrahead]\nnfs4=4096\n");
    const program = renderNfsMount(nfsOf(mp), storageOf(root), SERVER_HOST);
    refused(w.run(program), /modelshare\.conf is not modelshare's .* move it away \(or set nfs\.readAheadKiB: 0\), then run again\.$/m);
    expect([mounted(mp), w.unitFiles()]).toEqual(["unmounted", []]);
    const removed = w.run(program, "remove");
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("is not modelshare's (its first line is not modelshare's): left as it is\n");
    expect(readFileSync(confOf(w), "utf8")).toBe("[nfsrahead]\nnfs4=4096\n");
    expect(w.run(renderNfsMount(nfsOf(mp, { readAheadKiB: 0 }), storageOf(root), SERVER_HOST)).code).toBe(0);
  });

  it("the setting's first line is the tag mount.sh looks for", () => {
    expect(readFileSync("components/nfs/mount.sh", "utf8")).toContain(`\nNFS_READAHEAD_TAG="${READAHEAD_TAG}"\n`);
  });
});
