import { z } from "zod";
import type { Add } from "../concern";
import { isLocal } from "../node/hostRules";
import { SERVICES, type ServiceName, type Services } from "../services/schema";

/**
 * The `modelshare:kubernetes` section: an existing cluster that runs some of the site's services
 * (`services.<name>.target: kubernetes`) on the storage node's NFS export. modelshare makes only
 * its own objects in one namespace the admin made, and never deletes a byte: every volume it
 * declares keeps its data (Retain) when the claim or the stack goes.
 */

/** A DNS label (RFC 1123): what a namespace name must be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const clusterService = z
  .strictObject({
    gpus: z
      .number({ error: "must be a whole number of GPUs (0 for none)" })
      .int({ error: "must be a whole number of GPUs (0 for none)" })
      .min(0)
      .max(64)
      .default(0)
      .describe("GPUs the pod requests (nvidia.com/gpu): the cluster's device plugin hands them out."),
    serviceType: z
      .enum(["ClusterIP", "NodePort", "LoadBalancer"], { error: "must be ClusterIP, NodePort or LoadBalancer" })
      .default("ClusterIP")
      .describe("How the service is reached: ClusterIP (the default: inside the cluster, or through your ingress), NodePort or LoadBalancer."),
  })
  .default({ gpus: 0, serviceType: "ClusterIP" });

export const kubernetesSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe("Run the services whose target is kubernetes on an existing cluster."),
    kubeconfigKey: z
      .string()
      .optional()
      .describe(
        "Name of the secret config key holding the kubeconfig (pulumi config set --secret <name> < kubeconfig); unset: the ambient one (KUBECONFIG or ~/.kube/config).",
      ),
    context: z.string().optional().describe("The kubeconfig context to use (default: its current context)."),
    namespace: z
      .string()
      .regex(DNS_LABEL, "must be a DNS label: lower-case letters, digits and -, at most 63, starting and ending with a letter or digit")
      .default("modelshare")
      .describe("The namespace modelshare's objects go in; it must exist (modelshare never makes or deletes a namespace)."),
    volumes: z
      .enum(["nfs", "csi"], { error: "must be nfs or csi" })
      .default("nfs")
      .describe("How pods reach the export: nfs (the in-tree NFS volume source) or csi (csi-driver-nfs, nfs.csi.k8s.io, which must be installed)."),
    services: z
      .strictObject(Object.fromEntries(SERVICES.map((s) => [s, clusterService])) as Record<ServiceName, typeof clusterService>)
      .default(Object.fromEntries(SERVICES.map((s) => [s, clusterService.parse(undefined)])) as Record<ServiceName, z.output<typeof clusterService>>)
      .describe("Per service, what it gets in the cluster: gpus, serviceType."),
  })
  .default({
    enabled: false,
    namespace: "modelshare",
    volumes: "nfs",
    services: Object.fromEntries(SERVICES.map((s) => [s, clusterService.parse(undefined)])) as Record<ServiceName, z.output<typeof clusterService>>,
  });

export type Kubernetes = z.output<typeof kubernetesSchema>;

/** Services that run in the cluster. */
export const clusterServices = (services: Services): ServiceName[] => SERVICES.filter((s) => services[s].enabled && services[s].target === "kubernetes");

/** Rules across sections: where a cluster service's storage comes from, and what it may not also be. */
export function checkKubernetes(
  site: {
    nodes: ReadonlyArray<{ host: string; roles: readonly string[] }>;
    kubernetes: Kubernetes;
    services: Services;
    storage: { intake: string };
    nfs: { enabled: boolean; clients: readonly string[] };
  },
  add: Add,
): void {
  const k = site.kubernetes;
  const inCluster = clusterServices(site.services);
  for (const s of SERVICES) {
    const svc = site.services[s];
    if (svc.target !== "kubernetes") continue;
    if (!k.enabled) add(`services.${s}.target`, "is kubernetes, but kubernetes.enabled is false; turn the kubernetes section on, or set target: nodes");
    if (svc.nodes.length > 0)
      add(
        `services.${s}.nodes`,
        "lists SSH nodes, but target is kubernetes: a service runs on nodes or in the cluster, not both; empty nodes, or set target: nodes",
      );
    if (svc.pull === "never") add(`services.${s}.pull`, "is never, which means an image imported on SSH nodes; a cluster pulls its images: set pull: missing");
    if (svc.modelsWritable && site.storage.intake === "staging")
      add(`services.${s}.modelsWritable`, "is true, but storage.intake is staging: only the intake writes the model store; drop modelsWritable");
    if (svc.bind !== "127.0.0.1" || svc.allowFrom.length > 0)
      add(
        `services.${s}.bind`,
        "and allowFrom publish a port on an SSH node; in the cluster a Service publishes it (kubernetes.services.<name>.serviceType): remove them",
      );
  }
  if (inCluster.length === 0) return;
  const server = site.nodes.findIndex((n) => n.roles.includes("nfs-server"));
  if (server >= 0 && isLocal(site.nodes[server]))
    add(`nodes[${server}].host`, "is this machine's own name, but the cluster's pods mount the export from it; give the storage node's network address");
  if (!site.nfs.enabled)
    add("nfs.enabled", `is false, but ${inCluster.join(", ")} run in the cluster, whose pods mount the storage node's NFS export: turn nfs on`);
  else if (site.nfs.clients.length === 0)
    add(
      "nfs.clients",
      "is empty, so only the worker nodes may mount the export; add the network of the cluster's nodes (e.g. 10.0.0.0/24), whose pods mount it",
    );
}
