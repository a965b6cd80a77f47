import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkSite, exitCode, formatText } from "../ops/check";
import { formatHtml } from "../ops/html";
import { checkCluster, kubeTarget } from "../ops/kube";
import { siteFromConfig } from "../components/stackConfig";
import { COMFYUI_IMAGE, flatConfig, PRIVATE_KEY, SEEDS_ROOT, seedsWithNfs } from "./fixtures/site";

/**
 * `npm run check`'s cluster side (issue 22, item 3) against a stand-in Kubernetes API the test
 * starts on 127.0.0.1: what each GET answers decides each finding. The real API's answers are
 * larger; only the fields check reads are served.
 */
const TOKEN = "kube-test-token";
let server: Server;
let api: Record<string, unknown> = {};
const calls: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    calls.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    const body = api[req.url ?? ""];
    if (body === undefined) return void res.writeHead(404).end("{}");
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
});
afterAll(() => server.close());

const kubeconfig = (token = TOKEN) => {
  const { port } = server.address() as AddressInfo;
  return `apiVersion: v1
kind: Config
current-context: lab
contexts:
- name: lab
  context: { cluster: c, user: u }
clusters:
- name: c
  cluster: { server: "http://127.0.0.1:${port}" }
users:
- name: u
  user: { token: ${token} }
`;
};

// The seeds' storage node alone, as the pods would reach it; check never dials it in these tests.
const site = (kube: string) => {
  const raw = {
    ...seedsWithNfs(),
    nodes: [{ name: "storage", host: "192.168.0.6", roles: ["storage", "nfs-server"], insecureSkipHostKeyCheck: true }],
    storage: { root: SEEDS_ROOT },
    nfs: { enabled: true, clients: ["10.0.0.0/24"] },
    kubernetes: { enabled: true, namespace: "ai", kubeconfigKey: "kubeconfig" },
    services: { comfyui: { enabled: true, target: "kubernetes", image: COMFYUI_IMAGE } },
  };
  const secrets = ["modelshare:kubeconfig", "modelshare:sshKey"];
  return siteFromConfig({ ...flatConfig(raw), "modelshare:kubeconfig": kube, "modelshare:sshKey": PRIVATE_KEY }, (k) => secrets.includes(k));
};

const healthy = () => {
  const out: Record<string, unknown> = {};
  for (const claim of ["models", "inputs", "outputs-comfyui", "workflows"]) {
    out[`/api/v1/persistentvolumes/ai-${claim}`] = { spec: { persistentVolumeReclaimPolicy: "Retain" } };
    out[`/api/v1/namespaces/ai/persistentvolumeclaims/${claim}`] = { spec: { volumeName: `ai-${claim}` }, status: { phase: "Bound" } };
  }
  out["/apis/apps/v1/namespaces/ai/deployments/modelshare-comfyui"] = { spec: { replicas: 1 }, status: { readyReplicas: 1 } };
  out["/api/v1/namespaces/ai/services/modelshare-comfyui"] = { spec: {} };
  return out;
};

