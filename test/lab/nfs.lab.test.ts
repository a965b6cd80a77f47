import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { siteFromConfig } from "../../components/stackConfig";
import { loadSite } from "../../components/loadSite";
import { checkSite, exitCode, formatText } from "../../ops/check";
import { run, type Step } from "../harness/converge";
import { declare } from "../harness/declare";
import { lab, labStack, onNode } from "../harness/lab";

/**
 * NFS on real kernels: node1 exports (the program installs nfs-kernel-server, later
 * nfs-ganesha), node2 and node3 mount at /mnt/modelshare (the program installs nfs-common).
 * Leaves node1 without /srv/cw for the other lab files.
 */
const ROOT = "/srv/cw";
const STORE = `${ROOT}/storage-models/models`;
const MP = "/mnt/modelshare";
const EXPORT = "10.77.0.11:/srv/cw";
const OWNER = (cmd: string) => `setpriv --reuid=1000 --regid=1000 --clear-groups -- bash -c '${cmd}'`;

type Edit = (s: Record<string, any>) => void;
const withNfs =
  (nfs: Record<string, unknown> = {}, more: Edit = () => {}) =>
  (s: Record<string, any>) => {
    s["modelshare:nfs"] = { enabled: true, ...nfs };
    more(s);
  };
const declared = (edit: Edit = withNfs()) => declare({ stack: "lab", ...labStack(edit) }, () => new Site("site", loadSite()));
const converge = async (edit?: Edit) => run(await declared(edit));
const nfsSteps = (steps: Step[]) => Object.fromEntries(steps.filter((s) => s.name.includes("-nfs-")).map((s) => [s.name, s.changed]));
const QUIET = { "node1-nfs-export-converge": 0, "node2-nfs-mount-converge": 0, "node3-nfs-mount-converge": 0 };
const checksums = () => onNode("node1", `cd ${ROOT} && find storage-models storage-user -type f -print0 | sort -z | xargs -0r sha256sum`);
/** The readahead the kernel uses for the mount at MP (its bdi's, in KiB). */
/** The mount's readahead, once udev has handled every event (after a boot, its rule may still be queued). */
const readAhead = (node: string) => onNode(node, `udevadm settle; cat "/sys/class/bdi/$(findmnt -n -M ${MP} -o MAJ:MIN | tr -d ' ')/read_ahead_kb"`);
const stackSite = (edit: Edit = withNfs()) => {
  const { config, secretKeys } = labStack(edit);
  return siteFromConfig(config, (k) => secretKeys.includes(k));
};

