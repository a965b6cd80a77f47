import { posix } from "node:path";
import { planItem, type Concern, type PlanItem } from "../concern";
import type { SiteNode } from "../config";
import { nfsWorkers } from "../nfs/nodes";
import { comfyuiName, renderComfyUIInstaller } from "./comfyui";
import { ENV_FILE, renderNodeEnv } from "./env";
import { ollamaDir, renderOllamaInstaller } from "./ollama";
import { checkInstallers, comfyuiSchema, ollamaSchema } from "./schema";

const sections = { ollama: ollamaSchema, comfyui: comfyuiSchema };

const byName = (nodes: readonly SiteNode[], name: string) => nodes.find((n) => n.name.toLowerCase() === name.toLowerCase()) as SiteNode;

/**
 * What the hosts themselves run pointed at the shared folders: the environment file on every node
 * that sees the storage, installed Ollama services, existing ComfyUI checkouts. Each waits for its
 * node's storage (the layout, or the NFS mount); destroy takes back only what modelshare wrote.
 */
export const installers: Concern<typeof sections> = {
  name: "installers",
  sections,
  // Checkouts are compared with the storage tree as the node sees it: a ~/ root expanded.
  check: (site, add, ctx) => checkInstallers({ ...site, storage: { ...site.storage, root: ctx.root } }, add),
  plan(site, ctx) {
    const s = site.storage;
    const shared = site.comfyui.sharedCustomNodes;
    const item = (kind: string, type: string, name: string, node: SiteNode, text: string, outputs: Record<string, unknown>): PlanItem =>
      planItem({ kind, type, name, node, after: ctx.ready(node), programs: [{ text, removes: true }], outputs });
    return [
      // /etc/modelshare/env: the storage node's names its root, a worker's its mount.
      ...[ctx.storageNode, ...(site.nfs.enabled ? nfsWorkers(site) : [])].map((n) =>
        item("env", "modelshare:installers:NodeEnv", `${n.name}-env`, n, renderNodeEnv(s, ctx.base(n), shared), { path: ENV_FILE }),
      ),
      // An installed Ollama: a drop-in, the ollama user in the owner's group, its models moved over.
      ...site.nodes
        .filter((n) => site.ollama.nodes.some((o) => o.toLowerCase() === n.name.toLowerCase()))
        .map((n) =>
          item("ollama", "modelshare:installers:OllamaInstaller", `${n.name}-ollama`, n, renderOllamaInstaller(s, ctx.base(n)), {
            modelsDir: ollamaDir(s, ctx.base(n)),
          }),
        ),
      // An existing checkout: a section in its extra_model_paths.yaml, its models moved into the
      // store, its service saving into output/ComfyUI (models/ and custom_nodes/ never links).
      ...site.comfyui.installs.map((install) => {
        const n = byName(site.nodes, install.node);
        return item(
          "comfyui",
          "modelshare:installers:ComfyUIInstaller",
          comfyuiName(n.name, install.path),
          n,
          renderComfyUIInstaller(s, ctx.base(n), install, shared),
          { extraModelPaths: posix.join(install.path, "extra_model_paths.yaml") },
        );
      }),
    ];
  },
};
