import { posix } from "node:path";
import type { Site } from "../config";
import { nfsServerNode } from "../nfs/nodes";
import type { Nfs } from "../nfs/schema";
import { ownEnv, serviceMounts, serviceUser } from "../services/spec";
import { SERVICE_INFO, type ServiceName, type Services } from "../services/schema";
import type { Storage } from "../storage/schema";
import { clusterServices, type Kubernetes } from "./schema";

/**
 * The cluster's side of a site as plain Kubernetes objects (what ClusterServices declares, what
 * the tests validate against the API's schemas). Pure.
 *
 * Storage: one static PersistentVolume per folder a pod mounts, each bound by name to its claim,
 * `Retain` always (deleting a claim, or the stack, never deletes a byte on the export): the model
 * store and inputs read-only (the volume itself, not only the mount), each service's outputs and
 * the workflows read-write; the categories mounted from the store by sub-path, from the same
 * mapping table the containers use (serviceMounts).
 */

export const MANAGED_BY = { "app.kubernetes.io/managed-by": "modelshare" };
/** What an NFS volume's size says: nothing (the export's free space is what counts), but the API requires one. */
const CAPACITY = "1Ti";

export interface ClusterInput {
  kubernetes: Kubernetes;
  services: Services;
  storage: Storage;
  nfs: Nfs;
  /** The storage root as the NFS server exports it. */
  root: string;
  /** The NFS server's address (its node's host). */
  server: string;
}

export interface ClusterVolume {
  /** Its folder, relative to the storage root. */
  rel: string;
  readOnly: boolean;
  volume: Record<string, any>;
  claim: Record<string, any>;
}

export interface ClusterService {
  service: ServiceName;
  deployment: Record<string, any>;
  svc: Record<string, any>;
  /** Where the cluster reaches it. */
  url: string;
}

export interface ClusterObjects {
  volumes: ClusterVolume[];
  services: ClusterService[];
}

/** Mount options as the workers have them, less the two that only mean something there (_netdev: fstab; fsc: their cachefilesd). */
export function clusterMountOptions(nfs: Nfs, readOnly: boolean): string[] {
  return [`nfsvers=${nfs.version}`, "hard", readOnly ? "ro" : "rw", ...nfs.mountOptions];
}

/** A volume's name: cluster-wide, so it carries the namespace (two sites in one cluster do not meet). */
const volumeName = (k: Kubernetes, claim: string) => `${k.namespace}-${claim}`;

function clusterVolume(input: ClusterInput, claim: string, rel: string, readOnly: boolean): ClusterVolume {
  const { kubernetes: k, nfs, root, server } = input;
  const path = posix.join(root, rel);
  const source =
    k.volumes === "csi"
      ? { csi: { driver: "nfs.csi.k8s.io", volumeHandle: `${server}#${path}#${volumeName(k, claim)}`, readOnly, volumeAttributes: { server, share: path } } }
      : { nfs: { server, path, readOnly } };
  const accessModes = [readOnly ? "ReadOnlyMany" : "ReadWriteMany"];
  const labels = { ...MANAGED_BY, "modelshare.org/claim": claim };
  return {
    rel,
    readOnly,
    volume: {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name: volumeName(k, claim), labels },
      spec: {
        capacity: { storage: CAPACITY },
        accessModes,
        persistentVolumeReclaimPolicy: "Retain",
        storageClassName: "",
        mountOptions: clusterMountOptions(nfs, readOnly),
        claimRef: { namespace: k.namespace, name: claim },
        ...source,
      },
    },
    claim: {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claim, namespace: k.namespace, labels },
      spec: { accessModes, storageClassName: "", volumeName: volumeName(k, claim), resources: { requests: { storage: CAPACITY } } },
    },
  };
}

