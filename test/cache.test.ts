import { describe, expect, it } from "vitest";
import { CACHE_UNIT, renderCacheUnit, renderCachefilesdConf, renderNfsCache } from "../components/cache/cachefilesd";
import { parseSite } from "../components/config";
import { mountsOf, renderMountUnit } from "../components/nfs/exports";
import { planSite } from "../components/plan";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";
import { shellcheck } from "./helpers/shellcheck";
import { seedsWithNfs } from "./fixtures/site";

/** The seeds' site with NFS on and the workers' cache as given. */
function seeds(cache: Record<string, unknown> = { enabled: true }): any {
  const site = seedsWithNfs();
  return { ...site, nfs: { ...site.nfs, cache } };
}
const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });

describe("nfs.cache: the config", () => {
  it("is off by default; on, it keeps 10/7/3 % free in /var/cache/modelshare", () => {
    expect(parse(seedsWithNfs()).nfs.cache.enabled).toBe(false);
    expect(parse(seeds()).nfs.cache).toEqual({ enabled: true, dir: "/var/cache/modelshare", freePercent: { run: 10, cull: 7, stop: 3 } });
  });

  // prettier-ignore
  const rejected: Rejected[] = [
    ["a folder on the NFS mount", (s) => { s.nfs.cache.dir = "/mnt/modelshare/cache"; }, "nfs.cache.dir", /is on the NFS mount \(nfs\.mountPoint \/mnt\/modelshare\)/],
    ["a folder holding the NFS mount", (s) => { s.nfs.cache.dir = "/mnt"; }, "nfs.cache.dir", /many things share/],
    ["a folder above the mount", (s) => { s.nfs.mountPoint = "/data/cache/mnt"; s.nfs.cache.dir = "/data/cache"; }, "nfs.cache.dir", /holds the NFS mount/],
    ["a system path", (s) => { s.nfs.cache.dir = "/var/lib/fscache"; }, "nfs.cache.dir", /inside the system path \/var\/lib/],
    ["/etc", (s) => { s.nfs.cache.dir = "/etc/cache"; }, "nfs.cache.dir", /system path \/etc/],
    ["/var/cache itself", (s) => { s.nfs.cache.dir = "/var/cache"; }, "nfs.cache.dir", /many things share/],
    ["a scratch folder", (s) => { s.nfs.cache.dir = "/tmp/cache"; }, "nfs.cache.dir", /every local user may write/],
    ["a relative folder", (s) => { s.nfs.cache.dir = "cache"; }, "nfs.cache.dir", /absolute path/],
    ["a folder with a space", (s) => { s.nfs.cache.dir = "/srv/model cache"; }, "nfs.cache.dir", /no spaces/],
    ["limits out of order", (s) => { s.nfs.cache.freePercent = { run: 5, cull: 7, stop: 3 }; }, "nfs.cache.freePercent", /stop < cull < run \(they are 3, 7, 5\)/],
    ["equal limits", (s) => { s.nfs.cache.freePercent = { run: 7, cull: 7, stop: 3 }; }, "nfs.cache.freePercent", /stop < cull < run/],
    ["a limit of 100 %", (s) => { s.nfs.cache.freePercent = { run: 100, cull: 7, stop: 3 }; }, "nfs.cache.freePercent.run", /99/],
    ["a negative limit", (s) => { s.nfs.cache.freePercent = { run: 10, cull: 7, stop: -1 }; }, "nfs.cache.freePercent.stop", /0/],
    ["an unknown key", (s) => { s.nfs.cache.size = "50G"; }, "nfs.cache", /size/],
  ];
  it.each(rejected)("refuses %s", (_what, mutate, key, says) => {
    expectProblem(
      problemsOf(() => seeds(), mutate),
      key,
      says,
    );
  });

  it("accepts a folder of its own under /var/cache, /srv or a disk of its own", () => {
    for (const dir of ["/var/cache/modelshare-nvme", "/srv/fscache", "/nvme/cache"])
      expect(
        problemsOf(
          () => seeds(),
          (s) => (s.nfs.cache.dir = dir),
        ),
      ).toEqual([]);
  });
});

