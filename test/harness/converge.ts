import { readFileSync } from "node:fs";
import { quote } from "../../components/shell/quote";
import { dial, exec, execLocal, type Connection } from "../../ops/ssh";
import { reveal, type Declared } from "./declare";
import { CONTAINER, convergeContainer, deleteContainer, deployedName, orphans, providerOf, providerResource } from "./docker";

/**
 * The second half of the engine stand-in: runs the declared command resources the way
 * `pulumi up` / `pulumi destroy` would, in dependency order. It differs from the engine in
 * ways test/harness/README.md lists: no state, no diff (every create runs on every converge,
 * which is exactly what proves the scripts idempotent).
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
  /**
   * Where its start and end fall in the run's sequence of events (1, 2, 3, ...): a step that
   * began before another ended ran beside it. Ordinal, not clock time, so that what a test
   * concludes from them cannot change with the machine's load.
   */
  began: number;
  ended: number;
  /** How long it took: for benchmarks to print, never for a test to assert on. */
  ms: number;
}

/** The harness's event counter: each step's start and end take the next number. */
let events = 0;
const tick = () => ++events;

export class StepError extends Error {
  constructor(
    readonly step: Pick<Step, "name" | "host" | "stderr" | "code">,
    detail: string,
  ) {
    super(`${step.name} (on ${step.host}): ${detail}`);
  }
}

const RUNNABLE = new Set(["command:remote:Command", "command:local:Command", "command:remote:CopyToRemote", CONTAINER]);

/** Each command resource with the command resources it waits for (explicit, inputs, parents). */
export function dependencyGraph(resources: Declared[]): Map<Declared, Set<Declared>> {
  const runnable = resources.filter((r) => RUNNABLE.has(r.type));
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  // A dependency on a component means all its descendants; a child inherits its parents' deps.
  const descendants = (urn: string): Declared[] => resources.filter((r) => r.parent === urn).flatMap((c) => [c, ...descendants(c.urn)]);
  const depsOf = (r: Declared): Set<Declared> => {
    const out = new Set<Declared>();
    // A resource also waits for what its provider waits for (docker's waits for the install).
    const provider = providerResource(r, resources);
    for (let cur: Declared | undefined = r; cur; cur = cur.parent ? byUrn.get(cur.parent) : undefined) {
      for (const d of [...cur.dependencies, ...(cur === r && provider ? [...provider.dependencies, provider.parent] : [])]) {
        const target = byUrn.get(d);
        if (!target) continue;
        if (RUNNABLE.has(target.type)) out.add(target);
        for (const x of descendants(d)) if (RUNNABLE.has(x.type)) out.add(x);
      }
    }
    return out;
  };
  return new Map(runnable.map((r) => [r, depsOf(r)]));
}

/** Command resources in an order that respects every dependency (and parent chain). */
export function executionOrder(resources: Declared[]): Declared[] {
  const graph = dependencyGraph(resources);
  const done = new Set<Declared>();
  const order: Declared[] = [];
  const visit = (r: Declared, path: Declared[]) => {
    if (done.has(r)) return;
    if (path.includes(r)) throw new Error(`dependency cycle through ${r.name}`);
    for (const d of graph.get(r) ?? []) visit(d, [...path, r]);
    done.add(r);
    order.push(r);
  };
  for (const r of graph.keys()) visit(r, []);
  return order;
}

export interface RunOptions {
  /** Instead of create, run each resource's delete, in reverse dependency order. */
  destroy?: boolean;
  /** Called after each step (tests use it to break things mid-run). */
  onStep?: (step: Step) => void | Promise<void>;
  /**
   * Each Command dials its own connection, as the provider does. Without it, the run keeps one
   * connection per node and each Command is a session on it: a dial costs a guest about two
   * seconds of emulated CPU, which across the lab suite's converges was a quarter of its time.
   * The programs, and what they do, are the same either way.
   */
  dialPerCommand?: boolean;
}

/** A run's open connections by node, when they are shared. */
type Shared = Map<string, ReturnType<typeof dial>>;

/**
 * Runs every resource as soon as what it waits for is done, so independent ones (two workers'
 * mounts) overlap, as in the engine. The first failure stops new steps from starting; the ones
 * already running finish; then it throws. Steps are returned in the order they finished.
 */
