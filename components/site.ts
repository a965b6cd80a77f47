import * as pulumi from "@pulumi/pulumi";
import { isLocal, type Site as SiteConfig, type SiteNode } from "./config";
import type { NodeTarget } from "./node/command";
import { planSite } from "./plan";
import { NfsMount } from "./nfs/mount";
import { NfsServer } from "./nfs/server";
import { ServiceContainer } from "./services/container";
import { DockerHost } from "./services/host";
import { NodeEnv } from "./installers/env";
import { OllamaInstaller } from "./installers/ollama";
import { ComfyUIInstaller } from "./installers/comfyui";
import type { ContainerSpec } from "./services/spec";
import { SmbShare, type ShareFolder } from "./smb/share";
import { StorageLayout } from "./storage/layout";
import { SymlinkSet } from "./storage/symlinkSet";

export interface SiteArgs {
  config: SiteConfig;
  /** Each SSH node's private key (secret), by node name. */
  sshKeys: Record<string, pulumi.Input<string>>;
  /** Each SMB user's password (secret), by user name. */
  smbPasswords?: Record<string, pulumi.Input<string>>;
  /** `modelshare:convergeToken`: carried by every program, so a new value re-runs them all (repair). */
  convergeToken?: string;
}

/** The whole site: for each node, the components its roles need (components/plan.ts). */
export class Site extends pulumi.ComponentResource {
  readonly storageNode: string;
  readonly modelStore: pulumi.Output<string>;
  readonly linkFolders: pulumi.Output<string[]>;
  readonly categoryFolders: pulumi.Output<Record<string, string>>;
  /** Each project's folder (modelshare:projects). */
  readonly projectFolders: pulumi.Output<Record<string, string>>;
  /** The SMB share, when the site has one: Explorer's and Finder's way to each user folder. */
  readonly smbShare?: { unc: pulumi.Output<string>; url: pulumi.Output<string>; folders: pulumi.Output<Record<string, ShareFolder>> };
  /** The NFS export, when the site has one: what to mount, how, and where each worker has it. */
  readonly nfs?: { export: pulumi.Output<string>; mountCommand: pulumi.Output<string>; mountPoints: pulumi.Output<Record<string, string>> };
  /** Each node's service containers: node -> service -> its container and URL. */
  readonly services?: pulumi.Output<Record<string, Record<string, ServiceAddress>>>;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:site:Site", name, {}, opts);
    const plan = planSite(args.config);
    const token = args.convergeToken;
    let layout: StorageLayout | undefined;
    const sets: SymlinkSet[] = [];
    let smb: SmbShare | undefined;
    let nfsServer: NfsServer | undefined;
    const mounts: Record<string, NfsMount> = {};
    const hosts: Record<string, DockerHost> = {};
    const containers: Record<string, Record<string, ServiceAddress>> = {};
    for (const p of plan) {
      const node = nodeTarget(p.node, args.sshKeys);
      if (p.kind === "layout") {
        layout = new StorageLayout(p.name, { node, storage: p.storage, projects: p.projects, token }, { parent: this });
      } else if (p.kind === "smb") {
        // After the layout and the links: the share shows their folders.
        smb = new SmbShare(p.name, { node, host: p.node.host, smb: p.smb, storage: p.storage, passwords: args.smbPasswords ?? {}, token }, { parent: this, dependsOn: [...(layout ? [layout] : []), ...sets] });
      } else if (p.kind === "nfs-server") {
        nfsServer = new NfsServer(p.name, { node, host: p.node.host, nfs: p.nfs, storage: p.storage, clients: p.clients, token }, { parent: this, dependsOn: [...(layout ? [layout] : []), ...sets] });
      } else if (p.kind === "nfs-mount") {
        // Every mount waits for the export (and its marker).
        mounts[p.node.name] = new NfsMount(p.name, { node, server: p.server, nfs: p.nfs, storage: p.storage, token }, { parent: this, dependsOn: nfsServer ? [nfsServer] : [] });
      } else if (p.kind === "ollama") {
        // After the folder exists where this node sees it: the layout, or the NFS mount.
        new OllamaInstaller(p.name, { node, storage: p.storage, base: p.base, token }, { parent: this, dependsOn: mounts[p.node.name] ?? (layout ? [layout] : []) });
      } else if (p.kind === "comfyui") {
        new ComfyUIInstaller(p.name, { node, storage: p.storage, base: p.base, install: p.install, sharedCustomNodes: p.sharedCustomNodes, token }, { parent: this, dependsOn: mounts[p.node.name] ?? (layout ? [layout] : []) });
      } else if (p.kind === "env") {
        // After what it names exists: the layout on the storage node, the mount on a worker.
        new NodeEnv(p.name, { node, storage: p.storage, base: p.base, sharedCustomNodes: p.sharedCustomNodes, token }, { parent: this, dependsOn: mounts[p.node.name] ?? (layout ? [layout] : []) });
      } else if (p.kind === "docker") {
        // Docker waits for the node's storage: the NFS mount on a worker, the layout and links
        // on the storage node. Every container on the node waits for docker, and so for both.
        const storageReady = mounts[p.node.name] ?? [...(layout ? [layout] : []), ...sets];
        hosts[p.node.name] = new DockerHost(p.name, { node, storage: p.storage, containers: p.containers, mountUnits: p.mountUnits, dockerUser: p.dockerUser, token }, { parent: this, dependsOn: storageReady });
      } else if (p.kind === "service") {
        const host = hosts[p.node.name];
        containers[p.node.name] = { ...containers[p.node.name], [p.spec.service]: serviceAddress(p.node, p.spec) };
        new ServiceContainer(p.name, { spec: p.spec, provider: host.provider }, { parent: this, dependsOn: [host, ...(mounts[p.node.name] ? [mounts[p.node.name]] : [])] });
      } else {
        sets.push(new SymlinkSet(p.name, { node, storage: p.storage, set: p.set, token }, { parent: this, dependsOn: layout ? [layout] : [] }));
      }
    }
    if (!layout) throw new Error("modelshare: a site always has a storage layout");

