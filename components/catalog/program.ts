import { readFileSync } from "node:fs";
import { join } from "node:path";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import { modelStoreDir } from "../storage/paths";
import type { Storage } from "../storage/schema";
import type { Catalog } from "./schema";

const CATALOG = shellLib(__dirname, "catalog");
/** The tool the storage owner runs (stdlib Python): it judges, hashes and indexes the store. */
export const CATALOG_TOOL = readFileSync(join(__dirname, "catalog.py"), "utf8").trimEnd();

/**
 * On the storage node: converge puts the tool in place (root's, outside the tree) and makes the
 * index's folder (the owner's, outside the tree); check runs the tool as the storage owner over
 * the model store, one `report: model …` row per file and a closing `report: catalog …` row
 * (bytes it read, files it hashed). Converge never hashes: only check reads the models, and it
 * holds no lock. Remove takes the tool; the index stays beside the models it describes.
 */
export function renderCatalog(catalog: Catalog, s: Storage): string {
  return renderProgram({
    title: `the catalog of the model store ${modelStoreDir(s)}`,
    libs: [SYSTEM, CATALOG],
    storage: s,
    converge: { privileged: [call("catalog_tool", CATALOG_TOOL), call("catalog_index")] },
    report: { privileged: [call("catalog_report", modelStoreDir(s), String(catalog.stableSeconds))] },
    remove: { privileged: [call("catalog_remove")] },
  });
}

/**
 * Opt-in, run by hand: the check's scan, then every other name of a model's content (judged
 * ok, same device) becomes a hard link to one file, as the storage owner (`report: dedupe …`
 * rows, then `report: dedupe saved BYTES NAMES`). Only a report phase, so it runs as `bash -s
 * check` and holds no converge lock (hashing never does); the tool must be this version's
 * (catalog_tool only looks, checking) and the index's folder there (converge made it).
 */
export function renderCatalogDedupe(catalog: Catalog, s: Storage): string {
  return renderProgram({
    title: `the dedupe of the model store ${modelStoreDir(s)}`,
    libs: [SYSTEM, CATALOG],
    storage: s,
    converge: {},
    report: { privileged: [call("catalog_tool", CATALOG_TOOL), call("catalog_dedupe", modelStoreDir(s), String(catalog.stableSeconds))] },
  });
}
