import * as pulumi from "@pulumi/pulumi";
import { isLocal, type Site as SiteConfig, type SiteNode } from "./config";
import type { NodeTarget } from "./nodeCommand";
import { linkFolders } from "./paths";
import { StorageLayout } from "./storageLayout";
import { SymlinkSet } from "./symlinkSet";

export interface SiteArgs {
  config: SiteConfig;
  /** Each SSH node's private key (secret), by node name. */
  sshKeys: Record<string, pulumi.Input<string>>;
}

/** The whole site: for each node, the components its roles need. */
export class Site extends pulumi.ComponentResource {
  readonly storageNode: string;
  readonly modelStore: pulumi.Output<string>;
  readonly linkFolders: pulumi.Output<string[]>;
  readonly categoryFolders: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:site:Site", name, {}, opts);
    const { config } = args;
    const storageNode = config.nodes.find((n) => n.roles.includes("storage"));
    if (!storageNode) throw new Error("modelshare: a validated site always has a storage node");
    const target = nodeTarget(storageNode, args.sshKeys);

    const layout = new StorageLayout(`${storageNode.name}-layout`, { node: target, storage: config.storage }, { parent: this });
    // Named by folder, not position: a folder dropped from the config is then destroyed (its
    // links removed) instead of another folder's set being rewritten in its place.
    const sets = linkFolders(config.storage).map((set) =>
      new SymlinkSet(`${storageNode.name}-links-${set.sub}`, { node: target, storage: config.storage, set }, { parent: this, dependsOn: [layout] }));

    this.storageNode = storageNode.name;
    this.modelStore = layout.modelStore;
    this.categoryFolders = layout.categoryFolders;
    this.linkFolders = pulumi.all(sets.map((s) => s.folder));
    this.registerOutputs({ storageNode: this.storageNode, modelStore: this.modelStore, linkFolders: this.linkFolders, categoryFolders: this.categoryFolders });
  }
}

export function nodeTarget(node: SiteNode, sshKeys: Record<string, pulumi.Input<string>>): NodeTarget {
  if (isLocal(node)) return { name: node.name, local: true };
  const privateKey = sshKeys[node.name];
  if (privateKey === undefined) throw new Error(`modelshare: no SSH key was loaded for node ${node.name}`);
  return { name: node.name, local: false, host: node.host, port: node.port, user: node.user, privateKey, hostKey: node.hostKey };
}
