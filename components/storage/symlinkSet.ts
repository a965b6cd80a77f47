import * as pulumi from "@pulumi/pulumi";
import type { Storage } from "./schema";
import { runProgram, type NodeTarget } from "../node/command";
import { call } from "../shell/quote";
import { DIRS, renderProgram, shellLib } from "../shell/script";
import { chmodMode, ownerArgs } from "./layout";
import { categoryDir, type LinkFolder } from "./paths";

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
 * Converge: root gives the links folder, and any real folder standing where a link belongs, to
 * the owner; the owner makes the links (merging such a folder into the store first). Remove
 * (destroy): the owner removes only links that still read exactly as made, and the folder only
 * if left empty.
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
      privileged: owner.uid
        ? [call("own_dirs", owner.uid, owner.gid, set.folder), call("hand_over", set.folder, owner.uid, owner.gid, ...names)]
        : [],
      owner: [
        call("ensure_dir", set.folder, chmodMode(s.modes.user)),
        call("prune_links", set.folder, set.prefix, ...names),
        ...set.links.map((l) => call("ensure_link", `${set.folder}/${l.name}`, l.link, categoryDir(s, l.name))),
      ],
    },
    remove: {
      owner: [
        call("require_no_link", set.folder),
        ...set.links.map((l) => call("remove_link", `${set.folder}/${l.name}`, l.link)),
        call("remove_empty_dir", set.folder),
      ],
    },
  });
}
