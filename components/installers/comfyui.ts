import { posix } from "node:path";
import { call } from "../shell/quote";
import { LINKS, renderProgram, shellLib, SYSTEM } from "../shell/script";
import { CATEGORY_ALIASES, COMFYUI_CATEGORIES, stagingRel, type Storage } from "../storage/schema";
import type { ComfyUI } from "./schema";

const COMFYUI = shellLib(__dirname, "comfyui");

export type ComfyUIInstall = ComfyUI["installs"][number];

/**
 * The section modelshare keeps in extra_model_paths.yaml: every category; custom_nodes (code
 * every ComfyUI imports at start) only with comfyui.sharedCustomNodes, when the folder is root's.
 * `is_default` puts the shared folders first, so ComfyUI's own downloads (its model_downloader,
 * a workflow's missing models) land in the store; `download_model_base` is the folder
 * ComfyUI-Manager (and ComfyUI Desktop) downloads models into. A checkout whose loader predates
 * `is_default` (no utils/extra_config.py) would stop on it: comfyui_paths drops it there.
 */
export function comfyuiSection(s: Storage, base: string, sharedCustomNodes = false): Record<string, string | boolean> {
  // With intake: staging only the intake writes the store: downloads go to staging, and
  // ComfyUI's own downloader keeps its own folders first (it cannot write the store).
  return {
    base_path: posix.join(base, s.models),
    ...(s.intake === "staging" ? {} : { is_default: true }),
    download_model_base: uploadsAt(s, base),
    ...Object.fromEntries(s.categories.map((c) => [c, c])),
    ...(sharedCustomNodes ? { custom_nodes: posix.join(base, s.comfyuiCustomNodes) } : {}),
  };
}

/** Where models that arrive go, as a node sees it: the store, or with intake: staging, the staging area. */
const uploadsAt = (s: Storage, base: string) => posix.join(base, s.intake === "staging" ? stagingRel(s) : s.models);

/** The checkout's own folders whose models belong in each category (aliases included). */
export function migrations(s: Storage, checkout: string): string[] {
  const kind = (c: string) => CATEGORY_ALIASES[c] ?? c;
  return s.categories.flatMap((c) => COMFYUI_CATEGORIES.filter((n) => kind(n) === kind(c)).map((n) => `${posix.join(checkout, "models", n)}:${c}`));
}

const pythons = (i: ComfyUIInstall) => (i.python ? [i.python] : [posix.join(i.path, "venv/bin/python"), posix.join(i.path, ".venv/bin/python"), "python3"]);

/**
 * Root checks the checkout, its service and (when shared) the custom_nodes folder before
 * anything changes, and writes the service's drop-in; the checkout's owner writes its yaml;
 * models move as the checkout's owner, or, for a checkout of root's, as the storage owner.
 */
export function renderComfyUIInstaller(s: Storage, base: string, i: ComfyUIInstall, sharedCustomNodes = false): string {
  const output = posix.join(base, s.user, "output", "ComfyUI");
  return renderProgram({
    title: `ComfyUI at ${i.path} pointed at ${base}`,
    libs: [SYSTEM, LINKS, COMFYUI],
    storage: s,
    converge: {
      privileged: [
        call("comfyui_checkout", i.path, base),
        ...(i.service ? [call("comfyui_unit", i.service, output, base)] : []),
        ...(sharedCustomNodes ? [call("comfyui_code_dir", posix.join(base, s.comfyuiCustomNodes), base)] : []),
        call("comfyui_as", "comfyui_paths", i.path, JSON.stringify(comfyuiSection(s, base, sharedCustomNodes)), base, ...pythons(i)),
        call("comfyui_migrate", uploadsAt(s, base), ...migrations(s, i.path)),
        ...(i.service ? [call("comfyui_output", i.service, output)] : []),
      ],
    },
    remove: {
      privileged: [
        call("comfyui_checkout", i.path, base),
        call("comfyui_as", "comfyui_no_paths", i.path, base, ...pythons(i)),
        ...(i.service ? [call("comfyui_no_output", i.service)] : []),
      ],
    },
  });
}

/** A name for one checkout's component: its node and its path. */
export const comfyuiName = (node: string, path: string) => `${node}-comfyui${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/-$/, "")}`;