/** Every object the cluster gets for the site's cluster services (none when there are none). */
export function clusterObjects(input: ClusterInput): ClusterObjects {
  const { kubernetes: k, services, storage: s } = input;
  const names = clusterServices(services);
  const volumes = new Map<string, ClusterVolume>();
  const out: ClusterService[] = [];
  for (const service of names) {
    const svc = services[service];
    const settings = k.services[service];
    const name = `modelshare-${service}`;
    const labels = { ...MANAGED_BY, "app.kubernetes.io/name": name };
    // The container's mounts, sources relative to the root, each turned into a claim and a sub-path.
    const mounts = serviceMounts(service, svc, s, "").map((m) => {
      const { claim, rel, sub } = claimOf(s, m.source, m.readOnly);
      if (!volumes.has(claim)) volumes.set(claim, clusterVolume(input, claim, rel, m.readOnly));
      return { claim, sub, target: m.target, readOnly: m.readOnly };
    });
    const claims = [...new Set(mounts.map((m) => m.claim))];
    const [uid, gid] = serviceUser(svc, s).split(":").map(Number);
    const env: Record<string, string> = { ...svc.env, ...ownEnv(service, svc) };
    const ports = svc.ports.map((p) => ({ containerPort: p.container, protocol: p.protocol.toUpperCase() }));
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: k.namespace, labels },
      spec: {
        replicas: 1,
        // One pod at a time: a GPU is not shared with the pod it replaces.
        strategy: { type: "Recreate" },
        selector: { matchLabels: { "app.kubernetes.io/name": name } },
        template: {
          metadata: { labels },
          spec: {
            securityContext: { runAsUser: uid, runAsGroup: gid, ...(uid !== 0 && gid !== 0 ? { runAsNonRoot: true } : {}) },
            containers: [
              {
                name: service,
                image: svc.image ?? "ollama/ollama",
                imagePullPolicy: "IfNotPresent",
                env: Object.keys(env)
                  .sort()
                  .map((n) => ({ name: n, value: env[n] })),
                ports,
                ...(settings.gpus > 0 ? { resources: { limits: { "nvidia.com/gpu": settings.gpus } } } : {}),
                volumeMounts: mounts.map((m) => ({ name: m.claim, mountPath: m.target, readOnly: m.readOnly, ...(m.sub ? { subPath: m.sub } : {}) })),
              },
            ],
            volumes: claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: c, readOnly: volumes.get(c)!.readOnly } })),
          },
        },
      },
    };
    const svcObject = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: k.namespace, labels },
      spec: {
        type: settings.serviceType,
        selector: { "app.kubernetes.io/name": name },
        ports: svc.ports.map((p) => ({ name: `${p.protocol}-${p.container}`, port: p.container, targetPort: p.container, protocol: p.protocol.toUpperCase() })),
      },
    };
    out.push({
      service,
      deployment,
      svc: svcObject,
      url: `http://${name}.${k.namespace}.svc.cluster.local:${svc.ports[0]?.container ?? SERVICE_INFO[service].port}`,
    });
  }
  return { volumes: [...volumes.values()], services: out };
}

/**
 * Which claim a container mount's source (relative to the root) comes from, and its sub-path
 * there: a category of the model store, Ollama's folder, the inputs, the workflows, or one
 * service's output folder. A read-write model store (modelsWritable) is a claim of its own.
 */
function claimOf(s: Storage, rel: string, readOnly: boolean): { claim: string; rel: string; sub?: string } {
  const under = (dir: string) => (rel.startsWith(`${dir}/`) ? rel.slice(dir.length + 1) : undefined);
  const category = under(s.models);
  if (category !== undefined) return { claim: readOnly ? "models" : "models-rw", rel: s.models, sub: category };
  if (rel === s.ollamaModels) return { claim: readOnly ? "ollama" : "ollama-rw", rel };
  if (rel === posix.join(s.user, "input")) return { claim: "inputs", rel };
  if (rel === posix.join(s.user, "workflows")) return { claim: "workflows", rel };
  const output = under(posix.join(s.user, "output"));
  if (output !== undefined) return { claim: `outputs-${output.toLowerCase()}`, rel };
  throw new Error(`modelshare: no cluster volume for ${rel}`);
}

/** A site's cluster objects, when a service runs there: the export is the NFS server node's root. */
export function siteClusterObjects(config: Site): ClusterObjects | undefined {
  const server = nfsServerNode(config);
  if (clusterServices(config.services).length === 0 || !server) return undefined;
  return clusterObjects({
    kubernetes: config.kubernetes,
    services: config.services,
    storage: config.storage,
    nfs: config.nfs,
    root: config.storage.root,
    server: server.host,
  });
}
