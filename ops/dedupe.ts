import { renderCatalogDedupe } from "../components/catalog/program";
import { planSite } from "../components/plan";
import type { StackSite } from "../components/stackConfig";
import { checkNode, human, type DedupeRow } from "./check";

/**
 * `npm run dedupe -- <stack>`: on the storage node the catalog, as the storage owner, makes each
 * name whose content is byte for byte another's (same filesystem, owner and mode) a hard link to
 * it. No name is ever removed, and nothing is read that check has not hashed first: the index
 * says which names may match, a byte-for-byte comparison decides. It runs as a check-variant
 * program: no converge lock is held while it reads.
 */
export const DEDUPE_USAGE = "usage: npm run dedupe -- <stack>";

export interface DedupeResult {
  node: string;
  rows: DedupeRow[];
  /** Why it did not run, or stopped (the node unreachable, the catalog's refusal). */
  error?: string;
}

export async function dedupeSite(site: StackSite): Promise<DedupeResult | string> {
  const item = planSite(site.config).find((i) => i.kind === "catalog");
  if (!item)
    return "the catalog is off for this stack (modelshare:catalog enabled: false): there is no index to dedupe from; turn it on, converge, run npm run check, then dedupe";
  if (site.config.storage.intake === "staging")
    return "storage.intake is staging: the store is modelshare-intake's, and dedupe runs as the storage owner, who cannot change it; dedupe is for intake: direct stores";
  const program = { ...item.programs[0], name: `${item.name}-dedupe`, text: renderCatalogDedupe(site.config.catalog, site.config.storage), converges: false };
  const n = await checkNode(item.node, [{ ...item, programs: [program] }], site);
  const c = n.components[0];
  return { node: n.node, rows: c?.dedupe ?? [], ...(n.error ? { error: n.error } : c?.refusal ? { error: c.refusal } : {}) };
}

/** The human summary: each name linked, each skipped with its reason, the space saved. */
export function formatDedupe(r: DedupeResult): string {
  const out: string[] = [];
  for (const row of r.rows) {
    if (row.kind === "linked") out.push(`linked ${row.path} to ${row.canonical} (${human(row.size)})`);
    else if (row.kind === "skipped") out.push(`left ${row.path}: ${row.reason}`);
  }
  const saved = r.rows.find((x) => x.kind === "saved");
  if (r.error) out.push(`dedupe on ${r.node} stopped: ${r.error}`);
  else if (saved && saved.kind === "saved") out.push(`dedupe on ${r.node}: ${saved.files} name(s) now share content with another; ${human(saved.bytes)} freed`);
  return `${out.join("\n")}\n`;
}
