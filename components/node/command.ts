import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { commandFor } from "../shell/script";
import { DIAL } from "./dial";

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

export interface Program {
  /** The rendered program (renderProgram); re-run (as an update) only when its text changes. */
  text: string;
  /** Whether its `remove` verb undoes anything (configuration, never user data). */
  removes: boolean;
  /** The stack's convergeToken: a new value changes every program's text, so each re-runs. */
  token?: string;
  /**
   * Secret input that follows the program on stdin (renderProgram's `input`): the whole stdin
   * is then a secret, and the diff shows only that it changed.
   */
  input?: pulumi.Input<string>;
}

/** The program as a Command carries it: the convergeToken, if any, as its second line. */
export function withToken(text: string, token: string | undefined): string {
  if (!token) return text;
  const eol = text.indexOf("\n");
  return `${text.slice(0, eol + 1)}# converge token: ${token.replace(/[\r\n]+/g, " ")}\n${text.slice(eol + 1)}`;
}

/**
 * One rendered program run on one node: `bash -s converge` on create and update, `bash -s
 * remove` on delete, the program on stdin (the provider stores stdin, so delete runs the
 * program that was deployed). A Command with a delete is replaced delete-first: the default
 * create-before-delete would run the old delete after the new create and undo it.
 */
export function runProgram(
  name: string,
  target: NodeTarget,
  program: Program,
  opts: pulumi.CustomResourceOptions,
): command.local.Command | command.remote.Command {
  const common = {
    create: commandFor("converge"),
    delete: program.removes ? commandFor("remove") : undefined,
    stdin:
      program.input === undefined
        ? withToken(program.text, program.token)
        : pulumi.secret(pulumi.output(program.input).apply((input) => withToken(program.text, program.token) + input)),
    addPreviousOutputInEnv: false,
  };
  const options = { ...opts, deleteBeforeReplace: program.removes };
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
