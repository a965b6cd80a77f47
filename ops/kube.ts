import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { homedir } from "node:os";
import { parse } from "yaml";
import type { StackSite } from "../components/stackConfig";
import { siteClusterObjects } from "../components/kubernetes/objects";
import type { ComponentCheck, NodeCheck } from "./check";
import { printable } from "./text";

/** What the API says is data, not text for a terminal: whoever may edit these objects could put escape bytes in them. */
const said = (value: unknown) => printable(String(value));

/**
 * `npm run check`'s view of the cluster (modelshare:kubernetes): each claim Bound to its own
 * volume, each volume still Retain, each Deployment's pods ready, each Service there; read from
 * the Kubernetes API with the stack's kubeconfig (or the ambient one), GETs only. The cluster is
 * reported as one more "node" (`cluster`), so text, JSON, HTML and the exit code need nothing new.
 */

export interface KubeTarget {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  insecure: boolean;
}

const b64 = (v: unknown) => (typeof v === "string" ? Buffer.from(v, "base64") : undefined);
const file = (v: unknown) => (typeof v === "string" ? readFileSync(v) : undefined);

/** How to reach the API: the context's cluster and user, from the kubeconfig's text. Throws a sentence. */
export function kubeTarget(text: string, context?: string): KubeTarget {
  const doc = parse(text) as Record<string, any> | null;
  const name = context ?? doc?.["current-context"];
  const ctx = (doc?.contexts ?? []).find((c: any) => c?.name === name)?.context;
  if (!ctx)
    throw new Error(`the kubeconfig has no context ${name === undefined ? "(and no current-context)" : `named ${name}`}; set kubernetes.context to one it has`);
  const cluster = (doc?.clusters ?? []).find((c: any) => c?.name === ctx.cluster)?.cluster;
  const user = (doc?.users ?? []).find((u: any) => u?.name === ctx.user)?.user ?? {};
  if (typeof cluster?.server !== "string") throw new Error(`the kubeconfig's cluster ${ctx.cluster} has no server`);
  if (user.exec || user["auth-provider"])
    throw new Error(
      `the kubeconfig's user ${ctx.user} gets its credentials from a plugin, which check does not run; give check a kubeconfig with a token or client certificate (pulumi up uses the plugin)`,
    );
  return {
    server: cluster.server.replace(/\/+$/, ""),
    ca: b64(cluster["certificate-authority-data"]) ?? file(cluster["certificate-authority"]),
    cert: b64(user["client-certificate-data"]) ?? file(user["client-certificate"]),
    key: b64(user["client-key-data"]) ?? file(user["client-key"]),
    token: typeof user.token === "string" ? user.token : typeof user.tokenFile === "string" ? readFileSync(user.tokenFile, "utf8").trim() : undefined,
    insecure: cluster["insecure-skip-tls-verify"] === true,
  };
}

/** One GET: the object, or undefined when the API says 404. Throws a sentence on anything else. */
export function kubeGet(t: KubeTarget, path: string, timeoutMs = 10_000): Promise<Record<string, any> | undefined> {
  const url = new URL(t.server + path);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "GET",
        headers: { Accept: "application/json", ...(t.token ? { Authorization: `Bearer ${t.token}` } : {}) },
        ca: t.ca,
        cert: t.cert,
        key: t.key,
        rejectUnauthorized: !t.insecure,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          if (res.statusCode === 404) return resolve(undefined);
          if (res.statusCode !== 200) return reject(new Error(`the Kubernetes API at ${t.server} answered ${res.statusCode} to GET ${path}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
          } catch {
            reject(new Error(`the Kubernetes API at ${t.server} answered GET ${path} with something that is not JSON`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`the Kubernetes API at ${t.server} did not answer within ${timeoutMs / 1000} s`)));
    req.on("error", (e) => reject(new Error(`the Kubernetes API at ${t.server} could not be reached: ${e.message}`)));
    req.end();
  });
}

/** The ambient kubeconfig, as kubectl finds it: KUBECONFIG's first file, else ~/.kube/config. */
function ambientKubeconfig(): string {
  const path = (process.env.KUBECONFIG ?? "").split(":").find((p) => p) ?? `${homedir()}/.kube/config`;
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`no kubeconfig at ${path} (${(e as NodeJS.ErrnoException).code}); set kubernetes.kubeconfigKey, or KUBECONFIG`);
  }
}

/** The cluster as check sees it; undefined when no service runs there. */
export async function checkCluster(site: StackSite): Promise<NodeCheck | undefined> {
  const { config } = site;
  const objects = siteClusterObjects(config);
  if (!objects) return undefined;
  const started = Date.now();
  const k = config.kubernetes;
  const result: NodeCheck = { node: "cluster", host: "", components: [], sessions: 0, ms: 0 };
  const done = () => ({ ...result, ms: Date.now() - started });
  let t: KubeTarget;
  try {
    t = kubeTarget(site.kubeconfig ?? ambientKubeconfig(), k.context);
    result.host = t.server;
  } catch (e) {
    result.error = `cluster: ${(e as Error).message}`;
    return done();
  }
  const ns = encodeURIComponent(k.namespace);
  const component = (name: string, drift: string[]): ComponentCheck => ({ component: name, drift, report: [], models: [] });
  try {
    for (const v of objects.volumes) {
      const claim = v.claim.metadata.name as string;
      const volume = v.volume.metadata.name as string;
      const drift: string[] = [];
      const pv = await kubeGet(t, `/api/v1/persistentvolumes/${encodeURIComponent(volume)}`);
      const pvc = await kubeGet(t, `/api/v1/namespaces/${ns}/persistentvolumeclaims/${encodeURIComponent(claim)}`);
      if (!pv) drift.push(`the volume ${volume} is missing`);
      else if (pv.spec?.persistentVolumeReclaimPolicy !== "Retain")
        drift.push(`the volume ${volume} would be ${said(pv.spec?.persistentVolumeReclaimPolicy).toLowerCase()}d with its claim, not retained`);
      if (!pvc) drift.push(`the claim ${k.namespace}/${claim} is missing`);
      else if (pvc.status?.phase !== "Bound" || pvc.spec?.volumeName !== volume)
        drift.push(
          `the claim ${k.namespace}/${claim} is ${said(pvc.status?.phase ?? "in no phase")}${pvc.spec?.volumeName ? ` on ${said(pvc.spec.volumeName)}` : ""}, not Bound to ${volume}`,
        );
      result.components.push(component(`cluster-volume-${claim}`, drift));
    }
    for (const s of objects.services) {
      const name = s.deployment.metadata.name as string;
      const drift: string[] = [];
      const d = await kubeGet(t, `/apis/apps/v1/namespaces/${ns}/deployments/${encodeURIComponent(name)}`);
      const want = Number(s.deployment.spec.replicas);
      if (!d) drift.push(`the Deployment ${k.namespace}/${name} is missing`);
      else if ((d.status?.readyReplicas ?? 0) < want)
        drift.push(`the Deployment ${k.namespace}/${name} has ${said(d.status?.readyReplicas ?? 0)} of ${want} pod(s) ready`);
      if (!(await kubeGet(t, `/api/v1/namespaces/${ns}/services/${encodeURIComponent(name)}`))) drift.push(`the Service ${k.namespace}/${name} is missing`);
      result.components.push(component(`cluster-${s.service}`, drift));
    }
  } catch (e) {
    result.error = `cluster: ${(e as Error).message}`;
  }
  return done();
}
