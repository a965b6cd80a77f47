import { planItem, type Concern } from "../concern";
import type { SiteNode } from "../config";
import { nfsServerNode, nfsWorkers } from "../nfs/nodes";
import { renderNfsCache } from "./cachefilesd";
import { checkCacheSection } from "./schema";

/** The cache's plan item on a worker: the worker's NFS mount waits for it. */
export const cacheItemName = (worker: SiteNode) => `${worker.name}-nfs-cache`;

/**
 * A local cache of NFS reads on each worker (nfs.cache: FS-Cache run by cachefilesd). Its
 * config is part of the nfs section; it is planned before the mounts, which mount with `fsc`.
 */
export const cache: Concern<Record<never, never>> = {
  name: "cache",
  sections: {},
  check(site, add) {
    checkCacheSection(site.nfs.cache, site.nfs.mountPoint, add);
  },
  plan(site) {
    if (!nfsServerNode(site) || !site.nfs.cache.enabled) return [];
    return nfsWorkers(site).map((w) =>
      planItem({
        kind: "nfs-cache",
        type: "modelshare:cache:NfsCache",
        name: cacheItemName(w),
        node: w,
        after: [],
        programs: [{ text: renderNfsCache(site.nfs.cache, site.storage), removes: true }],
        outputs: { cacheDir: site.nfs.cache.dir },
      }),
    );
  },
};
