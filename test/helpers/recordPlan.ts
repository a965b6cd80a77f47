import { createHash } from "node:crypto";
import { Site } from "../../components/site";
import { loadSite } from "../../components/loadSite";
import { declare, isSecretValue, reveal } from "../harness/declare";
import { stackConfig } from "../harness/stack";
import { flatConfig, gpu1Node, gpu2Node, HOST_KEY, privateKey, SEEDS_ROOT, seedsLinks, storageNode } from "../fixtures/site";

/**
 * What `pulumi up` would tell the engine about a site, reduced to what decides whether an
 * upgrade updates in place or replaces: each resource's URN, parent, provider, dependencies and
 * inputs, with each program (stdin) as its SHA-256 and length. test/plan.recorded.test.ts keeps
 * the recording made before the plan carried its programs (issue 18) and compares.
 */
/** Its own marker: the recording holds the connections' private key, so this text is recorded. */
const PRIVATE_KEY = privateKey("RECORDED-PLAN");

const digest = (v: unknown) => {
  const text = String(v);
  return { sha256: createHash("sha256").update(text).digest("hex"), bytes: Buffer.byteLength(text), head: text.split("\n")[1] ?? "" };
};

/** Inputs with programs digested and secrets marked (the recording never holds a program's text). */
function shape(inputs: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(inputs)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => {
        const secret = isSecretValue(v);
        const plain = reveal(v);
        const value = k === "stdin" && typeof plain === "string" ? digest(plain) : plain;
        return [k, secret ? { secret: value } : value];
      }),
  );
}

export interface RecordedResource {
  urn: string;
  parent: string;
  custom: boolean;
  provider: string;
  dependencies: string[];
  deleteBeforeReplace: boolean;
  inputs: Record<string, unknown>;
}

export async function recordPlan(config: Record<string, string>, secretKeys: string[]): Promise<RecordedResource[]> {
  const rs = await declare({ stack: "recorded", config, secretKeys }, () => new Site("site", loadSite()));
  return rs
    .map((r) => ({
      urn: r.urn,
      parent: r.parent,
      custom: r.custom,
      provider: r.provider,
      dependencies: [...r.dependencies].sort(),
      deleteBeforeReplace: r.deleteBeforeReplace,
      inputs: shape(r.inputs),
    }))
    .sort((a, b) => a.urn.localeCompare(b.urn));
}

const json = (v: unknown) => JSON.stringify(v);

/** The recorded sites: the seeds' site, the same site with every concern on, and the lab site. */
export const RECORDED_SITES: Record<string, { config: Record<string, string>; secretKeys: string[] }> = {
  // The fixture's values, in the order and spelling they were recorded with: the same config text.
  seeds: {
    config: flatConfig({ nodes: [storageNode(), gpu1Node()], storage: { root: SEEDS_ROOT, links: seedsLinks() } }, { sshKey: PRIVATE_KEY }),
    secretKeys: ["modelshare:sshKey"],
  },
  "seeds-everything": {
    config: flatConfig(
      {
        nodes: [storageNode({ roles: ["storage", "smb", "nfs-server", "worker"] }), gpu1Node(), gpu2Node({ port: 2222, user: "admin", sshKey: "sshKeyGpu2" })],
        storage: { root: SEEDS_ROOT, links: seedsLinks(), owner: { uid: 1000, gid: 1000 } },
        smb: { enabled: true, share: "ki_Daten", hostsAllow: ["192.168.0.0/24"], users: [{ name: "artist", passwordKey: "smbPasswordArtist" }] },
        nfs: { enabled: true },
        services: {
          comfyui: { enabled: true, image: "ghcr.io/example/comfyui:1.0", nodes: [{ name: "gpu1", gpus: "all" }, "gpu2"] },
          fooocus: { enabled: true, image: "ghcr.io/example/fooocus:1.0", nodes: ["storage"] },
          forge: { enabled: true, image: "ghcr.io/example/forge:1.0", nodes: [{ name: "gpu2", gpus: 1 }] },
          ollama: { enabled: true, nodes: ["gpu1"] },
        },
        projects: ["alpha", "beta"],
        ollama: { nodes: ["gpu2", "storage"] },
        comfyui: {
          installs: [
            { node: "gpu2", path: "/opt/ComfyUI", service: "comfyui.service" },
            { node: "storage", path: "/opt/comfy" },
          ],
          sharedCustomNodes: true,
        },
      },
      {
        convergeToken: "2026-11-30T20:00:00.000Z",
        sshKey: PRIVATE_KEY,
        sshKeyGpu2: PRIVATE_KEY,
        smbPasswordArtist: "recorded-password",
      },
    ),
    secretKeys: ["modelshare:sshKey", "modelshare:sshKeyGpu2", "modelshare:smbPasswordArtist"],
  },
  lab: (() => {
    const { config } = stackConfig("Pulumi.lab.yaml", {});
    const nodes = (JSON.parse(config["modelshare:nodes"]) as Array<Record<string, unknown>>).map((n): Record<string, unknown> => ({ ...n, hostKey: HOST_KEY }));
    const keys = [...new Set(nodes.map((n) => `modelshare:${String(n.sshKey)}`))];
    return { config: { ...config, "modelshare:nodes": json(nodes), ...Object.fromEntries(keys.map((k) => [k, PRIVATE_KEY])) }, secretKeys: keys };
  })(),
};
