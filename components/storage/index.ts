import type { Concern } from "../concern";
import { planItem } from "../concern";
import { isLocal } from "../node/hostRules";
import { renderStorageLayout } from "./layout";
import { categoryDir, linkFolders, modelStoreDir, projectDir } from "./paths";
import { checkStorageSection, projectsSchema, storageSchema } from "./schema";
import { renderSymlinkSet } from "./symlinkSet";

const sections = { storage: storageSchema, projects: projectsSchema };

/** The storage node's folder tree, and its folders of category links. */
export const storage: Concern<typeof sections> = {
  name: "storage",
  sections,
  check(site, add) {
    const storageNode = site.nodes.find((n) => n.roles.includes("storage"));
    if (site.storage.root.startsWith("~/") && storageNode && !isLocal(storageNode)) {
      add("storage.root", "may start with ~/ only when the storage node's host is localhost; give an absolute path");
    }
    checkStorageSection(site.storage, add);
  },
  plan(site, { storageNode: node }) {
    const s = site.storage;
    // No delete: destroy leaves every folder (and so every model) where it is.
    const layout = planItem({
      kind: "layout",
      type: "modelshare:storage:StorageLayout",
      name: `${node.name}-layout`,
      node,
      after: [],
      programs: [{ text: renderStorageLayout(s, site.projects), removes: false }],
      outputs: {
        root: s.root,
        modelStore: modelStoreDir(s),
        categoryFolders: Object.fromEntries(s.categories.map((c) => [c, categoryDir(s, c)])),
        projectFolders: Object.fromEntries(site.projects.map((id) => [id, projectDir(s, id)])),
      },
    });
    // Named by folder, not position: a folder dropped from the config is then destroyed (its
    // links removed) instead of another folder's set being rewritten in its place.
    const sets = linkFolders(s).map((set) =>
      planItem({
        kind: "links",
        type: "modelshare:storage:SymlinkSet",
        name: `${node.name}-links-${set.sub}`,
        node,
        after: [layout.name],
        programs: [{ text: renderSymlinkSet(s, set), removes: true }],
        outputs: { folder: set.folder, links: Object.fromEntries(set.links.map((l) => [l.name, `${set.folder}/${l.name}`])) },
      }),
    );
    return [layout, ...sets];
  },
};
