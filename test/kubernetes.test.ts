import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { PersistentVolume } from "kubernetes-models/v1/PersistentVolume";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Service } from "kubernetes-models/v1/Service";
import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { loadSite } from "../components/loadSite";
import { Site } from "../components/site";
import { clusterObjects } from "../components/kubernetes/objects";
import { uiFolder } from "../components/services/mapping";
import { layoutDirs } from "../components/storage/paths";
import { COMFYUI_IMAGE, flatConfig, PRIVATE_KEY, SEEDS_ROOT, seedsWithNfs, type RawSite } from "./fixtures/site";
import { declare, isSecretValue, reveal } from "./harness/declare";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";

/**
 * Services in an existing cluster (issue 22): the section's rules, and the objects the cluster
 * gets, each validated against the Kubernetes API's own schemas (kubernetes-models). No cluster
 * runs here: what a real one does with them is not tested.
 */
const inCluster = (): RawSite => ({
  ...seedsWithNfs(),
  nfs: { enabled: true, clients: ["10.0.0.0/24"] },
  kubernetes: { enabled: true, namespace: "ai", services: { comfyui: { gpus: 1 } } },
  services: {
    comfyui: { enabled: true, target: "kubernetes", image: COMFYUI_IMAGE },
    ollama: { enabled: true, target: "kubernetes" },
  },
});

// kubernetes-models' types come from an ESM-only package this CommonJS project's tsc cannot
// resolve; its validate() is there at run time (the broken Deployment below proves it runs).
const valid = (model: object) => (model as unknown as { validate(): void }).validate();

const objects = (raw: RawSite = inCluster()) => {
  const site = parseSite(raw, { homedir: "/home/ada" });
  return clusterObjects({
    kubernetes: site.kubernetes,
    services: site.services,
    storage: site.storage,
    nfs: site.nfs,
    root: SEEDS_ROOT,
    server: "192.168.0.6",
  });
};

