import { posix } from "node:path";
import { call } from "../shell/quote";
import { renderProgram, shellLib } from "../shell/script";
import { categoryDir } from "../storage/paths";
import { CACHE_TAG } from "./cachefilesd";
import type { Storage } from "../storage/schema";

const WARM = shellLib(__dirname, "warm");

export interface WarmArgs {
  /** The storage as configured (its root on the storage node, its owner). */
  storage: Storage;
  /** Where the tree is on the node that reads it: a worker's nfs.mountPoint. */
  base: string;
  /** The categories to read (storage.categories, or the ones asked for). */
  categories: readonly string[];
  /** The NFS mounts the reads go through, checked before any read; none: a local tree. */
  mounts: readonly string[];
  /** nfs.cache: without it (or without fsc on the mount) the node is told a warm fills only the page cache. */
  cache: boolean;
}

/** A category's folder as the node sees it: below `base` where the storage node has it below its root. */
export const warmDir = (s: Storage, base: string, category: string) => posix.join(base, posix.relative(s.root, categoryDir(s, category)));

/**
 * `npm run warm`'s program for one worker: every file of the chosen categories read once
 * through the worker's NFS mount, so that FS-Cache keeps it on the worker's disk. A read only:
 * it has no converge steps and runs as `bash -s check FRAME`, which takes no lock (a long warm
 * never holds up a converge) and prints `report:` lines the CLI counts; root only checks the
 * mounts, the reads run as the storage owner (warm.sh says how links are kept out).
 */
export function renderWarm(a: WarmArgs): string {
  return renderProgram({
    title: `warm ${a.categories.length ? a.categories.join(", ") : "no category"} under ${a.base}`,
    libs: [WARM],
    storage: { root: a.base, owner: a.storage.owner },
    converge: {},
    report: {
      privileged: [call("warm_mounts", a.cache ? CACHE_TAG : "", ...a.mounts)],
      owner: [call("warm_categories", ...a.categories.map((c) => warmDir(a.storage, a.base, c)))],
    },
  });
}
