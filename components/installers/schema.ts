import { z } from "zod";

/**
 * The host installers' sections: `modelshare:ollama` (nodes whose installed Ollama service is
 * pointed at the shared folder). Rules needing the rest of the site are in checkInstallers.
 */
export const ollamaSchema = z.strictObject({
  nodes: z.array(z.string()).default([])
    .describe("Nodes whose Ollama (installed as the ollama systemd service) keeps its models in the shared storage.ollamaModels folder: the storage node, or workers that mount the storage over NFS."),
}).default({ nodes: [] });

export type Ollama = z.output<typeof ollamaSchema>;

type Add = (key: string, message: string) => void;
interface NodeRoles {
  name: string;
  roles: readonly string[];
}

/** Each listed node exists once and sees the storage; the ollama user needs the owner's group. */
export function checkInstallers(site: { nodes: readonly NodeRoles[]; nfs: { enabled: boolean }; storage: { owner: unknown }; ollama: Ollama }, add: Add): void {
  const seen = new Set<string>();
  site.ollama.nodes.forEach((name, i) => {
    const key = `ollama.nodes[${i}]`;
    const node = site.nodes.find((n) => n.name.toLowerCase() === name.toLowerCase());
    if (!node) return add(key, `no node is named "${name}"`);
    if (seen.has(node.name)) return add(key, `lists ${node.name} twice`);
    seen.add(node.name);
    const sees = node.roles.includes("storage") || (node.roles.includes("worker") && site.nfs.enabled);
    if (!sees) add(key, `${node.name} does not see the storage (it is neither the storage node nor a worker that mounts it over NFS); list it as a worker and enable nfs, or drop it`);
  });
  if (site.ollama.nodes.length > 0 && site.storage.owner === "unmanaged") {
    add("ollama.nodes", "need storage.owner as {uid, gid}: the ollama user reaches the shared folder through the owner's group");
  }
}
