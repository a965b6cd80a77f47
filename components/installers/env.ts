import { posix } from "node:path";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";

const ENV = shellLib(__dirname, "env");

/** Where the environment file goes on every node that sees the storage. */
export const ENV_FILE = "/etc/modelshare/env";

/**
 * The storage as one node sees it (`base`: the root on the storage node, the NFS mount point on
 * a worker), as NAME=value lines a shell can source and docker compose can take as an env_file:
 * a value with anything but plain path characters is single-quoted (literal in both).
 */
export function envVars(s: Storage, base: string, sharedCustomNodes = false): Array<[string, string]> {
  const at = (rel: string) => posix.join(base, rel);
  return [
    ["MODELSHARE_ROOT", base],
    ["MODELSHARE_MODELS", at(s.models)],
    ...s.categories.map((c): [string, string] => [`MODELSHARE_MODELS_${c.toUpperCase()}`, at(posix.join(s.models, c))]),
    ["OLLAMA_MODELS", at(s.ollamaModels)],
    // Code, not data: named only when comfyui.sharedCustomNodes says the folder is shared.
    ...(sharedCustomNodes ? [["MODELSHARE_COMFYUI_CUSTOM_NODES", at(s.comfyuiCustomNodes)] as [string, string]] : []),
    ["MODELSHARE_OUTPUTS", at(posix.join(s.user, "output"))],
    ["MODELSHARE_INPUTS", at(posix.join(s.user, "input"))],
    ["MODELSHARE_WORKFLOWS", at(posix.join(s.user, "workflows"))],
    ["MODELSHARE_PROJECTS", at(s.projects)],
    ["MODELSHARE_MEDIA_CACHE", at(s.mediaCache)],
  ];
}

const PLAIN = /^[A-Za-z0-9_./@+,=:-]*$/;

export function renderEnvFile(s: Storage, base: string, sharedCustomNodes = false): string {
  const lines = envVars(s, base, sharedCustomNodes).map(([k, v]) => `${k}=${PLAIN.test(v) ? v : `'${v}'`}`);
  return ["# modelshare: the shared storage as this node sees it. Written by modelshare; edits are replaced.", ...lines].join("\n");
}

/**
 * /etc/modelshare/env on one node (root's, 0644, no secrets); destroy removes it. A run without
 * root (the dev stack) writes ~/.config/modelshare/env instead, and says so.
 */
export function renderNodeEnv(s: Storage, base: string, sharedCustomNodes = false): string {
  return renderProgram({
    title: `${ENV_FILE} for ${base}`,
    storage: s,
    libs: [SYSTEM, ENV],
    converge: { privileged: [call("node_env", ENV_FILE, renderEnvFile(s, base, sharedCustomNodes))] },
    remove: { privileged: [call("node_env_removed", ENV_FILE)] },
  });
}
