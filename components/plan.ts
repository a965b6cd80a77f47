import { isLocal, nfsWorkers, type Site, type SiteNode, type Storage } from "./config";
import { renderNfsMount } from "./nfs/mount";
import type { Nfs } from "./nfs/schema";
import { mountsOf, mountUnitName } from "./nfs/exports";
import { renderNfsServer } from "./nfs/server";
import { renderNodeEnv } from "./installers/env";
import { renderOllamaInstaller } from "./installers/ollama";
import { comfyuiName, renderComfyUIInstaller, type ComfyUIInstall } from "./installers/comfyui";
import { renderContainerCheck } from "./services/container";
import { renderDockerHost } from "./services/host";
import { SERVICES } from "./services/schema";
import { containerSpec, type ContainerSpec } from "./services/spec";
import type { Smb } from "./smb/schema";
import { renderSmbPasswords, renderSmbShare } from "./smb/share";
import { renderStorageLayout } from "./storage/layout";
import { linkFolders, type LinkFolder } from "./storage/paths";
import { renderSymlinkSet } from "./storage/symlinkSet";

/**
 * Which components each node gets, decided once: `Site` declares them as resources, and the
 * check tool renders the same programs to run their check variants. Pure: no Pulumi here.
 */
export type Planned =
  | { kind: "layout"; name: string; node: SiteNode; storage: Storage; projects: string[] }
  | { kind: "links"; name: string; node: SiteNode; storage: Storage; set: LinkFolder }
  | { kind: "smb"; name: string; node: SiteNode; storage: Storage; smb: Smb }
  | { kind: "nfs-server"; name: string; node: SiteNode; storage: Storage; nfs: Nfs; clients: string[] }
  | { kind: "nfs-mount"; name: string; node: SiteNode; storage: Storage; nfs: Nfs; server: string }
  | { kind: "docker"; name: string; node: SiteNode; storage: Storage; containers: ContainerSpec[]; mountUnits: string[]; dockerUser: string }
  | { kind: "service"; name: string; node: SiteNode; storage: Storage; spec: ContainerSpec }
  | { kind: "env"; name: string; node: SiteNode; storage: Storage; base: string; sharedCustomNodes: boolean }
  | { kind: "ollama"; name: string; node: SiteNode; storage: Storage; base: string }
  | { kind: "comfyui"; name: string; node: SiteNode; storage: Storage; base: string; install: ComfyUIInstall; sharedCustomNodes: boolean };

export function planSite(config: Site): Planned[] {
  const node = config.nodes.find((n) => n.roles.includes("storage"));
  if (!node) throw new Error("modelshare: a validated site always has a storage node");
  const storage = config.storage;
  const smbNode = config.nodes.find((n) => n.roles.includes("smb"));
  const nfsNode = config.nodes.find((n) => n.roles.includes("nfs-server"));
  const nfs = config.nfs.enabled && nfsNode ? config.nfs : undefined;
  const workers = nfs ? nfsWorkers(config) : [];
  return [
    { kind: "layout", name: `${node.name}-layout`, node, storage, projects: config.projects },
    // Named by folder, not position: a folder dropped from the config is then destroyed (its
    // links removed) instead of another folder's set being rewritten in its place.
    ...linkFolders(storage).map((set): Planned => ({ kind: "links", name: `${node.name}-links-${set.sub}`, node, storage, set })),
    ...(config.smb.enabled && smbNode ? [{ kind: "smb" as const, name: `${smbNode.name}-smb`, node: smbNode, storage, smb: config.smb }] : []),
    ...(nfs && nfsNode
      ? [
        { kind: "nfs-server" as const, name: `${nfsNode.name}-nfs-export`, node: nfsNode, storage, nfs, clients: [...new Set([...workers.map((w) => w.host), ...nfs.clients])] },
        ...workers.map((w) => ({ kind: "nfs-mount" as const, name: `${w.name}-nfs-mount`, node: w, storage, nfs, server: nfsNode.host })),
      ]
      : []),
    ...planServices(config, node, nfs && nfsNode ? nfsNode.host : undefined),
    // Every node that sees the storage gets /etc/modelshare/env: the storage node its root, a
    // worker its mount.
    { kind: "env" as const, name: `${node.name}-env`, node, storage, base: storage.root, sharedCustomNodes: config.comfyui.sharedCustomNodes },
    ...workers.map((w) => ({ kind: "env" as const, name: `${w.name}-env`, node: w, storage, base: config.nfs.mountPoint, sharedCustomNodes: config.comfyui.sharedCustomNodes })),
    ...config.nodes.filter((n) => config.ollama.nodes.some((o) => o.toLowerCase() === n.name.toLowerCase())).map((n) => ({
      kind: "ollama" as const, name: `${n.name}-ollama`, node: n, storage, base: n.name === node.name ? storage.root : config.nfs.mountPoint,
    })),
    ...config.comfyui.installs.map((install) => {
      const n = config.nodes.find((x) => x.name.toLowerCase() === install.node.toLowerCase()) as SiteNode;
      return { kind: "comfyui" as const, name: comfyuiName(n.name, install.path), node: n, storage, base: n.name === node.name ? storage.root : config.nfs.mountPoint, install, sharedCustomNodes: config.comfyui.sharedCustomNodes };
    }),
  ];
}

