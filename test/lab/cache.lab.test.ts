import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { siteFromConfig } from "../../components/stackConfig";
import { loadSite } from "../../components/loadSite";
import { checkSite, formatText } from "../../ops/check";
import { run, type Step } from "../harness/converge";
import { declare } from "../harness/declare";
import { labStack, onNode } from "../harness/lab";

/**
 * nfs.cache on real kernels: node1 exports, node2 and node3 mount; node2 caches what it reads
 * in FS-Cache (cachefilesd), node3's kernel is made to lack CacheFiles (modprobe refuses it), so
 * it mounts uncached. Leaves node1 without /srv/cw and the workers without the cache.
 */
const ROOT = "/srv/cw";
const MP = "/mnt/modelshare";
const CACHE = "/var/cache/modelshare";
const MODEL = "storage-models/models/checkpoints/big.safetensors";
const MB = 96;

type Edit = (s: Record<string, any>) => void;
const withNfs =
  (cache: Record<string, unknown> = { enabled: true }): Edit =>
  (s) => {
    s["modelshare:nfs"] = { enabled: true, cache };
  };
const declared = (edit: Edit = withNfs()) => declare({ stack: "lab", ...labStack(edit) }, () => new Site("site", loadSite()));
const converge = async (edit?: Edit) => run(await declared(edit));
const byName = (steps: Step[]) => Object.fromEntries(steps.map((s) => [s.name, s]));
const nfsSteps = (steps: Step[]) => Object.fromEntries(steps.filter((s) => s.name.includes("-nfs-")).map((s) => [s.name, s.changed]));
const stackSite = (edit: Edit = withNfs()) => {
  const { config, secretKeys } = labStack(edit);
  return siteFromConfig(config, (k) => secretKeys.includes(k));
};
/** The bytes this worker's NFS client has read from the server over the mount (mountstats' serverreadbytes). */
const serverReadBytes = async (node: string) =>
  Number((await onNode(node, `awk '$1 == "device" { on = ($5 == "${MP}") } on && $1 == "bytes:" { print $6; exit }' /proc/self/mountstats`)).trim());
/** Reads the model through the mount with the page cache dropped first; prints its sha256. */
const coldRead = (node: string) => onNode(node, `sync; echo 3 > /proc/sys/vm/drop_caches; sha256sum < ${MP}/${MODEL} | cut -d' ' -f1`);

