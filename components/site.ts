import * as pulumi from "@pulumi/pulumi";
import { isLocal, type Site as SiteConfig, type SiteNode } from "./config";
import type { NodeTarget } from "./node/command";
import { ClusterServices } from "./kubernetes/cluster";
import { siteClusterObjects } from "./kubernetes/objects";
import { Converged } from "./node/converged";
import { planSite, type PlanItem } from "./plan";
import { DockerHost, ServiceContainer } from "./services/resources";
import type { ContainerSpec } from "./services/spec";
import type { ShareFolder } from "./smb/share";

export interface SiteArgs {
  config: SiteConfig;
  /** Each SSH node's private key (secret), by node name. */
  sshKeys: Record<string, pulumi.Input<string>>;
  /** Each SMB user's password (secret), by user name. */
  smbPasswords?: Record<string, pulumi.Input<string>>;
  /** `modelshare:convergeToken`: carried by every program, so a new value re-runs them all (repair). */
  convergeToken?: string;
  /** The cluster's kubeconfig (secret), when kubernetes.kubeconfigKey names one. */
  kubeconfig?: pulumi.Input<string>;
}

/** The whole site: every plan item (components/plan.ts) as a component, after what it waits for. */
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
  /** The declared models (modelshare:models): `category/file` -> its path on the storage node and SHA-256. */
  readonly declaredModels?: pulumi.Output<Record<string, { path: string; sha256: string }>>;
  /** With storage.intake: staging: where uploads wait, and where the rejected ones go with their reasons. */
  readonly intake?: pulumi.Output<{ staging: string; rejected: string }>;
  /** Each node's service containers: node -> service -> its container and URL. */
  readonly services?: pulumi.Output<Record<string, Record<string, ServiceAddress>>>;
  /** The services in the cluster (kubernetes): service -> its URL inside the cluster. */
  readonly clusterServices?: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:site:Site", name, {}, opts);
    const plan = planSite(args.config);
    const declared = new Map<string, pulumi.Resource>();
    for (const item of plan) {
      const node = nodeTarget(item.node, args.sshKeys);
      const dependsOn = item.after.map((a) => declared.get(a) as pulumi.Resource); // planSite checked each is declared before
      const options = { parent: this, dependsOn };
      // Docker's provider and the containers it makes are not programs: they keep their own case.
      if (item.kind === "docker") {
        declared.set(item.name, new DockerHost(item.name, { node, program: item.programs[0], token: args.convergeToken }, options));
      } else if (item.kind === "service" && item.spec) {
        const host = declared.get(item.after[0]);
        if (!(host instanceof DockerHost)) throw new Error(`modelshare: ${item.name} waits for ${item.after[0]}, which is not a docker host`);
        declared.set(item.name, new ServiceContainer(item.name, { spec: item.spec, provider: host.provider }, options));
      } else {
        declared.set(item.name, new Converged(item.name, { item, node, smbPasswords: args.smbPasswords ?? {}, token: args.convergeToken }, options));
      }
    }

    const of = (kind: string) => plan.filter((i) => i.kind === kind);
    const [layout] = of("layout");
    const out = <T>(item: PlanItem, key: string) => pulumi.output(item.outputs[key] as T);
    this.storageNode = layout.node.name;
    this.modelStore = out(layout, "modelStore");
    this.categoryFolders = out(layout, "categoryFolders");
    this.projectFolders = out(layout, "projectFolders");
    this.linkFolders = pulumi.output(of("links").map((i) => i.outputs.folder as string));
    const [smb] = of("smb");
    if (smb) this.smbShare = { unc: out(smb, "unc"), url: out(smb, "url"), folders: out(smb, "folders") };
    const [server] = of("nfs-server");
    if (server) {
      this.nfs = {
        export: out(server, "export"),
        mountCommand: out(server, "mountCommand"),
        mountPoints: pulumi.output(Object.fromEntries(of("nfs-mount").map((m) => [m.node.name, m.outputs.mountPoint as string]))),
      };
    }
    const [models] = of("models");
    if (models) this.declaredModels = out(models, "declared");
    const [intake] = of("intake");
    if (intake) this.intake = pulumi.output({ staging: intake.outputs.staging as string, rejected: intake.outputs.rejected as string });
    const containers: Record<string, Record<string, ServiceAddress>> = {};
    for (const s of of("service")) if (s.spec) containers[s.node.name] = { ...containers[s.node.name], [s.spec.service]: serviceAddress(s.node, s.spec) };
    if (Object.keys(containers).length > 0) this.services = pulumi.output(containers);
    const cluster = siteClusterObjects(args.config);
    if (cluster) {
      // After the export exists: its pods mount it.
      const exported = of("nfs-server").map((i) => declared.get(i.name) as pulumi.Resource);
      const k = args.config.kubernetes;
      this.clusterServices = new ClusterServices(
        "cluster",
        { objects: cluster, kubeconfig: args.kubeconfig, context: k.context },
        { parent: this, dependsOn: exported },
      ).urls;
    }
    this.registerOutputs({
      storageNode: this.storageNode,
      modelStore: this.modelStore,
      linkFolders: this.linkFolders,
      categoryFolders: this.categoryFolders,
      projectFolders: this.projectFolders,
      smbShare: this.smbShare,
      nfs: this.nfs,
      declaredModels: this.declaredModels,
      intake: this.intake,
      services: this.services,
      clusterServices: this.clusterServices,
    });
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
