import { posix } from "node:path";
import { planItem, type Concern } from "../concern";
import { rejectedRel, stagingRel } from "../storage/schema";
import { renderIntake } from "./program";

const sections = {};

/**
 * `storage.intake: staging`: uploads land in a staging folder, and only what validates reaches
 * the model store, which only the intake's own account writes.
 */
export const intake: Concern<typeof sections> = {
  name: "intake",
  sections,
  check(site, add) {
    if (site.storage.intake !== "staging") return;
    if (!site.catalog.enabled)
      add(
        "catalog.enabled",
        "is false, but storage.intake is staging, which judges every upload with the catalog's tool; set catalog.enabled: true, or intake: direct",
      );
  },
  plan(site, { storageNode: node, ready }) {
    if (site.storage.intake !== "staging") return [];
    return [
      planItem({
        kind: "intake",
        type: "modelshare:intake:UploadIntake",
        name: `${node.name}-intake`,
        node,
        // The tool judges with catalog.py, which the catalog item puts in place.
        after: [...ready(node, true), `${node.name}-catalog`],
        programs: [{ text: renderIntake(site.storage, site.catalog), removes: true }],
        outputs: { staging: posix.join(site.storage.root, stagingRel(site.storage)), rejected: posix.join(site.storage.root, rejectedRel(site.storage)) },
      }),
    ];
  },
};
