import { posix } from "node:path";
import type { Storage } from "./schema";

/** A folder the storage layout manages, with the mode group it belongs to. */
export interface ManagedDir {
  path: string;
  mode: string;
}

/** One links folder and its links: name -> link text (relative to the links folder). */
export interface LinkFolder {
  /** The folder as configured (relative to root); it names the folder's SymlinkSet. */
  sub: string;
  folder: string;
  /** The link text of every category link, as `readlink` must print it. */
  links: Array<{ name: string; link: string }>;
  /** The common prefix of the link texts: `<relative path to the model store>`. */
  prefix: string;
}

const at = (root: string, sub: string) => posix.join(root, sub);

export const modelStoreDir = (s: Storage) => at(s.root, s.models);
export const categoryDir = (s: Storage, category: string) => posix.join(modelStoreDir(s), category);

/** Every folder of the layout, parents before children, each once. */
export function layoutDirs(s: Storage): ManagedDir[] {
  const models = s.modes.models;
  const user = s.modes.user;
  const leaves: Array<[string, string]> = [
    ...s.categories.map((c): [string, string] => [posix.join(s.models, c), models]),
    [s.ollamaModels, models],
    [s.comfyuiCustomNodes, models],
    ...s.outputs.map((o): [string, string] => [posix.join(s.user, "output", o), user]),
    [posix.join(s.user, "output"), user],
    [posix.join(s.user, "input"), user],
    [posix.join(s.user, "workflows"), user],
    [s.projects, user],
    [s.mediaCache, user],
    // A links folder's parents belong to the layout; the folder itself to its SymlinkSet.
    ...s.links.filter((l) => l.includes("/")).map((l): [string, string] => [posix.dirname(l), user]),
  ];
  const dirs = new Map<string, string>([[s.root, user]]);
  for (const [sub, mode] of leaves) {
    const parts = sub.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const path = at(s.root, parts.slice(0, i).join("/"));
      if (!dirs.has(path)) dirs.set(path, mode);
    }
  }
  return [...dirs].map(([path, mode]) => ({ path, mode })).sort((a, b) => depth(a.path) - depth(b.path));
}

const depth = (p: string) => p.split("/").length;

/** The links folders, each with relative link texts into the model store. */
export function linkFolders(s: Storage): LinkFolder[] {
  return s.links.map((sub) => {
    const folder = at(s.root, sub);
    const prefix = posix.relative(folder, modelStoreDir(s));
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
  "workflows", "prompts", "generated", "generated/images", "generated/videos", "generated/audio",
  "intermediate", "intermediate/latents", "intermediate/masks", "intermediate/frames", "final",
] as const;

export const projectDir = (s: Storage, id: string) => posix.join(s.root, s.projects, id);

export function projectDirs(s: Storage, ids: readonly string[]): ManagedDir[] {
  return ids.flatMap((id) => [projectDir(s, id), ...PROJECT_FOLDERS.map((f) => posix.join(projectDir(s, id), f))])
    .map((path) => ({ path, mode: s.modes.user }));
}
