import { posix } from "node:path";
import { rejectedRel, stagingRel, type Storage } from "./schema";

/**
 * A folder the storage layout manages. `holder` says whose it is: "owner" for a leaf, where the
 * storage owner (and so SMB users and containers) writes; "root" for the skeleton above the
 * leaves and for code, which the owner must never be able to rename, replace or write.
 */
export interface ManagedDir {
  path: string;
  mode: string;
  holder: "root" | "owner" | "intake";
}

/**
 * With `storage.intake: staging` the store's category folders are this account's: the intake
 * service writes there as it, and nobody who writes as the storage owner (SMB users,
 * containers, custom nodes) can add, change or replace a model. Everyone may read them.
 */
export const INTAKE_ACCOUNT = "modelshare-intake";
export const INTAKE_MODE = "0755";

/** The skeleton's mode: everyone may enter and list, only its holder may change a name. */
export const SKELETON_MODE = "0755";

/** One links folder and its links: name -> link text (relative to the links folder). */
export interface LinkFolder {
  /** The folder as configured (relative to root); it names the folder's SymlinkSet. */
  sub: string;
  folder: string;
  /** The link text of every category link, as `readlink` must print it. */
  links: Array<{ name: string; link: string }>;
  /** The common prefix of the link texts: `<relative path to the model store (or staging area)>`. */
  prefix: string;
}

const at = (root: string, sub: string) => posix.join(root, sub);

export const modelStoreDir = (s: Storage) => at(s.root, s.models);
export const categoryDir = (s: Storage, category: string) => posix.join(modelStoreDir(s), category);
/** Where uploads land: the store itself (intake direct), or the staging area (staging). */
export const uploadDir = (s: Storage) => (s.intake === "staging" ? at(s.root, stagingRel(s)) : modelStoreDir(s));
export const stagingDir = (s: Storage, category: string) => posix.join(s.root, stagingRel(s), category);
export const rejectedDir = (s: Storage, category: string) => posix.join(s.root, rejectedRel(s), category);
/** The folder a category's upload links lead to. */
export const uploadCategoryDir = (s: Storage, category: string) => posix.join(uploadDir(s), category);

/**
 * Every folder of the layout, parents before children, each once. The leaves are the owner's
 * (store categories, Ollama's folder, output/<UI>, input, workflows, the media cache); every
 * folder above them, the links folders' parents and ComfyUI's custom_nodes (code, which no
 * uploader may write) are the skeleton: root's, 0755. Leaves never nest (the schema keeps the
 * areas disjoint), so no owner's folder ever holds a skeleton folder.
 */
export function layoutDirs(s: Storage): ManagedDir[] {
  const models = s.modes.models;
  const user = s.modes.user;
  const staging = s.intake === "staging";
  const leaves: Array<[string, string, ManagedDir["holder"]]> = [
    ...s.categories.map((c): [string, string, ManagedDir["holder"]] => [posix.join(s.models, c), staging ? INTAKE_MODE : models, staging ? "intake" : "owner"]),
    ...(staging
      ? s.categories.flatMap((c): Array<[string, string, "owner"]> => [
          [posix.join(stagingRel(s), c), user, "owner"],
          [posix.join(rejectedRel(s), c), user, "owner"],
        ])
      : []),
    [s.ollamaModels, models, "owner"],
    [s.comfyuiCustomNodes, SKELETON_MODE, "root"],
    ...s.outputs.map((o): [string, string, "owner"] => [posix.join(s.user, "output", o), user, "owner"]),
    [posix.join(s.user, "output"), SKELETON_MODE, "root"],
    [posix.join(s.user, "input"), user, "owner"],
    [posix.join(s.user, "workflows"), user, "owner"],
    [s.projects, SKELETON_MODE, "root"],
    [s.mediaCache, user, "owner"],
    // A links folder's parents belong to the layout; the folder itself to its SymlinkSet.
    ...s.links.filter((l) => l.includes("/")).map((l): [string, string, "root"] => [posix.dirname(l), SKELETON_MODE, "root"]),
  ];
  const dirs = new Map<string, ManagedDir>([[s.root, { path: s.root, mode: SKELETON_MODE, holder: "root" }]]);
  for (const [sub, mode, holder] of leaves) {
    const parts = sub.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const path = at(s.root, parts.slice(0, i).join("/"));
      if (!dirs.has(path)) dirs.set(path, i === parts.length ? { path, mode, holder } : { path, mode: SKELETON_MODE, holder: "root" });
    }
  }
  return [...dirs.values()].sort((a, b) => depth(a.path) - depth(b.path));
}

const depth = (p: string) => p.split("/").length;

/** The links folders, each with relative link texts into where uploads land (uploadDir). */
export function linkFolders(s: Storage): LinkFolder[] {
  return s.links.map((sub) => {
    const folder = at(s.root, sub);
    const prefix = posix.relative(folder, uploadDir(s));
    return {
      sub,
      folder,
      prefix,
      links: s.categories.map((name) => ({ name, link: posix.join(prefix, name) })),
    };
  });
}

/** Each project's folders (seed 003's layout), parents first: the project, then what it holds. */
export const PROJECT_FOLDERS = [
  "workflows",
  "prompts",
  "generated",
  "generated/images",
  "generated/videos",
  "generated/audio",
  "intermediate",
  "intermediate/latents",
  "intermediate/masks",
  "intermediate/frames",
  "final",
] as const;

export const projectDir = (s: Storage, id: string) => posix.join(s.root, s.projects, id);

/**
 * Each project's folders: the project folder itself is a leaf (root makes it in the skeleton's
 * `projects` folder and gives it to the owner), what it holds the owner makes.
 */
export function projectDirs(s: Storage, ids: readonly string[]): ManagedDir[] {
  return ids.flatMap((id) => [
    { path: projectDir(s, id), mode: s.modes.user, holder: "owner" as const },
    ...PROJECT_FOLDERS.map((f) => ({ path: posix.join(projectDir(s, id), f), mode: s.modes.user, holder: "owner" as const })),
  ]);
}
