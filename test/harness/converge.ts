import { readFileSync } from "node:fs";
import { quote } from "../../components/shell/quote";
import { dial, exec, execLocal, type Connection } from "../../ops/ssh";
import { reveal, type Declared } from "./declare";

/**
 * The second half of the engine stand-in: runs the declared command resources the way
 * `pulumi up` / `pulumi destroy` would, in dependency order. It differs from the engine in
 * ways test/harness/README.md lists: no state, no diff (every create runs on every converge,
 * which is exactly what proves the scripts idempotent), one resource at a time.
 */
export interface Step {
  name: string;
  type: string;
  host: string;
  code: number;
  stdout: string;
  stderr: string;
  /** The N of the script's closing `changed=N` line. */
  changed: number;
  /** SSH connections this step opened (1, or more when a dial was retried). */
  dials: number;
  ms: number;
}

export class StepError extends Error {
  constructor(readonly step: Pick<Step, "name" | "host" | "stderr" | "code">, detail: string) {
    super(`${step.name} (on ${step.host}): ${detail}`);
  }
}

const RUNNABLE = new Set(["command:remote:Command", "command:local:Command", "command:remote:CopyToRemote"]);

/** Command resources in an order that respects every dependency (and parent chain). */
export function executionOrder(resources: Declared[]): Declared[] {
  const runnable = resources.filter((r) => RUNNABLE.has(r.type));
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  // A dependency on a component means all its descendants; a child inherits its parents' deps.
  const descendants = (urn: string): Declared[] =>
    resources.filter((r) => r.parent === urn).flatMap((c) => [c, ...descendants(c.urn)]);
  const depsOf = (r: Declared): Set<string> => {
    const out = new Set<string>();
    for (let cur: Declared | undefined = r; cur; cur = cur.parent ? byUrn.get(cur.parent) : undefined) {
      for (const d of cur.dependencies) {
        const target = byUrn.get(d);
        if (!target) continue;
        if (RUNNABLE.has(target.type)) out.add(d);
        for (const x of descendants(d)) if (RUNNABLE.has(x.type)) out.add(x.urn);
      }
    }
    return out;
  };
  const done = new Set<string>();
  const order: Declared[] = [];
  const visit = (r: Declared, path: string[]) => {
    if (done.has(r.urn)) return;
    if (path.includes(r.urn)) throw new Error(`dependency cycle through ${r.name}`);
    for (const d of depsOf(r)) visit(byUrn.get(d)!, [...path, r.urn]);
    done.add(r.urn);
    order.push(r);
  };
  for (const r of runnable) visit(r, []);
  return order;
}

export interface RunOptions {
  /** Instead of create, run each resource's delete, in reverse order. */
  destroy?: boolean;
  /** Called after each step (tests use it to break things mid-run). */
  onStep?: (step: Step) => void | Promise<void>;
}

export async function run(resources: Declared[], options: RunOptions = {}): Promise<Step[]> {
  const order = executionOrder(resources);
  if (options.destroy) order.reverse();
  const steps: Step[] = [];
  for (const r of order) {
    const inputs = reveal(r.inputs) as Record<string, any>;
    // CopyToRemote copies on create and leaves the file on destroy, as the provider does.
    const script: string | undefined = r.type === "command:remote:CopyToRemote"
      ? (options.destroy ? undefined : `cat > ${quote(inputs.remotePath)}`)
      : options.destroy ? inputs.delete : inputs.create;
    if (!script) continue;
    if (r.type === "command:remote:CopyToRemote") inputs.stdin = await assetBytes(r.name, inputs.source);
    const started = Date.now();
    const result = r.type === "command:local:Command"
      ? { ...(await execLocal(script, { interpreter: inputs.interpreter, env: inputs.environment, stdin: inputs.stdin })), dials: 0, host: "localhost" }
      : { ...(await runRemote(r.name, script, inputs, inputs.connection as Connection)), host: (inputs.connection as Connection).host };
    const last = /changed=(\d+)\s*$/.exec(result.stdout);
    const step: Step = { name: r.name, type: r.type, ...result, changed: last ? Number(last[1]) : NaN, ms: Date.now() - started };
    steps.push(step);
    if (step.code !== 0) throw new StepError(step, `exited ${step.code}: ${step.stderr.trim()}`);
    await options.onStep?.(step);
  }
  return steps;
}

/** The bytes of a CopyToRemote source: a string or file asset (archives are not needed yet). */
async function assetBytes(name: string, source: any): Promise<string | Buffer> {
  if (source?.text !== undefined) return await source.text;
  if (source?.path !== undefined) return readFileSync(await source.path);
  throw new Error(`${name}: the harness copies string and file assets only`);
}

async function runRemote(name: string, script: string, inputs: Record<string, any>, c: Connection) {
  const { client, dials } = await dial(c).catch((e: Error) => {
    throw new StepError({ name, host: c.host, stderr: "", code: -1 }, e.message);
  });
  try {
    return { ...(await exec(client, script, { env: inputs.environment, stdin: inputs.stdin })), dials };
  } finally {
    client.end();
  }
}
