import * as pulumi from "@pulumi/pulumi";
import type { Storage } from "./config";
import { runScript, type NodeTarget } from "./nodeCommand";
import { categoryDir, layoutDirs, modelStoreDir } from "./paths";
import { call } from "./shell/quote";
import { renderScript } from "./shell/script";

export interface StorageLayoutArgs {
  node: NodeTarget;
  storage: Storage;
}

/** The storage node's folder tree: model store, user area, projects, caches; owners and modes. */
export class StorageLayout extends pulumi.ComponentResource {
  readonly root: pulumi.Output<string>;
  readonly modelStore: pulumi.Output<string>;
  readonly categoryFolders: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: StorageLayoutArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:storage:StorageLayout", name, {}, opts);
    const s = args.storage;
    // No delete: destroy leaves every folder (and so every model) where it is.
    runScript(`${name}-converge`, args.node, { create: renderStorageLayout(s) }, { parent: this });
    this.root = pulumi.output(s.root);
    this.modelStore = pulumi.output(modelStoreDir(s));
    this.categoryFolders = pulumi.output(Object.fromEntries(s.categories.map((c) => [c, categoryDir(s, c)])));
    this.registerOutputs({ root: this.root, modelStore: this.modelStore, categoryFolders: this.categoryFolders });
  }
}

/** chown arguments: empty when ownership is left to whoever runs the script. */
export function ownerArgs(s: Storage): [string, string] {
  return s.owner === "unmanaged" ? ["", ""] : [String(s.owner.uid), String(s.owner.gid)];
}

/** "0775" -> "00775": the extra leading zero makes GNU chmod clear a folder's setgid bit too. */
export const chmodMode = (mode: string) => `0${mode.padStart(4, "0")}`;

export function renderStorageLayout(s: Storage): string {
  const [uid, gid] = ownerArgs(s);
  return renderScript({
    title: `storage layout under ${s.root}`,
    libs: ["space", "dirs"],
    body: [
      call("check_free_space", s.root, Math.round(s.minFreeGB * 1e9), "storage.minFreeGB"),
      call("require_parent", s.root, "storage.root"),
      ...layoutDirs(s).map((d) => call("ensure_dir", d.path, uid, gid, chmodMode(d.mode))),
    ],
  });
}
