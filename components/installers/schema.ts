import { z } from "zod";
import { isWithin, pathProblem } from "../pathRules";
import { codeLocationProblem, serviceUnitProblem } from "./unitRules";
import type { Add } from "../concern";

const absolute = (what: string) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const problem = pathProblem(v, true);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe(what);

/**
 * The host installers' sections: `modelshare:ollama` (nodes whose installed Ollama service is
 * pointed at the shared folder). Rules needing the rest of the site are in checkInstallers.
 */
export const ollamaSchema = z
  .strictObject({
    nodes: z
      .array(z.string())
      .default([])
      .describe(
        "Nodes whose Ollama (installed as the ollama systemd service) keeps its models in the shared storage.ollamaModels folder: the storage node, or workers that mount the storage over NFS.",
      ),
  })
  .default({ nodes: [] });

export type Ollama = z.output<typeof ollamaSchema>;

export const comfyuiSchema = z
  .strictObject({
    installs: z
      .array(
        z.strictObject({
          node: z.string().describe("The node with the checkout (the storage node, or a worker that mounts the storage over NFS)."),
          path: absolute("The ComfyUI checkout (the folder holding main.py)."),
          service: z
            .string()
            .superRefine((v, ctx) => {
              const problem = serviceUnitProblem(v);
              if (problem) ctx.addIssue({ code: "custom", message: problem });
            })
            .optional()
            .describe(
              "Its systemd service, if it runs as one: a drop-in adds --output-directory to its ExecStart. Never a system unit (ssh, docker, smbd, nfs-*, systemd-*, ollama…).",
            ),
          python: absolute("A Python with PyYAML or ruamel.yaml (default: the checkout's venv/bin/python or .venv/bin/python, else python3).").optional(),
        }),
      )
      .default([])
      .describe(
        "Existing ComfyUI checkouts to point at the shared folders through their extra_model_paths.yaml: [{ node, path, service, python }]. A checkout and its python live outside the storage tree (storage.root on the storage node, nfs.mountPoint on a worker); service is never a system unit.",
      ),
    sharedCustomNodes: z
      .boolean()
      .default(false)
      .describe(
        "Name storage.comfyuiCustomNodes as custom_nodes in each checkout's extra_model_paths.yaml (and MODELSHARE_COMFYUI_CUSTOM_NODES in the environment file): code every ComfyUI imports at start. Needs storage.owner as {uid, gid}: the folder is then root's, 0755, and only the admin puts code there.",
      ),
  })
  .default({ installs: [], sharedCustomNodes: false });

export type ComfyUI = z.output<typeof comfyuiSchema>;

interface NodeRoles {
  name: string;
  roles: readonly string[];
}

/** Each listed node exists once and sees the storage; the ollama user needs the owner's group. */
export function checkInstallers(
  site: {
    nodes: readonly NodeRoles[];
    nfs: { enabled: boolean; mountPoint: string };
    storage: { root: string; owner: unknown; outputs: readonly string[]; user: string };
    ollama: Ollama;
    comfyui: ComfyUI;
  },
  add: Add,
): void {
  const seen = new Set<string>();
  site.ollama.nodes.forEach((name, i) => {
    const key = `ollama.nodes[${i}]`;
    const node = site.nodes.find((n) => n.name.toLowerCase() === name.toLowerCase());
    if (!node) return add(key, `no node is named "${name}"`);
    if (seen.has(node.name)) return add(key, `lists ${node.name} twice`);
    seen.add(node.name);
    const sees = node.roles.includes("storage") || (node.roles.includes("worker") && site.nfs.enabled);
    if (!sees)
      add(
        key,
        `${node.name} does not see the storage (it is neither the storage node nor a worker that mounts it over NFS); list it as a worker and enable nfs, or drop it`,
      );
  });
  const installs = new Set<string>();
  site.comfyui.installs.forEach((inst, i) => {
    const key = `comfyui.installs[${i}]`;
    const node = site.nodes.find((n) => n.name.toLowerCase() === inst.node.toLowerCase());
    if (!node) return add(`${key}.node`, `no node is named "${inst.node}"`);
    const id = `${node.name}:${inst.path}`;
    if (installs.has(id)) return add(`${key}.path`, `${inst.path} on ${node.name} is listed twice`);
    installs.add(id);
    // One unit, one drop-in; one folder, one checkout: two installs would rewrite each other's.
    site.comfyui.installs.slice(0, i).forEach((other, j) => {
      if (other.node.toLowerCase() !== inst.node.toLowerCase()) return;
      if (inst.service && other.service === inst.service)
        add(`${key}.service`, `${inst.service} on ${node.name} is already comfyui.installs[${j}].service; each checkout has a unit of its own`);
      if (isWithin(inst.path, other.path) || isWithin(other.path, inst.path))
        add(`${key}.path`, `${inst.path} and comfyui.installs[${j}].path (${other.path}) on ${node.name} are one inside the other; list separate checkouts`);
    });
    const sees = node.roles.includes("storage") || (node.roles.includes("worker") && site.nfs.enabled);
    if (!sees)
      add(
        `${key}.node`,
        `${node.name} does not see the storage (it is neither the storage node nor a worker that mounts it over NFS); list it as a worker and enable nfs, or drop it`,
      );
    // The storage tree as this node sees it: the root on the storage node, the mount elsewhere.
    const tree = node.roles.includes("storage")
      ? { path: site.storage.root, key: "storage.root" }
      : site.nfs.enabled
        ? { path: site.nfs.mountPoint, key: "nfs.mountPoint" }
        : undefined;
    const checkoutProblem = codeLocationProblem(inst.path, tree);
    if (checkoutProblem) add(`${key}.path`, `"${inst.path}" ${checkoutProblem}`);
    const pythonProblem = inst.python === undefined ? undefined : codeLocationProblem(inst.python, tree, true);
    if (pythonProblem) add(`${key}.python`, `"${inst.python}" ${pythonProblem}`);
    if (!site.storage.outputs.includes("ComfyUI"))
      add(`${key}`, `ComfyUI saves into ${site.storage.user}/output/ComfyUI, which storage.outputs does not list; add "ComfyUI" to storage.outputs`);
  });
  if (site.comfyui.sharedCustomNodes && site.storage.owner === "unmanaged") {
    add(
      "comfyui.sharedCustomNodes",
      "needs storage.owner as {uid, gid}: only then is the custom_nodes folder root's, so that no SMB user or container can put code there; set the owner, or leave custom nodes unshared (false)",
    );
  }
  if (site.ollama.nodes.length > 0 && site.storage.owner === "unmanaged") {
    add("ollama.nodes", "need storage.owner as {uid, gid}: the ollama user reaches the shared folder through the owner's group");
  }
}
