import * as pulumi from "@pulumi/pulumi";
import { isLocal, type Site as SiteConfig, type SiteNode } from "./config";
import type { NodeTarget } from "./node/command";
import { planSite } from "./plan";
import { StorageLayout } from "./storage/layout";
import { SymlinkSet } from "./storage/symlinkSet";

export interface SiteArgs {
  config: SiteConfig;
  /** Each SSH node's private key (secret), by node name. */
  sshKeys: Record<string, pulumi.Input<string>>;
  /** `modelshare:convergeToken`: carried by every program, so a new value re-runs them all (repair). */
  convergeToken?: string;
}

/** The whole site: for each node, the components its roles need (components/plan.ts). */
export class Site extends pulumi.ComponentResource {
  readonly storageNode: string;
  readonly modelStore: pulumi.Output<string>;
  readonly linkFolders: pulumi.Output<string[]>;
  readonly categoryFolders: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:site:Site", name, {}, opts);
    const plan = planSite(args.config);
    const token = args.convergeToken;
    let layout: StorageLayout | undefined;
    const sets: SymlinkSet[] = [];
    for (const p of plan) {
      const node = nodeTarget(p.node, args.sshKeys);
      if (p.kind === "layout") {
        layout = new StorageLayout(p.name, { node, storage: p.storage, token }, { parent: this });
      } else {
        sets.push(new SymlinkSet(p.name, { node, storage: p.storage, set: p.set, token }, { parent: this, dependsOn: layout ? [layout] : [] }));
      }
    }
    if (!layout) throw new Error("modelshare: a site always has a storage layout");

    this.storageNode = plan[0].node.name;
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
