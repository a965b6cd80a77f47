import type { PlanContext, PlanItem, PlannedProgram } from "./concern";
import { CONCERNS } from "./concerns";
import type { Site, SiteNode } from "./config";

export type { PlanItem, PlannedProgram } from "./concern";

/**
 * Which components each node gets, with their programs and their order, decided once: `Site`
 * declares them as resources for `pulumi up`, and `npm run check` runs the same programs' check
 * variants. Each concern (concerns.ts) adds its items in list order. Pure: no Pulumi here.
 */
export function planSite(site: Site): PlanItem[] {
  const storageNode = site.nodes.find((n) => n.roles.includes("storage"));
  if (!storageNode) throw new Error("modelshare: a validated site always has a storage node");
  const items: PlanItem[] = [];
  const ctx: PlanContext = {
    storageNode,
    base: (node: SiteNode) => (node.name === storageNode.name ? site.storage.root : site.nfs.mountPoint),
    ready(node: SiteNode, links = false) {
      const mount = items.find((i) => i.kind === "nfs-mount" && i.node.name === node.name);
      if (mount && node.name !== storageNode.name) return [mount.name];
      return items.filter((i) => i.kind === "layout" || (links && i.kind === "links")).map((i) => i.name);
    },
  };
  for (const concern of CONCERNS) items.push(...concern.plan(site, ctx));
  checkOrder(items);
  return items;
}

/** Every `after` names an item planned before it: a mistake here fails naming both. */
export function checkOrder(items: readonly PlanItem[]): void {
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.name)) throw new Error(`modelshare: two plan items are named ${item.name}`);
    for (const a of item.after) {
      if (seen.has(a)) continue;
      const later = items.some((i) => i.name === a);
      throw new Error(
        `modelshare: plan item ${item.name} waits for ${a}, which ${later ? "is planned after it (its concern comes later in concerns.ts)" : "is not planned"}`,
      );
    }
    seen.add(item.name);
  }
}

/** The secrets some programs read after themselves on stdin (plain: callers keep them secret). */
export interface ProgramSecrets {
  smbPasswords: Record<string, string>;
}

/** A program's whole stdin for a run of its own (check): its text, then its secret lines. */
export function stdinOf(program: PlannedProgram, secrets: ProgramSecrets): string {
  return program.text + (program.smbPasswords ?? []).map((u) => `${secrets.smbPasswords[u]}\n`).join("");
}
