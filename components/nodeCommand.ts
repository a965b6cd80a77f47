import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { asCommand } from "./shell/script";

/** How to reach a node: locally (host `localhost`) or over SSH. */
export type NodeTarget =
  | { name: string; local: true }
  | {
      name: string;
      local: false;
      host: string;
      port: number;
      user: string;
      /** Secret Output; never interpolated into a command. */
      privateKey: pulumi.Input<string>;
      /** Pinned host public key; undefined only when the site opted out. */
      hostKey?: string;
    };

export interface Scripts {
  /** Converges the node; re-run (as an update) only when its text changes. */
  create: string;
  /** Undoes what create made that is configuration, never user data. */
  delete?: string;
}

/** A failed dial is retried a few times, then the run fails naming the resource (and so the node). */
export const DIAL = { perDialTimeout: 10, dialErrorLimit: 3 } as const;

/**
 * One rendered script run on one node. A Command with a delete is replaced delete-first: the
 * default create-before-delete would run the old delete after the new create and undo it.
 */
export function runScript(
  name: string,
  target: NodeTarget,
  scripts: Scripts,
  opts: pulumi.CustomResourceOptions,
): command.local.Command | command.remote.Command {
  const common = {
    create: asCommand(scripts.create),
    delete: scripts.delete === undefined ? undefined : asCommand(scripts.delete),
    addPreviousOutputInEnv: false,
  };
  const options = { ...opts, deleteBeforeReplace: scripts.delete !== undefined };
  if (target.local) {
    return new command.local.Command(name, common, options);
  }
  // Built field by field: an unexpected field in a connection once ended up in an error
  // message next to the private key (pulumi-command #773).
  const connection: command.types.input.remote.ConnectionArgs = {
    host: target.host,
    port: target.port,
    user: target.user,
    privateKey: pulumi.secret(target.privateKey),
    perDialTimeout: DIAL.perDialTimeout,
    dialErrorLimit: DIAL.dialErrorLimit,
    ...(target.hostKey ? { hostKey: target.hostKey } : {}),
  };
  return new command.remote.Command(name, { ...common, connection }, options);
}
