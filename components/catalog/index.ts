import { planItem, type Concern } from "../concern";
import { renderCatalog } from "./program";
import { catalogSchema } from "./schema";

const sections = { catalog: catalogSchema };

/** What modelshare knows about each file in the model store (judged, hashed, indexed). */
export const catalog: Concern<typeof sections> = {
  name: "catalog",
  sections,
  check() {},
  plan(site, { storageNode: node, ready }) {
    if (!site.catalog.enabled) return [];
    return [
      planItem({
        kind: "catalog",
        type: "modelshare:catalog:ModelCatalog",
        name: `${node.name}-catalog`,
        node,
        after: ready(node),
        programs: [{ text: renderCatalog(site.catalog, site.storage), removes: true }],
      }),
    ];
  },
};
