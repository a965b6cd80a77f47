import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { Storage } from "../storage/schema";
import { bindAddress } from "./bindRules";
import { uiFolder } from "./mapping";
import { OLLAMA_IMAGE, SERVICE_INFO, type Gpus, type Service, type ServiceName } from "./schema";

/**
 * What one service's container is on one node, as plain data: the docker.Container's inputs
 * (ServiceContainer passes them as they are), also what the check variant compares and what the
 * unit tests read. Pure.
 */
export interface ContainerMount {
  type: "bind";
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ContainerPort {
  internal: number;
  external: number;
  protocol: "tcp" | "udp";
  ip: string;
}

export interface DeviceRequest {
  driver: "nvidia";
  count?: number;
  deviceIds?: string[];
  capabilities: string[];
}

export interface ContainerSpec {
  /** The container's name on the node. */
  name: string;
  service: ServiceName;
  image: string;
  /** The image must already be on the node (`pull: never`). */
  local: boolean;
  user: string;
  envs: string[];
  mounts: ContainerMount[];
  ports: ContainerPort[];
  restart: "unless-stopped";
  deviceRequests: DeviceRequest[];
  labels: Array<{ label: string; value: string }>;
  /** Who may connect to the ports (bind not loopback): the node's firewall, not the container's (outside the digest). */
  allowFrom: string[];
}

/** The label that marks a container as modelshare's, and the one carrying its spec's digest. */
export const SERVICE_LABEL = "org.modelshare.service";
export const SPEC_LABEL = "org.modelshare.spec";

export const containerName = (service: ServiceName) => `modelshare-${service}`;

/** GPUs as docker's device requests (what `--gpus` makes): none asks for nothing. */
export function deviceRequests(gpus: Gpus): DeviceRequest[] {
  if (gpus === "none") return [];
  if (gpus === "all") return [{ driver: "nvidia", count: -1, capabilities: ["gpu"] }];
  if (typeof gpus === "number") return [{ driver: "nvidia", count: gpus, capabilities: ["gpu"] }];
  return [{ driver: "nvidia", deviceIds: [...gpus], capabilities: ["gpu"] }];
}

/** The storage owner as docker's user, unless the service names its own. */
export function serviceUser(svc: Service, s: Storage): string {
  if (svc.user) return svc.user;
  if (s.owner === "unmanaged") throw new Error("modelshare: a validated site gives a user when the owner is unmanaged");
  return `${s.owner.uid}:${s.owner.gid}`;
}

/**
 * Bind mounts, sources as the node sees them (`base`: the storage root on the storage node,
 * the NFS mount point on a worker). Each category the UI has a folder for is mounted at that
 * folder under `paths.models`; the output folder is the service's own; inputs are read-only.
 */
export function serviceMounts(service: ServiceName, svc: Service, s: Storage, base: string): ContainerMount[] {
  const at = (rel: string) => posix.join(base, rel);
  const models = !svc.modelsWritable;
  if (service === "ollama") return [{ type: "bind", source: at(s.ollamaModels), target: svc.paths.models, readOnly: models }];
  const mounts: ContainerMount[] = [];
  for (const category of s.categories) {
    const folder = uiFolder(service, category);
    if (!folder) continue;
    mounts.push({ type: "bind", source: at(posix.join(s.models, category)), target: posix.join(svc.paths.models, folder), readOnly: models });
  }
  const output = SERVICE_INFO[service].output as string;
  mounts.push(
    { type: "bind", source: at(posix.join(s.user, "output", output)), target: svc.paths.outputs, readOnly: false },
    { type: "bind", source: at(posix.join(s.user, "input")), target: svc.paths.inputs, readOnly: true },
    { type: "bind", source: at(posix.join(s.user, "workflows")), target: svc.paths.workflows, readOnly: false },
  );
  return mounts;
}

/** The variables modelshare sets itself (the config may not set them too). */
export const ownEnv = (service: ServiceName, svc: Service): Record<string, string> => (service === "ollama" ? { OLLAMA_MODELS: svc.paths.models } : {});

/** `host`: the node's nodes[].host, what `bind: node` publishes on. */
export function containerSpec(service: ServiceName, svc: Service, gpus: Gpus, s: Storage, base: string, host = "127.0.0.1"): ContainerSpec {
  const env = { ...svc.env, ...ownEnv(service, svc) };
  const ip = bindAddress(svc.bind, { host });
  const spec: Omit<ContainerSpec, "labels" | "allowFrom"> = {
    name: containerName(service),
    service,
    image: svc.image ?? OLLAMA_IMAGE,
    local: svc.pull === "never",
    user: serviceUser(svc, s),
    envs: Object.keys(env)
      .sort()
      .map((k) => `${k}=${env[k]}`),
    mounts: serviceMounts(service, svc, s, base),
    // Published on the bind address only: docker's default (every address, IPv6 through
    // docker-proxy) would bypass the node's firewall.
    ports: svc.ports.map((p) => ({ internal: p.container, external: p.host, protocol: p.protocol, ip })),
    restart: "unless-stopped",
    deviceRequests: deviceRequests(gpus),
  };
  return {
    ...spec,
    labels: [
      { label: SERVICE_LABEL, value: service },
      { label: SPEC_LABEL, value: specDigest(spec) },
    ],
    allowFrom: [...svc.allowFrom],
  };
}

/** A digest of everything the container is made from: the check variant compares it. */
export function specDigest(spec: object): string {
  return createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16);
}
