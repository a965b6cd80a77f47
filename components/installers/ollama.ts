import { join, posix } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { runProgram, type NodeTarget } from "../node/command";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import { ownerArgs } from "../storage/layout";
import type { Storage } from "../storage/schema";

const OLLAMA = shellLib(__dirname, "ollama");
// merge_into and its helpers: the migration follows the links folders' merge rules.
const LINKS = shellLib(join(__dirname, "..", "storage"), "links");

export interface OllamaInstallerArgs {
  node: NodeTarget;
  storage: Storage;
  /** The storage root as this node sees it (the root, or the NFS mount point). */
  base: string;
  token?: string;
}

/** Ollama's models folder as this node sees it. */
export const ollamaDir = (s: Storage, base: string) => posix.join(base, s.ollamaModels);

/** The drop-in: systemd reads `%` as a specifier, so a literal one is doubled. */
export function renderOllamaDropIn(dir: string): string {
  return ["# modelshare: Ollama keeps its models in the shared folder", "[Service]", `Environment="OLLAMA_MODELS=${dir.replace(/%/g, "%%")}"`].join("\n");
}

/**
 * An installed Ollama (the ollama systemd service) pointed at the shared folder: a drop-in
 * (the install script rewrites the unit itself), the ollama user in the storage owner's group,
 * its models moved over. Destroy removes the drop-in; the models stay shared.
 */
export class OllamaInstaller extends pulumi.ComponentResource {
  readonly modelsDir: pulumi.Output<string>;

  constructor(name: string, args: OllamaInstallerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:installers:OllamaInstaller", name, {}, opts);
    runProgram(`${name}-converge`, args.node, { text: renderOllamaInstaller(args.storage, args.base), removes: true, token: args.token }, { parent: this });
    this.modelsDir = pulumi.output(ollamaDir(args.storage, args.base));
    this.registerOutputs({ modelsDir: this.modelsDir });
  }
}

/**
 * As root: the unit, the account, the checks; the models move as the ollama user. Every check
 * (access, the dry comparison of the old folder with the shared one) comes before the drop-in
 * is written or Ollama stopped; once stopped, every way out starts it again.
 */
export function renderOllamaInstaller(s: Storage, base: string): string {
  const dir = ollamaDir(s, base);
  const owner = ownerArgs(s);
  return renderProgram({
    title: `Ollama's models at ${dir}`,
    libs: [SYSTEM, LINKS, OLLAMA],
    root: s.root,
    owner,
    converge: {
      privileged: [
        "ollama_service",
        call("ollama_group", owner.gid),
        call("ollama_access", dir, owner.gid),
        call("ollama_precheck", dir),
        call("ollama_drop_in", renderOllamaDropIn(dir)),
        call("ollama_migrate", dir),
        "ollama_live",
      ],
    },
    remove: { privileged: ["ollama_unpointed"] },
  });
}