describe("modelshare:kubernetes: the cluster's objects", () => {
  it("are valid Kubernetes objects", () => {
    const o = objects();
    for (const v of o.volumes) {
      expect(() => valid(new PersistentVolume(v.volume as any))).not.toThrow();
      expect(() => valid(new PersistentVolumeClaim(v.claim as any))).not.toThrow();
    }
    for (const s of o.services) {
      expect(() => valid(new Deployment(s.deployment as any))).not.toThrow();
      expect(() => valid(new Service(s.svc as any))).not.toThrow();
    }
    // The validator is real: a Deployment without its selector is refused.
    const broken = structuredClone(o.services[0].deployment);
    delete broken.spec.selector;
    expect(() => valid(new Deployment(broken as any))).toThrow();
  });

  it("keep every byte: each volume Retain, bound by name to its claim, the store and inputs read-only at the volume", () => {
    const o = objects();
    const byClaim = Object.fromEntries(o.volumes.map((v) => [v.claim.metadata.name, v]));
    expect(Object.keys(byClaim).sort()).toEqual(["inputs", "models", "ollama", "outputs-comfyui", "workflows"]);
    for (const v of o.volumes) {
      expect(v.volume.spec.persistentVolumeReclaimPolicy).toBe("Retain");
      expect(v.volume.spec.claimRef).toEqual({ namespace: "ai", name: v.claim.metadata.name });
      expect(v.claim.spec.volumeName).toBe(v.volume.metadata.name);
      expect(v.volume.spec.storageClassName).toBe("");
    }
    expect(byClaim.models.volume.spec.nfs).toEqual({ server: "192.168.0.6", path: `${SEEDS_ROOT}/storage-models/models`, readOnly: true });
    expect(byClaim.models.volume.spec.accessModes).toEqual(["ReadOnlyMany"]);
    expect(byClaim.models.volume.spec.mountOptions).toEqual(["nfsvers=4.2", "hard", "ro"]);
    expect(byClaim.inputs.volume.spec.nfs.readOnly).toBe(true);
    expect(byClaim["outputs-comfyui"].volume.spec.nfs).toEqual({ server: "192.168.0.6", path: `${SEEDS_ROOT}/storage-user/output/ComfyUI`, readOnly: false });
    expect(byClaim.workflows.volume.spec.accessModes).toEqual(["ReadWriteMany"]);
  });

  it("mount each category where the UI looks, by sub-path of the store (the containers' mapping table), with the container's user, env and GPUs", () => {
    const comfy = objects().services.find((s) => s.service === "comfyui")!;
    const pod = comfy.deployment.spec.template.spec;
    const c = pod.containers[0];
    const checkpoints = c.volumeMounts.find((m: any) => m.subPath === "checkpoints");
    expect(checkpoints).toEqual({ name: "models", mountPath: `/models/${uiFolder("comfyui", "checkpoints")}`, readOnly: true, subPath: "checkpoints" });
    expect(c.volumeMounts).toContainEqual({ name: "inputs", mountPath: "/inputs", readOnly: true });
    expect(c.volumeMounts).toContainEqual({ name: "outputs-comfyui", mountPath: "/outputs", readOnly: false });
    expect(c.resources).toEqual({ limits: { "nvidia.com/gpu": 1 } });
    expect(pod.securityContext).toEqual({ runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true });
    expect(comfy.deployment.spec.strategy).toEqual({ type: "Recreate" });
    expect(comfy.svc.spec.type).toBe("ClusterIP");
    expect(comfy.url).toBe("http://modelshare-comfyui.ai.svc.cluster.local:8188");
    const ollama = objects().services.find((s) => s.service === "ollama")!.deployment.spec.template.spec.containers[0];
    expect(ollama.env).toEqual([{ name: "OLLAMA_MODELS", value: "/models" }]);
    expect(ollama.resources).toBeUndefined();
  });

  it("give whoever writes as the storage owner nothing to swap: each volume's folder, and each sub-path's, sits in a folder only root may change; no fsGroup, no hostPath", () => {
    // An owner who could rename a folder a volume or sub-path names could put a link there and
    // send the kubelet (root on its node) elsewhere on the export. The layout makes every folder
    // above the owner's leaves root's; each mounted folder must be one of the layout's, in one of those.
    for (const intake of ["direct", "staging"] as const) {
      const raw = inCluster();
      raw.storage = { ...raw.storage, intake };
      // A writable store (forge) only where the owner writes it; with staging only the intake does.
      if (intake === "direct") raw.services.forge = { enabled: true, target: "kubernetes", image: COMFYUI_IMAGE, modelsWritable: true };
      const site = parseSite(raw, { homedir: "/home/ada" });
      const dirs = new Map(layoutDirs(site.storage).map((d) => [d.path, d]));
      const o = objects(raw);
      const volumeOf = new Map(o.volumes.map((v) => [v.claim.metadata.name, v.volume.spec.nfs.path as string]));
      for (const path of volumeOf.values()) {
        expect(dirs.has(path), path).toBe(true);
        expect(dirs.get(posix.dirname(path))?.holder, `the folder that holds ${path}`).toBe("root");
      }
      for (const s of o.services) {
        const pod = s.deployment.spec.template.spec;
        expect(pod.securityContext.fsGroup, "kubelet would change the group of every file on the export").toBeUndefined();
        expect(pod.volumes.every((v: any) => Object.keys(v).sort().join() === "name,persistentVolumeClaim")).toBe(true);
        for (const m of pod.containers[0].volumeMounts.filter((m: any) => m.subPath)) {
          const volume = volumeOf.get(m.name)!;
          expect(dirs.has(posix.join(volume, m.subPath)), `${m.name}/${m.subPath}`).toBe(true);
          expect(dirs.get(volume)?.holder, `${volume}, which holds the sub-path ${m.subPath}`).toBe("root");
        }
      }
    }
  });

  it("reach the export through csi-driver-nfs when asked, with the same paths and flags", () => {
    const raw = inCluster();
    raw.kubernetes.volumes = "csi";
    const models = objects(raw).volumes.find((v) => v.claim.metadata.name === "models")!;
    expect(models.volume.spec.nfs).toBeUndefined();
    expect(models.volume.spec.csi).toEqual({
      driver: "nfs.csi.k8s.io",
      volumeHandle: `192.168.0.6#${SEEDS_ROOT}/storage-models/models#ai-models`,
      readOnly: true,
      volumeAttributes: { server: "192.168.0.6", share: `${SEEDS_ROOT}/storage-models/models` },
    });
    expect(() => valid(new PersistentVolume(models.volume as any))).not.toThrow();
  });

  it("are none while no service targets the cluster", () => {
    expect(objects(seedsWithNfs())).toEqual({ volumes: [], services: [] });
  });
});