describe("NFS: node1 exports, node2 and node3 mount", () => {
  beforeAll(async () => {
    await expect(onNode("node1", `test ! -e ${ROOT} && echo fresh`)).resolves.toBe("fresh\n");
    // The admin's own export, in their /etc/exports; and a short NFSv4 grace period, so that
    // the server restarted below serves again within seconds (the default is 90 s).
    await onNode(
      "node1",
      "mkdir -p /srv/admin /etc/nfs.conf.d && echo theirs > /srv/admin/a.txt && echo '/srv/admin 10.77.0.13(ro,no_subtree_check)' >> /etc/exports && printf '[nfsd]\\ngrace-time=10\\nlease-time=10\\n' > /etc/nfs.conf.d/lab.conf",
    );
  });
  afterAll(async () => {
    // The ganesha test leaves ganesha running; the other lab files expect the kernel server free to start.
    await onNode("node1", `rm -rf ${ROOT}; systemctl disable --now nfs-ganesha >/dev/null 2>&1 || true`);
  });

  it("installs the server and the clients, exports, mounts both workers at once, and a second converge changes nothing", async () => {
    // Another lab file may have run first and installed the server already (the order of files
    // is vitest's); the install itself is then shown by those.
    const fresh = (await onNode("node1", "dpkg-query -W -f='${db:Status-Status}' nfs-kernel-server 2>/dev/null || true")) !== "installed";
    const first = await converge();
    const byName = Object.fromEntries(first.map((s) => [s.name, s]));
    if (fresh) expect(byName["node1-nfs-export-converge"].stdout).toContain("changed: installed nfs-kernel-server");
    for (const w of ["node2", "node3"]) {
      expect(byName[`${w}-nfs-mount-converge`].stdout).toContain(`changed: mounted ${EXPORT} at ${MP}`);
      expect(byName[`${w}-nfs-mount-converge`].began).toBeGreaterThan(byName["node1-nfs-export-converge"].ended);
      // nfs.readAheadKiB's default, applied by Debian's udev rule (nfsrahead) as the mount came up:
      // the run did not have to set it.
      expect(byName[`${w}-nfs-mount-converge`].stdout).toContain("changed: wrote /etc/nfs.conf.d/modelshare.conf");
      expect(byName[`${w}-nfs-mount-converge`].stdout).not.toContain("KiB ahead");
      await expect(readAhead(w)).resolves.toBe("15360\n");
    }
    // The two workers' mounts ran side by side, as the engine would run them.
    const [a, b] = [byName["node2-nfs-mount-converge"], byName["node3-nfs-mount-converge"]];
    expect(Math.max(a.began, b.began)).toBeLessThan(Math.min(a.ended, b.ended));
    expect(await onNode("node2", `systemctl is-enabled "$(systemd-escape --path --suffix=mount ${MP})"; findmnt -n -M ${MP} -o SOURCE,FSTYPE`)).toBe(
      `enabled\n${EXPORT} nfs4\n`,
    );
    expect(await onNode("node1", "cat /etc/exports.d/modelshare.exports | tail -n 1")).toBe(
      `${ROOT} 10.77.0.12(rw,sync,no_subtree_check,root_squash,fsid=4711,sec=sys) 10.77.0.13(rw,sync,no_subtree_check,root_squash,fsid=4711,sec=sys)\n`,
    );
    expect(nfsSteps(await converge())).toEqual(QUIET);
  }, 900_000); // apt installs the NFS server and clients under emulation: minutes on a loaded machine

  it("a worker reads what the storage node wrote and the other way round, ownership as root_squash documents it", async () => {
    await onNode("node1", OWNER(`echo from-storage > ${STORE}/loras/s.safetensors`));
    expect(await onNode("node2", `cat ${MP}/storage-models/models/loras/s.safetensors`)).toBe("from-storage\n");
    await onNode("node2", OWNER(`echo from-worker > ${MP}/storage-user/output/ComfyUI/w.png`));
    expect(await onNode("node1", `stat -c '%u:%g' ${ROOT}/storage-user/output/ComfyUI/w.png; cat ${ROOT}/storage-user/output/ComfyUI/w.png`)).toBe(
      "1000:1000\nfrom-worker\n",
    );
    // Root on a worker is nobody on the storage: it reads, but writes nowhere the layout made.
    expect(await onNode("node2", `touch ${MP}/storage-user/input/by-root 2>&1 || true`)).toMatch(/Permission denied/);
    expect(await onNode("node2", `cat ${MP}/storage-models/models/loras/s.safetensors`)).toBe("from-storage\n");
  });

  it("a model uploaded on the storage node shows on a worker through the relative category link and in the store", async () => {
    await onNode("node1", OWNER(`head -c 200000 /dev/urandom > ${ROOT}/storage-user/models-upload/checkpoints/up.safetensors`));
    const sum = await onNode("node1", `sha256sum < ${STORE}/checkpoints/up.safetensors`);
    expect(
      await onNode(
        "node3",
        `sha256sum < ${MP}/storage-user/models-upload/checkpoints/up.safetensors; sha256sum < ${MP}/storage-models/models/checkpoints/up.safetensors`,
      ),
    ).toBe(`${sum}${sum}`);
  });

  it("the admin's own export stays beside modelshare's; exports that exportfs rejects put the previous file back and fail with its words", async () => {
    expect(await onNode("node1", "exportfs -s | awk '{ print $1 }' | sort -u")).toBe(`/srv/admin\n${ROOT}\n`);
    const before = await onNode("node1", "sha256sum /etc/exports.d/modelshare.exports");
    await onNode("node1", "cp /etc/exports /root/exports.good && echo '/srv/admin 10.77.0.13(ro,no_such_option)' >> /etc/exports");
    const failed = await converge(withNfs({ clients: ["10.77.0.50"] })).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(failed).toMatch(
      /node1-nfs-export-converge \(on 10\.77\.0\.11\): exited 1: [\s\S]*no_such_option[\s\S]*modelshare: exportfs rejects modelshare's exports/,
    );
    expect(await onNode("node1", "sha256sum /etc/exports.d/modelshare.exports")).toBe(before);
    expect(await onNode("node2", `cat ${MP}/.modelshare-export`)).toBe(`modelshare export ${EXPORT}\n`);
    await onNode("node1", "cp /root/exports.good /etc/exports && exportfs -ra");
    await converge();
    expect(nfsSteps(await converge())).toEqual(QUIET);
  });

  it("an address outside the clients is refused", async () => {
    // node3 given another address: the export's clients are then node2 and 10.77.0.99.
    const elsewhere: Edit = withNfs({}, (s) => {
      s["modelshare:nodes"][2].host = "10.77.0.99";
    });
    await onNode("node3", `systemctl stop "$(systemd-escape --path --suffix=mount ${MP})"`);
    await run((await declared(elsewhere)).filter((r) => r.name.startsWith("node1-nfs-export")));
    expect(await onNode("node1", "tail -n 1 /etc/exports.d/modelshare.exports")).toMatch(/ 10\.77\.0\.12\(.* 10\.77\.0\.99\(/);
    expect(await onNode("node3", `mkdir -p /mnt/try && timeout 30 mount -t nfs4 -o nfsvers=4.2 ${EXPORT} /mnt/try 2>&1; echo "exit $?"`)).toMatch(
      /(access denied|No such file or directory)[\s\S]*exit 32/,
    );
    // node3's own mount step, against that export: it stops naming the server, the export and the error.
    const node3Only = (await declared()).filter((r) => r.name.startsWith("node3-nfs-mount"));
    const failed = await run(node3Only).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(failed).toMatch(
      /node3-nfs-mount-converge \(on 10\.77\.0\.13\): exited 1: modelshare: could not mount 10\.77\.0\.11:\/srv\/cw \(server 10\.77\.0\.11, export \/srv\/cw\) at \/mnt\/modelshare: .*(access denied|No such file or directory)/,
    );
    expect(nfsSteps(await converge())).toMatchObject({ "node1-nfs-export-converge": 1, "node3-nfs-mount-converge": 1 });
  });

  it("an unmounted worker is mounted again (and check says so first); a rebooted worker comes back mounted", async () => {
    await onNode("node2", `umount ${MP}`);
    const nodes = await checkSite(stackSite());
    expect(exitCode(nodes)).toBe(1);
    expect(formatText(nodes)).toContain(`node2-nfs-mount: ${EXPORT} is not mounted at ${MP}`);
    expect(nfsSteps(await converge())).toEqual({ ...QUIET, "node2-nfs-mount-converge": 1 });
    await expect(readAhead("node2")).resolves.toBe("15360\n");
    lab("reboot", "node3");
    expect(await onNode("node3", `findmnt -n -M ${MP} -o SOURCE; cat ${MP}/.modelshare-export`)).toBe(`${EXPORT}\nmodelshare export ${EXPORT}\n`);
    await expect(readAhead("node3")).resolves.toBe("15360\n");
    expect(exitCode(await checkSite(stackSite()))).toBe(0);
  });

  it("nfs.modelsReadOnly: the store mounted read-only over its place shows an upload and refuses writes; idempotent, check clean, back after a reboot; a worker's destroy and turning it off remove its unit and mount", async () => {
    const ro = withNfs({ modelsReadOnly: true });
    const INNER = `${MP}/storage-models/models`;
    const UNIT = "mnt-modelshare-storage\\x2dmodels-models.mount";
    const first = Object.fromEntries((await converge(ro)).map((s) => [s.name, s]));
    expect(await onNode("node1", "tail -n 1 /etc/exports.d/modelshare.exports")).toMatch(/^\/srv\/cw\/storage-models\/models 10\.77\.0\.12\(ro,/);
    for (const w of ["node2", "node3"]) {
      expect(first[`${w}-nfs-mount-converge`].stdout).toContain(`changed: mounted ${EXPORT}/storage-models/models at ${INNER} (read-only)`);
      expect(await onNode(w, `findmnt -n -M ${INNER} -o SOURCE,FSTYPE; findmnt -n -M ${INNER} -o OPTIONS | cut -d, -f1; systemctl is-enabled '${UNIT}'`)).toBe(
        `${EXPORT}/storage-models/models nfs4\nro\nenabled\n`,
      );
    }
    // An upload on the storage node (through the upload link, as the owner) shows on both
    // workers; there, neither the owner (a container's uid) nor root can write the store.
    await onNode("node1", OWNER(`head -c 100000 /dev/urandom > ${ROOT}/storage-user/models-upload/loras/ro.safetensors`));
    const sum = await onNode("node1", `sha256sum < ${STORE}/loras/ro.safetensors`);
    for (const w of ["node2", "node3"]) {
      expect(await onNode(w, `sha256sum < ${INNER}/loras/ro.safetensors`)).toBe(sum);
      expect(await onNode(w, OWNER(`{ echo x > ${INNER}/loras/ro.safetensors; } 2>&1; touch ${INNER}/loras/new 2>&1; true`))).toMatch(
        /Read-only file system[\s\S]*Read-only file system/,
      );
      expect(await onNode(w, `touch ${INNER}/loras/by-root 2>&1 || true`)).toMatch(/Read-only file system/);
    }
    expect(await onNode("node1", `sha256sum < ${STORE}/loras/ro.safetensors; ls ${STORE}/loras | grep -c -e new -e by-root || true`)).toBe(`${sum}0\n`);
    expect(nfsSteps(await converge(ro))).toEqual(QUIET);
    expect(exitCode(await checkSite(stackSite(ro)))).toBe(0);
    lab("reboot", "node2");
    expect(await onNode("node2", `findmnt -n -M ${MP} -o SOURCE; findmnt -n -M ${INNER} -o SOURCE; findmnt -n -M ${INNER} -o OPTIONS | cut -d, -f1`)).toBe(
      `${EXPORT}\n${EXPORT}/storage-models/models\nro\n`,
    );
    expect(exitCode(await checkSite(stackSite(ro)))).toBe(0);
    // One worker's destroy, with the option on: no unit of modelshare's is left there.
    await run(
      (await declared(ro)).filter((r) => r.name.startsWith("node3-nfs-mount")),
      { destroy: true },
    );
    expect(
      await onNode(
        "node3",
        `findmnt -n -M ${MP} || echo unmounted; ls /etc/systemd/system /etc/systemd/system/remote-fs.target.wants | grep -c modelshare || true`,
      ),
    ).toBe("unmounted\n0\n");
    // Turned off: check names the mount no longer configured; converge unmounts it and removes its unit; the root stays.
    expect(formatText(await checkSite(stackSite()))).toContain(`node2-nfs-mount: ${INNER} is still mounted`);
    await converge();
    expect(
      await onNode("node2", `findmnt -n -M ${INNER} || echo unmounted; test -e '/etc/systemd/system/${UNIT}' || echo gone; findmnt -n -M ${MP} -o SOURCE`),
    ).toBe(`unmounted\ngone\n${EXPORT}\n`);
    expect(nfsSteps(await converge())).toEqual(QUIET);
  }, 900_000);

  it("with the server stopped, a worker's converge fails naming the server (its probe is bounded, it does not hang); started again, all is well", async () => {
    await onNode("node1", "systemctl stop nfs-server");
    const workerOnly = (await declared()).filter((r) => r.name.startsWith("node2-nfs-mount"));
    const failed = await run(workerOnly).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(failed).toMatch(
      /node2-nfs-mount-converge \(on 10\.77\.0\.12\): exited 1: modelshare: the NFS server of 10\.77\.0\.11:\/srv\/cw \(mounted at \/mnt\/modelshare\) does not answer/,
    );
    const steps = await converge();
    expect(steps.every((s) => s.code === 0)).toBe(true);
    expect(nfsSteps(await converge())).toEqual(QUIET);
  });

  it("destroy unmounts (lazily where something still reads), removes the export, keeps the admin's export and every byte", async () => {
    const before = await checksums();
    await onNode("node2", `cd ${MP}/storage-models/models && (setsid sleep 600 >/dev/null 2>&1 < loras/s.safetensors &)`);
    const steps = await run(await declared(), { destroy: true });
    expect(steps.find((s) => s.name === "node2-nfs-mount-converge")!.stdout).toContain(`${MP} was busy: unmounted lazily`);
    await onNode("node2", "pkill -x sleep || true");
    expect(steps.map((s) => s.name)).toEqual(expect.arrayContaining(["node1-nfs-export-converge", "node2-nfs-mount-converge", "node3-nfs-mount-converge"]));
    for (const w of ["node2", "node3"]) {
      expect(await onNode(w, `findmnt -n -M ${MP} || echo unmounted; ls /etc/systemd/system | grep -c modelshare || true`)).toBe("unmounted\n0\n");
    }
    expect(await onNode("node1", "test -e /etc/exports.d/modelshare.exports || echo gone; exportfs -s | awk '{ print $1 }'")).toBe("gone\n/srv/admin\n");
    expect(await checksums()).toBe(before);
  });

  it("a mount point holding local files is never mounted over: the run stops listing them", async () => {
    await onNode("node3", `echo mine > ${MP}/local-notes.txt`);
    const failed = await converge().then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(failed).toMatch(/node3-nfs-mount-converge \(on 10\.77\.0\.13\): exited 1: modelshare: \/mnt\/modelshare holds local files \(local-notes\.txt \)/);
    expect(await onNode("node3", `cat ${MP}/local-notes.txt; findmnt -n -M ${MP} || echo not-mounted`)).toBe("mine\nnot-mounted\n");
    await onNode("node3", `rm ${MP}/local-notes.txt`);
  });

  it("the same with nfs-ganesha on the storage node: mounted, read, a second converge changes nothing, destroyed", async () => {
    // Switching servers: the kernel export goes first (the workers unmount), then nfsd stops.
    await run(await declared(), { destroy: true });
    await onNode("node1", "systemctl disable --now nfs-server");
    const ganesha = withNfs({ server: "ganesha" });
    // The lab image has ganesha installed and off (a server where it is not in use): the run
    // enables and starts it; on a node without it, the run installs it first.
    const had = await onNode("node1", "dpkg-query -W -f='${db:Status-Status}' nfs-ganesha 2>/dev/null || true");
    const first = await converge(ganesha);
    const server = first.find((s) => s.name === "node1-nfs-export-converge")!.stdout;
    expect(server).toContain(had === "installed" ? "changed: started nfs-ganesha" : "changed: installed nfs-ganesha nfs-ganesha-vfs");
    expect(await onNode("node2", `findmnt -n -M ${MP} -o SOURCE; cat ${MP}/storage-models/models/loras/s.safetensors`)).toBe(`${EXPORT}\nfrom-storage\n`);
    await onNode("node3", OWNER(`echo via-ganesha > ${MP}/storage-user/workflows/g.json`));
    expect(await onNode("node1", `stat -c '%u:%g' ${ROOT}/storage-user/workflows/g.json`)).toBe("1000:1000\n");
    expect(nfsSteps(await converge(ganesha))).toEqual(QUIET);
    const before = await checksums();
    await run(await declared(ganesha), { destroy: true });
    expect(await onNode("node2", `findmnt -n -M ${MP} || echo unmounted`)).toBe("unmounted\n");
    expect(await onNode("node1", "test -e /etc/ganesha/modelshare.conf || echo gone; grep -c modelshare /etc/ganesha/ganesha.conf || true")).toBe("gone\n0\n");
    expect(await checksums()).toBe(before);
  }, 900_000); // a node without ganesha installs it under emulation: minutes on a loaded machine
});
