import type { Site, SiteNode, Storage } from "./config";
import { renderStorageLayout } from "./storage/layout";
import { linkFolders, type LinkFolder } from "./storage/paths";
import { renderSymlinkSet } from "./storage/symlinkSet";

/**
 * Which components each node gets, decided once: `Site` declares them as resources, and the
 * check tool renders the same programs to run their check variants. Pure: no Pulumi here.
 */
export type Planned =
  | { kind: "layout"; name: string; node: SiteNode; storage: Storage }
  | { kind: "links"; name: string; node: SiteNode; storage: Storage; set: LinkFolder };

export function planSite(config: Site): Planned[] {
  const node = config.nodes.find((n) => n.roles.includes("storage"));
  if (!node) throw new Error("modelshare: a validated site always has a storage node");
  const storage = config.storage;
  return [
    { kind: "layout", name: `${node.name}-layout`, node, storage },
    // Named by folder, not position: a folder dropped from the config is then destroyed (its
    // links removed) instead of another folder's set being rewritten in its place.
    ...linkFolders(storage).map((set): Planned => ({ kind: "links", name: `${node.name}-links-${set.sub}`, node, storage, set })),
  ];
}

/** The program a planned component runs (what its Command carries on stdin). */
export function programOf(p: Planned): string {
  return p.kind === "layout" ? renderStorageLayout(p.storage) : renderSymlinkSet(p.storage, p.set);
}
