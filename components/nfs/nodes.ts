import type { Site, SiteNode } from "../config";

/** The nodes that mount the export: every worker but the storage node (which has the files). */
export const nfsWorkers = (site: Pick<Site, "nodes">): SiteNode[] => site.nodes.filter((n) => n.roles.includes("worker") && !n.roles.includes("storage"));

/** The node that exports the storage, when the site has NFS on. */
export const nfsServerNode = (site: Pick<Site, "nodes" | "nfs">): SiteNode | undefined =>
  site.nfs.enabled ? site.nodes.find((n) => n.roles.includes("nfs-server")) : undefined;