    this.storageNode = plan[0].node.name;
    this.modelStore = layout.modelStore;
    this.categoryFolders = layout.categoryFolders;
    this.projectFolders = layout.projectFolders;
    this.linkFolders = pulumi.all(sets.map((s) => s.folder));
    if (smb) this.smbShare = { unc: smb.unc, url: smb.url, folders: smb.folders };
    if (nfsServer) {
      this.nfs = {
        export: nfsServer.export,
        mountCommand: nfsServer.mountCommand,
        mountPoints: pulumi.all(Object.fromEntries(Object.entries(mounts).map(([n, m]) => [n, m.mountPoint]))),
      };
    }
    if (Object.keys(containers).length > 0) this.services = pulumi.output(containers);
    this.registerOutputs({ storageNode: this.storageNode, modelStore: this.modelStore, linkFolders: this.linkFolders, categoryFolders: this.categoryFolders, projectFolders: this.projectFolders, smbShare: this.smbShare, nfs: this.nfs, services: this.services });
  }
}

/** Where a service answers: its container on the node, and the URL of its first TCP port. */
export interface ServiceAddress {
  container: string;
  url?: string;
}

function serviceAddress(node: SiteNode, spec: ContainerSpec): ServiceAddress {
  const port = spec.ports.find((p) => p.protocol === "tcp");
  if (!port) return { container: spec.name };
  const host = port.ip && port.ip !== "0.0.0.0" ? port.ip : node.host;
  return { container: spec.name, url: `http://${host.includes(":") ? `[${host}]` : host}:${port.external}` };
}

export function nodeTarget(node: SiteNode, sshKeys: Record<string, pulumi.Input<string>>): NodeTarget {
  if (isLocal(node)) return { name: node.name, local: true };
  const privateKey = sshKeys[node.name];
  if (privateKey === undefined) throw new Error(`modelshare: no SSH key was loaded for node ${node.name}`);
  return { name: node.name, local: false, host: node.host, port: node.port, user: node.user, privateKey, hostKey: node.hostKey };
}