describe("check's cluster side", () => {
  it("finds nothing on a healthy cluster, asking with the kubeconfig's token, GETs only", async () => {
    api = healthy();
    calls.length = 0;
    const cluster = await checkCluster(site(kubeconfig()));
    expect(cluster?.error).toBeUndefined();
    expect(cluster?.components.flatMap((c) => c.drift)).toEqual([]);
    expect(calls.every((c) => c.startsWith("GET "))).toBe(true);
    expect(calls).toHaveLength(10);
  });

  it("names a claim not bound, a volume that would be deleted, pods not ready and a missing Service; exit 1", async () => {
    api = healthy();
    api["/api/v1/namespaces/ai/persistentvolumeclaims/models"] = { spec: {}, status: { phase: "Pending" } };
    api["/api/v1/persistentvolumes/ai-inputs"] = { spec: { persistentVolumeReclaimPolicy: "Delete" } };
    api["/apis/apps/v1/namespaces/ai/deployments/modelshare-comfyui"] = { spec: { replicas: 1 }, status: {} };
    delete api["/api/v1/namespaces/ai/services/modelshare-comfyui"];
    const cluster = (await checkCluster(site(kubeconfig())))!;
    expect(cluster.components.flatMap((c) => c.drift.map((d) => `${c.component}: ${d}`))).toEqual([
      "cluster-volume-models: the claim ai/models is Pending, not Bound to ai-models",
      "cluster-volume-inputs: the volume ai-inputs would be deleted with its claim, not retained",
      "cluster-comfyui: the Deployment ai/modelshare-comfyui has 0 of 1 pod(s) ready",
      "cluster-comfyui: the Service ai/modelshare-comfyui is missing",
    ]);
    expect(exitCode([cluster])).toBe(1);
  });

  it("prints what the API says as data: escape bytes in a claim's phase or volume come out escaped", async () => {
    api = healthy();
    api["/api/v1/namespaces/ai/persistentvolumeclaims/models"] = { spec: { volumeName: "x\u001b[2Jy" }, status: { phase: "Lost\u001b]0;owned\u0007" } };
    const cluster = (await checkCluster(site(kubeconfig())))!;
    expect(cluster.components.find((c) => c.component === "cluster-volume-models")!.drift).toEqual([
      "the claim ai/models is Lost\\x1b]0;owned\\x07 on x\\x1b[2Jy, not Bound to ai-models",
    ]);
  });

  it("an API that refuses the token, or cannot be reached, is an error naming it (exit 2), not a finding", async () => {
    api = healthy();
    const refused = (await checkCluster(site(kubeconfig("wrong"))))!;
    expect(refused.error).toMatch(/^cluster: the Kubernetes API at http:\/\/127\.0\.0\.1:\d+ answered 401 to GET /);
    expect(exitCode([refused])).toBe(2);
    const gone = (await checkCluster(site(kubeconfig().replace(/127\.0\.0\.1:\d+/, "127.0.0.1:9"))))!;
    expect(gone.error).toMatch(/could not be reached/);
  });

  it("is part of npm run check's answer, as one more entry", async () => {
    api = healthy();
    // The storage node's side run on this machine instead (no address outside the test's is dialed).
    const s = site(kubeconfig());
    s.config.nodes[0] = { ...s.config.nodes[0], host: "localhost" };
    const nodes = await checkSite(s);
    expect(nodes.map((n) => n.node)).toContain("cluster");
    expect(formatText(nodes)).toContain("cluster");
    // The page of the site shows it as a row of its own, and each service's URL in the cluster.
    const page = formatHtml(s.config, nodes, "k");
    expect(page).toMatch(/<td>cluster<\/td><td><code>http:\/\/127\.0\.0\.1:\d+<\/code><\/td><td>Kubernetes cluster<\/td>/);
    expect(page).toContain("<code>http://modelshare-comfyui.ai.svc.cluster.local:8188</code>");
  });
});

describe("the kubeconfig as check reads it", () => {
  const base = (user: string, cluster = "{ server: https://10.0.0.1:6443/, certificate-authority-data: Q0E= }") =>
    `current-context: a\ncontexts:\n- name: a\n  context: { cluster: c, user: u }\nclusters:\n- name: c\n  cluster: ${cluster}\nusers:\n- name: u\n  user: ${user}\n`;

  it("takes the context's server, CA, client certificate and token", () => {
    const t = kubeTarget(base("{ client-certificate-data: Q0VSVA==, client-key-data: S0VZ }"));
    expect(t.server).toBe("https://10.0.0.1:6443");
    expect([t.ca?.toString(), t.cert?.toString(), t.key?.toString(), t.insecure]).toEqual(["CA", "CERT", "KEY", false]);
  });

  it("refuses, in a sentence, a missing context and a credential plugin it would have to run", () => {
    expect(() => kubeTarget(base("{ token: x }"), "other")).toThrow("the kubeconfig has no context named other; set kubernetes.context to one it has");
    expect(() => kubeTarget(base("{ exec: { command: aws } }"))).toThrow(/gets its credentials from a plugin, which check does not run/);
  });
});