export async function run(resources: Declared[], options: RunOptions = {}): Promise<Step[]> {
  const order = executionOrder(resources);
  const graph = dependencyGraph(resources);
  // Destroy waits the other way round: a resource goes after everything that depends on it.
  const waitsFor = new Map(order.map((r) => [r, options.destroy ? order.filter((o) => graph.get(o)!.has(r)) : [...graph.get(r)!]]));
  const steps: Step[] = [];
  const finished = new Set<Declared>();
  const started = new Set<Declared>();
  const shared: Shared | undefined = options.dialPerCommand ? undefined : new Map();
  let failure: unknown;
  await new Promise<void>((resolve) => {
    let running = 0;
    const launch = () => {
      for (const r of order) {
        if (failure !== undefined) break;
        if (started.has(r) || !waitsFor.get(r)!.every((d) => finished.has(d))) continue;
        started.add(r);
        running += 1;
        runOne(r, options, resources, shared)
          .then(async (step) => {
            if (step) {
              steps.push(step);
              await options.onStep?.(step);
            }
            finished.add(r);
          })
          .catch((e) => {
            failure ??= e;
          })
          .finally(() => {
            running -= 1;
            launch();
            if (running === 0) resolve();
          });
      }
      if (running === 0) resolve();
    };
    launch();
  });
  for (const c of shared?.values() ?? []) await c.then(({ client }) => client.end()).catch(() => undefined);
  if (failure !== undefined) throw failure;
  // As the engine does after the program: resources no longer declared are deleted.
  if (!options.destroy) {
    for (const urn of orphans(resources)) {
      const name = deployedName(urn);
      const began = tick();
      const t0 = Date.now();
      await deleteContainer(urn);
      steps.push({
        name,
        type: CONTAINER,
        host: "",
        code: 0,
        stdout: `changed: deleted ${name}\nchanged=1\n`,
        stderr: "",
        changed: 1,
        dials: 1,
        began,
        ended: tick(),
        ms: Date.now() - t0,
      });
    }
  }
  return steps;
}

async function runOne(r: Declared, options: RunOptions, resources: Declared[], shared?: Shared): Promise<Step | undefined> {
  if (r.type === CONTAINER) return runContainer(r, options, resources);
  const inputs = reveal(r.inputs) as Record<string, any>;
  // CopyToRemote copies on create and leaves the file on destroy, as the provider does.
  const script: string | undefined =
    r.type === "command:remote:CopyToRemote"
      ? options.destroy
        ? undefined
        : `cat > ${quote(inputs.remotePath)}`
      : options.destroy
        ? inputs.delete
        : inputs.create;
  if (!script) return undefined;
  if (r.type === "command:remote:CopyToRemote") inputs.stdin = await assetBytes(r.name, inputs.source);
  const began = tick();
  const t0 = Date.now();
  const result =
    r.type === "command:local:Command"
      ? { ...(await execLocal(script, { interpreter: inputs.interpreter, env: inputs.environment, stdin: inputs.stdin })), dials: 0, host: "localhost" }
      : { ...(await runRemote(r.name, script, inputs, inputs.connection as Connection, shared)), host: (inputs.connection as Connection).host };
  const last = /changed=(\d+)\s*$/.exec(result.stdout);
  const step: Step = { name: r.name, type: r.type, ...result, changed: last ? Number(last[1]) : NaN, began, ended: tick(), ms: Date.now() - t0 };
  if (step.code !== 0) throw new StepError(step, `exited ${step.code}: ${step.stderr.trim()}`);
  return step;
}

async function runContainer(r: Declared, options: RunOptions, resources: Declared[]): Promise<Step | undefined> {
  const began = tick();
  const t0 = Date.now();
  const url = providerOf(r, resources).host;
  const host = url.startsWith("ssh://") ? new URL(url).hostname : "localhost";
  if (options.destroy) {
    if (!(await deleteContainer(r.urn))) return undefined;
    return { name: r.name, type: r.type, host, code: 0, stdout: "changed=1\n", stderr: "", changed: 1, dials: 1, began, ended: tick(), ms: Date.now() - t0 };
  }
  const result = await convergeContainer(r, resources);
  const step: Step = { name: r.name, type: r.type, host, ...result, began, ended: tick(), ms: Date.now() - t0 };
  if (step.code !== 0) throw new StepError(step, `exited ${step.code}: ${step.stderr.trim()}`);
  return step;
}

/** The bytes of a CopyToRemote source: a string or file asset (archives are not needed yet). */
async function assetBytes(name: string, source: any): Promise<string | Buffer> {
  if (source?.text !== undefined) return await source.text;
  if (source?.path !== undefined) return readFileSync(await source.path);
  throw new Error(`${name}: the harness copies string and file assets only`);
}

async function runRemote(name: string, script: string, inputs: Record<string, any>, c: Connection, shared?: Shared) {
  const key = `${c.user}@${c.host}:${c.port}`;
  const first = !shared?.has(key);
  if (first) shared?.set(key, dial(c));
  const { client, dials } = await (shared?.get(key) ?? dial(c)).catch((e: Error) => {
    throw new StepError({ name, host: c.host, stderr: "", code: -1 }, e.message);
  });
  try {
    // A shared connection's dials count once, on the step that opened it.
    return { ...(await exec(client, script, { env: inputs.environment, stdin: inputs.stdin })), dials: first ? dials : 0 };
  } finally {
    if (!shared) client.end();
  }
}
