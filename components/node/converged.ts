import * as pulumi from "@pulumi/pulumi";
import type { PlanItem } from "../concern";
import { runProgram, type NodeTarget } from "./command";

export interface ConvergedArgs {
  item: PlanItem;
  node: NodeTarget;
  /** Each SMB user's password (secret), by user name: for a program that reads them on stdin. */
  smbPasswords: Record<string, pulumi.Input<string>>;
  /** The stack's convergeToken (repair), stamped into every program. */
  token?: string;
}

/**
 * One plan item as resources: a component of the item's type token (so its URN is the one the
 * stack already has), holding one Command per program, each after the one before and all after
 * what the item waits for. Its outputs are the item's.
 */
export class Converged extends pulumi.ComponentResource {
  constructor(name: string, args: ConvergedArgs, opts: pulumi.ComponentResourceOptions & { dependsOn: pulumi.Resource[] }) {
    super(args.item.type, name, {}, opts);
    let previous: pulumi.Resource[] = [];
    for (const program of args.item.programs.filter((p) => p.converges)) {
      const input = program.smbPasswords ? passwordInput(program.smbPasswords.map((u) => passwordOf(args.smbPasswords, u))) : undefined;
      // A component's dependsOn does not reach its children by itself: each Command waits too.
      previous = [
        runProgram(
          program.name,
          args.node,
          { text: program.text, removes: program.removes, token: args.token, input },
          { parent: this, dependsOn: [...opts.dependsOn, ...previous] },
        ),
      ];
    }
    this.registerOutputs(args.item.outputs);
  }
}

function passwordOf(passwords: Record<string, pulumi.Input<string>>, user: string): pulumi.Input<string> {
  const p = passwords[user];
  if (p === undefined) throw new Error(`modelshare: no SMB password was loaded for ${user}`);
  return p;
}

/** The passwords as the program reads them after itself on stdin: one line each, in order. */
export const passwordInput = (passwords: pulumi.Input<string>[]): pulumi.Output<string> =>
  pulumi.secret(pulumi.all(passwords).apply((p) => p.map((x) => `${x}\n`).join("")));
