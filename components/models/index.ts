import { posix } from "node:path";
import { planItem, type Concern } from "../concern";
import { categoryDir } from "../storage/paths";
import { renderModels } from "./program";
import { checkModels, modelsSchema } from "./schema";

const sections = { models: modelsSchema };

/** Models a site declares, fetched once into the model store as the storage owner. */
export const models: Concern<typeof sections> = {
  name: "models",
  sections,
  check(site, add) {
    checkModels(site.models, site.storage.categories, add);
  },
  plan(site, { storageNode: node, ready }) {
    const list = site.models;
    if (list.length === 0) return [];
    return [
      planItem({
        kind: "models",
        type: "modelshare:models:DeclaredModels",
        name: `${node.name}-models`,
        node,
        after: ready(node),
        programs: [{ text: renderModels(list, site.storage), removes: true }],
        // Where each one is on the storage node, and what it must hash to.
        outputs: {
          declared: Object.fromEntries(
            list.map((m) => [`${m.category}/${m.file}`, { path: posix.join(categoryDir(site.storage, m.category), m.file), sha256: m.sha256 }]),
          ),
        },
      }),
    ];
  },
};
