import { join, posix } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { runProgram, type NodeTarget } from "../node/command";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import { ownerArgs } from "../storage/layout";
import { CATEGORY_ALIASES, COMFYUI_CATEGORIES, type Storage } from "../storage/schema";
import type { ComfyUI } from "./schema";

const COMFYUI = shellLib(__dirname, "comfyui");
// merge_into and its helpers: the migration follows the links folders' merge rules.
const LINKS = shellLib(join(__dirname, "..", "storage"), "links");

export type ComfyUIInstall = ComfyUI["installs"][number];

export interface ComfyUIInstallerArgs {
  node: NodeTarget;
  storage: Storage;
  /** The storage root as this node sees it (the root, or the NFS mount point). */
  base: string;
  install: ComfyUIInstall;
  /** comfyui.sharedCustomNodes: the section names the shared custom_nodes folder. */
  sharedCustomNodes?: boolean;
  token?: string;
}

/**
 * The section modelshare keeps in extra_model_paths.yaml: every category; custom_nodes (code
 * every ComfyUI imports at start) only with comfyui.sharedCustomNodes, when the folder is root's.
 */
export function comfyuiSection(s: Storage, base: string, sharedCustomNodes = false): Record<string, string> {
  return {
    base_path: posix.join(base, s.models),
    ...Object.fromEntries(s.categories.map((c) => [c, c])),
    ...(sharedCustomNodes ? { custom_nodes: posix.join(base, s.comfyuiCustomNodes) } : {}),
  };
}

/** The checkout's own folders whose models belong in each category (aliases included). */
export function migrations(s: Storage, checkout: string): string[] {
  const kind = (c: string) => CATEGORY_ALIASES[c] ?? c;
  return s.categories.flatMap((c) => COMFYUI_CATEGORIES.filter((n) => kind(n) === kind(c)).map((n) => `${posix.join(checkout, "models", n)}:${c}`));
}

const pythons = (i: ComfyUIInstall) => (i.python ? [i.python] : [posix.join(i.path, "venv/bin/python"), posix.join(i.path, ".venv/bin/python"), "python3"]);

/**
 * An existing ComfyUI checkout pointed at the shared folders: its own extra_model_paths.yaml
 * gets a `modelshare:` section (the models/ and custom_nodes/ folders are never made links,
 * which breaks ComfyUI's git updates), its models move into the store, and its service saves
 * into storage-user/output/ComfyUI. Destroy removes the section and the drop-in only.
 */
export class ComfyUIInstaller extends pulumi.ComponentResource {
  readonly extraModelPaths: pulumi.Output<string>;

  constructor(name: string, args: ComfyUIInstallerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:installers:ComfyUIInstaller", name, {}, opts);
    runProgram(`${name}-converge`, args.node, { text: renderComfyUIInstaller(args.storage, args.base, args.install, args.sharedCustomNodes), removes: true, token: args.token }, { parent: this });
    this.extraModelPaths = pulumi.output(posix.join(args.install.path, "extra_model_paths.yaml"));
    this.registerOutputs({ extraModelPaths: this.extraModelPaths });
  }
}

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
    root: s.root,
    owner: ownerArgs(s),
    converge: {
      privileged: [
        call("comfyui_checkout", i.path, base),
        ...(i.service ? [call("comfyui_unit", i.service, output, base)] : []),
        ...(sharedCustomNodes ? [call("comfyui_code_dir", posix.join(base, s.comfyuiCustomNodes), base)] : []),
        call("comfyui_as", "comfyui_paths", i.path, JSON.stringify(comfyuiSection(s, base, sharedCustomNodes)), base, ...pythons(i)),
        call("comfyui_migrate", posix.join(base, s.models), ...migrations(s, i.path)),
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