describe("nfs.cache: what it renders", () => {
  const cache = () => parse(seeds({ enabled: true, dir: "/nvme/cache", freePercent: { run: 20, cull: 15, stop: 5 } })).nfs.cache;

  it("cachefilesd's config: the folder, the tag, the same limits for space and files", () => {
    expect(renderCachefilesdConf(cache()).split("\n")).toEqual([
      "# Written by modelshare (nfs.cache): rewritten on every converge, removed on destroy.",
      "dir /nvme/cache",
      "tag modelshare",
      "brun 20%",
      "bcull 15%",
      "bstop 5%",
      "frun 20%",
      "fcull 15%",
      "fstop 5%",
    ]);
  });

  it("its unit: the module loaded, the daemon in the foreground on modelshare's config, up before remote filesystems", () => {
    expect(renderCacheUnit().split("\n")).toEqual([
      "# Written by modelshare (nfs.cache): removed on destroy.",
      "[Unit]",
      "Description=modelshare: the local cache of NFS reads (cachefilesd)",
      "After=local-fs.target",
      "Before=remote-fs-pre.target",
      "Wants=remote-fs-pre.target",
      "",
      "[Service]",
      "ExecStartPre=/sbin/modprobe -q cachefiles",
      "ExecStart=/sbin/cachefilesd -n -s -f /etc/modelshare/cachefilesd.conf",
      "Restart=on-failure",
      "",
      "[Install]",
      "WantedBy=multi-user.target",
    ]);
  });

  it("the mount: fsc, and its unit waits for the cache's daemon; without the cache neither", () => {
    const on = parse(seeds());
    const [root] = mountsOf(on.nfs, on.storage, "192.168.0.6");
    expect(root.options).toBe("nfsvers=4.2,hard,rw,_netdev,fsc");
    const unit = renderMountUnit(root).split("\n");
    expect(unit).toContain(`Wants=network-online.target ${CACHE_UNIT}`);
    expect(unit).toContain(`After=network-online.target ${CACHE_UNIT}`);
    const off = parse(seedsWithNfs());
    const [plain] = mountsOf(off.nfs, off.storage, "192.168.0.6");
    expect(plain.options).toBe("nfsvers=4.2,hard,rw,_netdev");
    expect(renderMountUnit(plain)).not.toContain("cachefilesd");
  });

  it("the plan: each NFS worker's cache, before its mount, which waits for it; none on the storage node or with the cache off", () => {
    const plan = planSite(parse(seeds()));
    const caches = plan.filter((p) => p.kind === "nfs-cache");
    expect(caches.map((p) => [p.name, p.node.name, p.type])).toEqual([
      ["gpu1-nfs-cache", "gpu1", "modelshare:cache:NfsCache"],
      ["gpu2-nfs-cache", "gpu2", "modelshare:cache:NfsCache"],
    ]);
    const exported = plan.find((p) => p.kind === "nfs-server")!.name;
    for (const w of ["gpu1", "gpu2"]) expect(plan.find((p) => p.name === `${w}-nfs-mount`)?.after).toEqual([exported, `${w}-nfs-cache`]);
    expect(plan.findIndex((p) => p.name === "gpu1-nfs-cache")).toBeLessThan(plan.findIndex((p) => p.name === "gpu1-nfs-mount"));
    expect(planSite(parse(seedsWithNfs())).filter((p) => p.kind === "nfs-cache")).toEqual([]);
  });

  it("the program: shellcheck-clean, the folder's refusals before anything is installed, remove empties only the cache", () => {
    const site = parse(seeds());
    const text = renderNfsCache(site.nfs.cache, site.storage);
    expect(shellcheck([text])).toBe("");
    const body = text.slice(text.indexOf("converge_privileged() {"));
    // Each step's first line is indented by two (a file's content in a quoted value is not).
    const steps = body
      .slice(0, body.indexOf("\n}"))
      .split("\n")
      .slice(1)
      .filter((l) => /^  \S/.test(l))
      .map((l) => l.trim().split(" ")[0]);
    expect(steps).toEqual(["cache_kernel", "cache_dir", "cache_previous", "cache_packages", "cache_file", "cache_unit", "cache_service", "cache_moved", ":"]);
  });
});
