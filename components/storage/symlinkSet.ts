import * as pulumi from "@pulumi/pulumi";
import type { Storage } from "./schema";
import { runProgram, type NodeTarget } from "../node/command";
import { call, callRows } from "../shell/quote";
import { DIRS, renderProgram, shellLib } from "../shell/script";
import { chmodMode, ownerArgs } from "./layout";
import { categoryDir, SKELETON_MODE, type LinkFolder } from "./paths";

const LINKS = shellLib(__dirname, "links");

export interface SymlinkSetArgs {
  node: NodeTarget;
  storage: Storage;
  /** The folder and its links, from `linkFolders`. */
  set: LinkFolder;
  /** The stack's convergeToken (repair), stamped into the program. */
  token?: string;
}

/**
 * A folder of category links into the model store (e.g. storage-user/models-upload/checkpoints
 * -> ../../storage-models/models/checkpoints), so SMB users drop files straight into the store.
 */
export class SymlinkSet extends pulumi.ComponentResource {
  readonly folder: pulumi.Output<string>;
  readonly links: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: SymlinkSetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:storage:SymlinkSet", name, {}, opts);
    runProgram(`${name}-converge`, args.node, { text: renderSymlinkSet(args.storage, args.set), removes: true, token: args.token },
      { parent: this, dependsOn: opts?.dependsOn }); // a component's dependsOn does not reach its children by itself
    this.folder = pulumi.output(args.set.folder);
    this.links = pulumi.output(Object.fromEntries(args.set.links.map((l) => [l.name, `${args.set.folder}/${l.name}`])));
    this.registerOutputs({ folder: this.folder, links: this.links });
  }
}

/**
 * Converge, as root: the links folder is skeleton (root's, 0755), so no one else can rename,
 * replace or add a link in it; a real folder standing where a link belongs is handed to the
 * owner, who moves what it holds into the store; root then removes the emptied folder and makes
 * the links. Remove (destroy): only links that still read exactly as made, and the folder only if
 * left empty.
 */
export function renderSymlinkSet(s: Storage, set: LinkFolder): string {
  const owner = ownerArgs(s);
  const names = set.links.map((l) => l.name);
  return renderProgram({
    title: `category links in ${set.folder}`,
    libs: [DIRS, LINKS],
    root: s.root,
    owner,
    converge: {
      privileged: [
        callRows("ensure_tree", [[set.folder, "root", chmodMode(SKELETON_MODE)]], [owner.uid, owner.gid]),
        ...(owner.uid ? [call("hand_over", set.folder, owner.uid, owner.gid, ...names)] : []),
        call("prune_links", set.folder, set.prefix, ...names),
        ...set.links.map((l) => call("ensure_link", `${set.folder}/${l.name}`, l.link, categoryDir(s, l.name))),
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