describe("modelshare:kubernetes: refused configs", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["a namespace that is not a DNS label", (s) => { s.kubernetes.namespace = "AI_models"; }, "kubernetes.namespace", /must be a DNS label/],
    ["a service both on nodes and in the cluster", (s) => { s.services.comfyui.nodes = ["gpu1"]; }, "services.comfyui.nodes", /on nodes or in the cluster, not both/],
    ["a cluster service while the section is off", (s) => { s.kubernetes.enabled = false; }, "services.comfyui.target", /kubernetes\.enabled is false/],
    ["a cluster service without NFS", (s) => { s.nfs = { enabled: false }; }, "nfs.enabled", /pods mount the storage node's NFS export/],
    ["an export the cluster may not mount", (s) => { s.nfs.clients = []; }, "nfs.clients", /network of the cluster's nodes/],
    ["a cluster service with an image only on SSH nodes", (s) => { s.services.comfyui.pull = "never"; }, "services.comfyui.pull", /a cluster pulls its images/],
    ["a cluster service with a node's bind", (s) => { s.services.comfyui.bind = "node"; s.services.comfyui.allowFrom = ["10.0.0.0/24"]; }, "services.comfyui.bind", /a Service publishes it/],
    ["a fractional GPU count", (s) => { s.kubernetes.services.comfyui.gpus = 0.5; }, "kubernetes.services.comfyui.gpus", /whole number of GPUs/],
    ["an export the pods would look for on their own node", (s) => { s.nodes[0].host = "localhost"; }, "nodes[0].host", /give the storage node's network address/],
    ["an unknown target", (s) => { s.services.comfyui.target = "k8s"; }, "services.comfyui.target", /must be nodes or kubernetes/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problemsOf(inCluster, mutate), key, says);
  });
});

describe("modelshare:kubernetes under Pulumi's mocks", () => {
  const KUBECONFIG = "apiVersion: v1\nclusters:\n- name: c\n  cluster: { server: https://10.0.0.1:6443 }\nusers:\n- name: KUBE-SECRET-MARKER\n";
  const config = (raw: RawSite, kube?: string) => ({
    ...flatConfig(raw),
    "modelshare:sshKey": PRIVATE_KEY,
    ...(kube === undefined ? {} : { "modelshare:kubeconfig": kube }),
  });

  it("declares the provider, each volume before its claim, each Deployment after its claims, and keeps the kubeconfig secret", async () => {
    const raw = inCluster();
    raw.kubernetes.kubeconfigKey = "kubeconfig";
    const rs = await declare(
      { stack: "k", config: config(raw, KUBECONFIG), secretKeys: ["modelshare:sshKey", "modelshare:kubeconfig"] },
      () => new Site("site", loadSite()),
    );
    const of = (type: string) => rs.filter((r) => r.type === type);
    const [provider] = of("pulumi:providers:kubernetes");
    expect(isSecretValue(provider.inputs.kubeconfig)).toBe(true);
    expect(JSON.stringify(rs.filter((r) => r !== provider).map((r) => r.inputs))).not.toContain("KUBE-SECRET-MARKER");
    const expected = objects(inCluster());
    expect(of("kubernetes:core/v1:PersistentVolume").map((r) => reveal(r.inputs).metadata)).toEqual(
      expected.volumes.map((v) => expect.objectContaining({ name: v.volume.metadata.name })),
    );
    for (const r of [...of("kubernetes:core/v1:PersistentVolume"), ...of("kubernetes:core/v1:PersistentVolumeClaim"), ...of("kubernetes:apps/v1:Deployment")]) {
      expect(r.provider).toContain("pulumi:providers:kubernetes");
      expect(r.parent).toContain("modelshare:kubernetes:ClusterServices");
    }
    for (const claim of of("kubernetes:core/v1:PersistentVolumeClaim")) {
      const pv = rs.find((r) => r.name === claim.name.replace("-pvc-", "-pv-"))!;
      expect(claim.dependencies).toContain(pv.urn);
    }
    const comfy = rs.find((r) => r.name === "cluster-comfyui")!;
    expect(reveal(comfy.inputs).spec).toEqual(expected.services.find((s) => s.service === "comfyui")!.deployment.spec);
    for (const c of ["models", "inputs", "outputs-comfyui", "workflows"])
      expect(comfy.dependencies).toContain(rs.find((r) => r.name === `cluster-pvc-${c}`)!.urn);
  });

  it("without a kubeconfig key uses the ambient one; a key named but missing, or in plain text, is refused", async () => {
    const rs = await declare({ stack: "k", config: config(inCluster()), secretKeys: ["modelshare:sshKey"] }, () => new Site("site", loadSite()));
    expect(rs.find((r) => r.type === "pulumi:providers:kubernetes")!.inputs.kubeconfig).toBeUndefined();
    const named = inCluster();
    named.kubernetes.kubeconfigKey = "kubeconfig";
    await expect(declare({ stack: "k", config: config(named), secretKeys: ["modelshare:sshKey"] }, () => new Site("site", loadSite()))).rejects.toThrow(
      /modelshare:kubeconfig: missing; kubernetes\.kubeconfigKey names it/,
    );
    await expect(
      declare({ stack: "k", config: config(named, KUBECONFIG), secretKeys: ["modelshare:sshKey"] }, () => new Site("site", loadSite())),
    ).rejects.toThrow(/modelshare:kubeconfig: is stored in plain text/);
  });
});
