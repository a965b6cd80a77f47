import * as pulumi from "@pulumi/pulumi";
import type { Storage } from "./config";
import { runScript, type NodeTarget } from "./nodeCommand";
import type { LinkFolder } from "./paths";
import { call } from "./shell/quote";
import { renderScript } from "./shell/script";
import { chmodMode, ownerArgs } from "./storageLayout";

export interface SymlinkSetArgs {
  node: NodeTarget;
  storage: Storage;
  /** The folder and its links, from `linkFolders`. */
  set: LinkFolder;
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
    runScript(`${name}-converge`, args.node, {
      create: renderSymlinkSet(args.storage, args.set),
      delete: renderSymlinkUnset(args.set),
    }, { parent: this, dependsOn: opts?.dependsOn }); // a component's dependsOn does not reach its children by itself
    this.folder = pulumi.output(args.set.folder);
    this.links = pulumi.output(Object.fromEntries(args.set.links.map((l) => [l.name, `${args.set.folder}/${l.name}`])));
    this.registerOutputs({ folder: this.folder, links: this.links });
  }
}

export function renderSymlinkSet(s: Storage, set: LinkFolder): string {
  const [uid, gid] = ownerArgs(s);
  return renderScript({
    title: `category links in ${set.folder}`,
    libs: ["dirs", "links"],
    body: [
      call("ensure_dir", set.folder, uid, gid, chmodMode(s.modes.user)),
      call("prune_links", set.folder, set.prefix, ...set.links.map((l) => l.name)),
      ...set.links.map((l) => call("ensure_link", `${set.folder}/${l.name}`, l.link)),
    ],
  });
}

/** Destroy: only links that still read exactly as made; the folder only if left empty. */
export function renderSymlinkUnset(set: LinkFolder): string {
  return renderScript({
    title: `remove the category links in ${set.folder}`,
    libs: ["links"],
    body: [
      ...set.links.map((l) => call("remove_link", `${set.folder}/${l.name}`, l.link)),
      call("remove_empty_dir", set.folder),
    ],
  });
}
