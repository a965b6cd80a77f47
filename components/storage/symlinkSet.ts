import type { Storage } from "./schema";
import { call, callRows } from "../shell/quote";
import { chmodMode, DIRS, LINKS, ownerArgs, renderProgram } from "../shell/script";
import { SKELETON_MODE, uploadCategoryDir, type LinkFolder } from "./paths";

/**
 * Converge, as root: the links folder is skeleton (root's, 0755), so no one else can rename,
 * replace or add a link in it; a real folder standing where a link belongs is handed to the
 * owner, who moves what it holds into the store (the staging area, with intake: staging); root
 * then removes the emptied folder and makes the links. Remove (destroy): only links that still read exactly as made, and the folder only if
 * left empty.
 */
export function renderSymlinkSet(s: Storage, set: LinkFolder): string {
  const owner = ownerArgs(s);
  const names = set.links.map((l) => l.name);
  return renderProgram({
    title: `category links in ${set.folder}`,
    libs: [DIRS, LINKS],
    storage: s,
    converge: {
      privileged: [
        callRows("ensure_tree", [[set.folder, "root", chmodMode(SKELETON_MODE)]], [owner.uid, owner.gid]),
        ...(owner.uid ? [call("hand_over", set.folder, owner.uid, owner.gid, ...names)] : []),
        call("prune_links", set.folder, set.prefix, ...names),
        ...set.links.map((l) => call("ensure_link", `${set.folder}/${l.name}`, l.link, uploadCategoryDir(s, l.name))),
      ],
    },
    remove: {
      privileged: [
        call("require_no_link", set.folder),
        ...set.links.map((l) => call("remove_link", `${set.folder}/${l.name}`, l.link)),
        call("remove_empty_dir", set.folder),
      ],
    },
  });
}
