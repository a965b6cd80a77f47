import { planItem, type Concern } from "../concern";
import type { Site } from "../config";
import { renderModels } from "./program";
import { checkModels, modelsSchema, type Model } from "./schema";

const sections = { models: modelsSchema };

/** The declared models of a site (its `models` section: [] until the concern is registered). */
const declared = (site: Site): Model[] => (site as Site & { models?: Model[] }).models ?? [];

/** Models a site declares, fetched once into the model store as the storage owner. */
export const models: Concern<typeof sections> = {
  name: "models",
  sections,
  check(site, add) {
    checkModels(declared(site), site.storage.categories, add);
  },
  plan(site, { storageNode: node, ready }) {
    const list = declared(site);
    if (list.length === 0) return [];
    return [
      planItem({
        kind: "models",
        type: "modelshare:models:DeclaredModels",
        name: `${node.name}-models`,
        node,
        after: ready(node),
        programs: [{ text: renderModels(list, site.storage), removes: true }],
        outputs: { declared: list.map((m) => `${m.category}/${m.file}`) },
      }),
    ];
  },
};
