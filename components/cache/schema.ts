import { z } from "zod";
import type { Add } from "../concern";
import { isWithin, pathProblem } from "../pathRules";

/**
 * `nfs.cache`: a local cache of the storage on each NFS worker (Linux FS-Cache, run by
 * cachefilesd), so that a model read once loads from the worker's own disk after that. Part of
 * the nfs section (it changes how workers mount), checked and planned by the cache concern.
 */
const percent = (fallback: number, what: string) => z.number().int().min(0).max(99).default(fallback).describe(what);

export const cacheSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe("Cache what each NFS worker reads on its local disk (FS-Cache: cachefilesd and the fsc mount option)."),
    dir: z
      .string()
      .default("/var/cache/modelshare")
      .describe("The cache's folder on each worker's local disk (a filesystem with extended attributes: ext4, xfs, btrfs); root's, made by modelshare."),
    freePercent: z
      .strictObject({
        run: percent(10, "Above this much free space (and free files) on the cache's filesystem, the cache grows freely."),
        cull: percent(7, "Below this much, cachefilesd throws out the least recently used files."),
        stop: percent(3, "Below this much, nothing more is cached until culling has made room."),
      })
      .default({ run: 10, cull: 7, stop: 3 })
      .describe("What the cache leaves free on its disk, in percent of space and of files (cachefilesd's brun/bcull/bstop and frun/fcull/fstop)."),
  })
  .default({ enabled: false, dir: "/var/cache/modelshare", freePercent: { run: 10, cull: 7, stop: 3 } });

export type Cache = z.output<typeof cacheSchema>;

/** Trees the cache folder may never be in: the system's own, except /var/cache (the FHS place for a cache). */
const SYSTEM_TREES = [
  "/bin",
  "/boot",
  "/dev",
  "/efi",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/sys",
  "/usr",
  "/var/lib",
  "/var/log",
  "/var/run",
  "/var/lock",
  "/var/spool",
  "/var/mail",
];
/** Trees that every local user may write and that the system empties. */
const SCRATCH = ["/tmp", "/var/tmp", "/dev/shm"];
/** Folders that are shared by many (the cache needs a folder of its own inside them). */
const SHARED = ["/", "/var", "/var/cache", "/home", "/mnt", "/media", "/opt", "/srv", "/vol"];

// cachefilesd reads its config a word at a time: a space would end the path.
const PLAIN_PATH = /^[A-Za-z0-9._/@+,=-]+$/;

/** nfs.cache's rules: a folder of its own on the worker's disk, limits in their order. */
export function checkCacheSection(cache: Cache, mountPoint: string, add: Add): void {
  const key = "nfs.cache.dir";
  const dir = cache.dir;
  const shape = pathProblem(dir, true);
  if (shape) add(key, shape);
  else if (!PLAIN_PATH.test(dir)) add(key, "may hold only letters, digits and . _ / @ + , = - (no spaces): cachefilesd reads its folder as one word");
  else if (SHARED.includes(dir)) add(key, `"${dir}" is a folder many things share; give the cache one of its own, such as /var/cache/modelshare`);
  else {
    const system = SYSTEM_TREES.find((p) => isWithin(dir, p));
    const scratch = SCRATCH.find((p) => isWithin(dir, p));
    if (system) add(key, `"${dir}" is inside the system path ${system}; use a folder of its own such as /var/cache/modelshare`);
    else if (scratch) add(key, `"${dir}" is inside ${scratch}, which every local user may write and the system empties; use /var/cache/modelshare`);
    else if (isWithin(dir, mountPoint) || isWithin(mountPoint, dir))
      add(
        key,
        `"${dir}" ${isWithin(dir, mountPoint) ? "is on" : "holds"} the NFS mount (nfs.mountPoint ${mountPoint}); the cache belongs on the worker's own disk, e.g. /var/cache/modelshare`,
      );
  }
  const { run, cull, stop } = cache.freePercent;
  if (!(stop < cull && cull < run)) {
    add("nfs.cache.freePercent", `must keep stop < cull < run (they are ${stop}, ${cull}, ${run}); e.g. {run: 10, cull: 7, stop: 3}`);
  }
}