describe("nfs.cache: node2 reads through its local cache, node3 has no CacheFiles", () => {
  beforeAll(async () => {
    // Whatever an earlier lab file left of the lab site's storage (converge and drift keep
    // their models) goes: this file starts from a node1 without it, whatever the file order.
    await onNode("node1", `rm -rf ${ROOT}`);
    // node3's kernel "lacks" CacheFiles: modprobe refuses it, as on a kernel built without it.
    await onNode("node3", "echo 'install cachefiles /bin/false' > /etc/modprobe.d/lab-no-cachefiles.conf");
  });
  afterAll(async () => {
    await onNode("node3", "rm -f /etc/modprobe.d/lab-no-cachefiles.conf");
    await onNode("node1", `rm -rf ${ROOT}`);
  });

  it("node2 runs cachefilesd and mounts with fsc; node3 says in one sentence that it mounts uncached; a second converge changes nothing", async () => {
    const steps = byName(await converge());
    expect(steps["node2-nfs-cache-converge"].stdout).toContain(`changed: made ${CACHE}`);
    expect(steps["node2-nfs-cache-converge"].stdout).toContain("changed: started modelshare-cachefilesd.service");
    expect(steps["node2-nfs-mount-converge"].began).toBeGreaterThan(steps["node2-nfs-cache-converge"].ended);
    expect(steps["node3-nfs-cache-converge"].stdout).toMatch(
      /^this kernel cannot cache NFS reads \(no CacheFiles module: CONFIG_CACHEFILES\); lab-node3 mounts the storage uncached$/m,
    );
    expect(steps["node3-nfs-cache-converge"].changed).toBe(0);
    expect(
      await onNode(
        "node2",
        `systemctl is-active modelshare-cachefilesd; grep -cw modelshare /proc/fs/fscache/caches; findmnt -n -M ${MP} -o OPTIONS | tr , '\\n' | grep -x fsc; stat -c '%U %a' ${CACHE}`,
      ),
    ).toBe("active\n1\nfsc\nroot 700\n");
    // The storage owner (every container on the worker) cannot look into the cache.
    expect(await onNode("node2", `setpriv --reuid=1000 --regid=1000 --clear-groups -- ls ${CACHE} 2>&1 >/dev/null || true`)).toMatch(/Permission denied/);
    expect(await onNode("node3", `test -e /etc/systemd/system/modelshare-cachefilesd.service || echo none; findmnt -n -M ${MP} -o SOURCE`)).toBe(
      `none\n10.77.0.11:${ROOT}\n`,
    );
    const report = formatText(await checkSite(stackSite()));
    expect(report).toMatch(/^cache on node2: .* cached in \/var\/cache\/modelshare, \d+\.\d GB free beside it$/m);
    expect(report).toMatch(/^cache on node3: none, its kernel \(.+\) cannot cache NFS reads; the mount works uncached$/m);
    const second = nfsSteps(await converge());
    expect(Object.values(second).every((n) => n === 0)).toBe(true);
  }, 900_000);

  it("a model read once on node2 is read again from its disk: the page cache dropped, the server sends (almost) nothing; a model replaced on the server reads new", async () => {
    await onNode(
      "node1",
      `head -c ${MB}M /dev/urandom > ${ROOT}/${MODEL} && chown 1000:1000 ${ROOT}/${MODEL} && sha256sum < ${ROOT}/${MODEL} | cut -d' ' -f1`,
    ).then(async (sum) => {
      const before = await serverReadBytes("node2");
      expect(await coldRead("node2")).toBe(sum);
      const first = (await serverReadBytes("node2")) - before;
      expect(first).toBeGreaterThanOrEqual(MB * 2 ** 20); // the first read came over the network
      // The kernel writes the cache behind the read: wait until the copy is on node2's disk.
      await onNode("node2", `for i in $(seq 300); do [ "$(du -sm ${CACHE} | cut -f1)" -ge ${MB} ] && exit 0; sleep 1; done; du -sm ${CACHE}; exit 1`);
      const again = await serverReadBytes("node2");
      expect(await coldRead("node2")).toBe(sum);
      expect((await serverReadBytes("node2")) - again).toBeLessThan(2 ** 20); // from the cache, not the server
    });
    // Other bytes written over the same file on the server (same inode, same size, as an SMB
    // client saving over it would): the cached copy is not served.
    const replaced = await onNode(
      "node1",
      `head -c ${MB}M /dev/urandom | dd of=${ROOT}/${MODEL} bs=1M conv=notrunc status=none && sha256sum < ${ROOT}/${MODEL} | cut -d' ' -f1`,
    );
    expect(await coldRead("node2")).toBe(replaced);
  }, 900_000);

  it("turned off: a mount in use stays mounted as it is (the run says so, check names it); once free, it is mounted again without fsc; the cache's destroy empties its folder; the models stay", async () => {
    // Something on node2 uses the mount (as a container reading a model would).
    const holder = (await onNode("node2", `setsid sh -c 'cd ${MP} && exec sleep 600' > /dev/null 2>&1 < /dev/null & echo $!`)).trim();
    const busy = byName(await converge(withNfs({ enabled: false })));
    expect(busy["node2-nfs-mount-converge"].stdout).toContain(`${MP} is in use, so it stays mounted with the local cache (fsc) until it is next mounted`);
    // Its unit is rewritten for the next mount; the mount itself stays as it is.
    expect(await onNode("node2", `findmnt -n -M ${MP} -o OPTIONS | tr , '\\n' | grep -x fsc`)).toBe("fsc\n");
    expect(formatText(await checkSite(stackSite(withNfs({ enabled: false }))))).toContain(
      `node2-nfs-mount: ${MP} is mounted with the local cache (fsc); its unit says without`,
    );
    await onNode("node2", `kill ${holder}; while kill -0 ${holder} 2>/dev/null; do sleep 0.2; done`);
    const off = byName(await converge(withNfs({ enabled: false })));
    expect(off["node2-nfs-mount-converge"].stdout).toContain(`changed: mounted 10.77.0.11:${ROOT} at ${MP} again, without the local cache (fsc)`);
    // The engine deletes what is no longer declared: the cache items, after the rest converged.
    await run(
      (await declared()).filter((r) => r.name.includes("-nfs-cache")),
      { destroy: true },
    );
    expect(
      await onNode(
        "node2",
        `findmnt -n -M ${MP} -o OPTIONS | tr , '\\n' | grep -cx fsc || true; systemctl is-active modelshare-cachefilesd || true; test -e ${CACHE} || echo gone; test -e /etc/modelshare/cachefilesd.conf || echo gone`,
      ),
    ).toBe("0\ninactive\ngone\ngone\n");
    expect(await onNode("node1", `test -s ${ROOT}/${MODEL} && echo kept`)).toBe("kept\n");
    expect(nfsSteps(await converge(withNfs({ enabled: false })))).toEqual({
      "node1-nfs-export-converge": 0,
      "node2-nfs-mount-converge": 0,
      "node3-nfs-mount-converge": 0,
    });
  }, 900_000);

  it("on again, then destroy: the workers are as before (no unit, config, readahead setting or cache folder), the mounts gone, every model on node1", async () => {
    await converge();
    await run(await declared(), { destroy: true });
    for (const node of ["node2", "node3"]) {
      expect(
        await onNode(
          node,
          `findmnt -n -M ${MP} || echo unmounted; ls /etc/systemd/system | grep -c modelshare || true; test -e ${CACHE} || echo gone; test -e /etc/modelshare/cachefilesd.conf || echo gone; test -e /etc/nfs.conf.d/modelshare.conf || echo gone`,
        ),
      ).toBe("unmounted\n0\ngone\ngone\ngone\n");
    }
    expect(await onNode("node1", `test -s ${ROOT}/${MODEL} && echo kept`)).toBe("kept\n");
  }, 900_000);
});