/**
 * Each node that runs services: docker (one per node), then one container per service. The
 * storage node gives its containers the local folders; a worker, its NFS mount.
 */
function planServices(config: Site, storageNode: SiteNode, nfsServer: string | undefined): Planned[] {
  const storage = config.storage;
  const out: Planned[] = [];
  for (const node of config.nodes) {
    const local = node.name === storageNode.name;
    const containers = SERVICES.flatMap((service) => {
      const svc = config.services[service];
      const entry = svc.enabled ? svc.nodes.find((n) => n.name.toLowerCase() === node.name.toLowerCase()) : undefined;
      return entry ? [containerSpec(service, svc, entry.gpus, storage, local ? storage.root : config.nfs.mountPoint, node.host)] : [];
    });
    if (containers.length === 0) continue;
    const mountUnits = local || !nfsServer ? [] : mountsOf(config.nfs, storage, nfsServer).map((m) => mountUnitName(m.where));
    // Who talks to the daemon: the SSH user; on a local node, whoever runs the program ("").
    out.push({ kind: "docker", name: `${node.name}-docker`, node, storage, containers, mountUnits, dockerUser: isLocal(node) ? "" : node.user });
    for (const spec of containers) out.push({ kind: "service", name: `${node.name}-${spec.service}`, node, storage, spec });
  }
  return out;
}

/** The secrets some programs read after themselves on stdin (plain: callers keep them secret). */
export interface ProgramSecrets {
  smbPasswords: Record<string, string>;
}

/** The commands of a planned component: each one's name and what it carries on stdin. */
export function programsOf(p: Planned, secrets: ProgramSecrets): Array<{ name: string; stdin: string }> {
  switch (p.kind) {
    case "layout":
      return [{ name: `${p.name}-converge`, stdin: renderStorageLayout(p.storage, p.projects) }];
    case "links":
      return [{ name: `${p.name}-converge`, stdin: renderSymlinkSet(p.storage, p.set) }];
    case "nfs-server":
      return [{ name: `${p.name}-converge`, stdin: renderNfsServer(p.nfs, p.storage, p.clients, p.node.host) }];
    case "nfs-mount":
      return [{ name: `${p.name}-converge`, stdin: renderNfsMount(p.nfs, p.storage, p.server) }];
    case "comfyui":
      return [{ name: `${p.name}-converge`, stdin: renderComfyUIInstaller(p.storage, p.base, p.install, p.sharedCustomNodes) }];
    case "ollama":
      return [{ name: `${p.name}-converge`, stdin: renderOllamaInstaller(p.storage, p.base) }];
    case "env":
      return [{ name: `${p.name}-converge`, stdin: renderNodeEnv(p.storage, p.base, p.sharedCustomNodes) }];
    case "docker":
      return [{ name: `${p.name}-converge`, stdin: renderDockerHost(p.dockerUser, p.containers, p.storage, p.mountUnits) }];
    case "service":
      return [{ name: `${p.name}-container`, stdin: renderContainerCheck(p.spec, p.storage) }];
    case "smb":
      return [
        { name: `${p.name}-converge`, stdin: renderSmbShare(p.smb, p.storage) },
        { name: `${p.name}-passwords`, stdin: renderSmbPasswords(p.smb, p.storage) + p.smb.users.map((u) => `${secrets.smbPasswords[u.name]}\n`).join("") },
      ];
  }
}
