import type { Site, SiteNode } from "../components/config";
import { renderWarm } from "../components/cache/warm";
import { mountsOf } from "../components/nfs/exports";
import { nfsServerNode } from "../components/nfs/nodes";
import { DIAL } from "../components/node/dial";
import { isLocal } from "../components/node/hostRules";
import { planSite } from "../components/plan";
import { commandFor } from "../components/shell/script";
import type { StackSite } from "../components/stackConfig";
import { newFrame } from "./check";
import { dial, exec, execLocal, type Exec } from "./ssh";
import { printable, printableLines } from "./text";

/**
 * `npm run warm -- <stack> [--category c ...] [--node n ...]`: every NFS worker of the stack's
 * plan (its "nfs-mount" items) reads the models once through its mount, all workers in
 * parallel, so that FS-Cache (nfs.cache) has them on the worker's disk before anyone loads
 * them. The program (components/cache/warm.ts) only reads, as the storage owner; this side
 * shows progress per node and a summary.
 */
export const WARM_USAGE = "usage: npm run warm -- <stack> [--category <category> ...] [--node <node> ...]";

export interface WarmArgs {
  stack: string;
  categories: string[];
  nodes: string[];
}

/** The command line after `warm`, or the usage line. */
export function parseWarmArgs(argv: readonly string[]): WarmArgs | string {
  const [stack, ...rest] = argv;
  if (!stack || stack.startsWith("-")) return WARM_USAGE;
  const out: WarmArgs = { stack, categories: [], nodes: [] };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    const value = rest[i + 1];
    if ((flag !== "--category" && flag !== "--node") || value === undefined || value.startsWith("-")) return WARM_USAGE;
    (flag === "--category" ? out.categories : out.nodes).push(value);
    i += 1;
  }
  return out;
}

/** One worker to warm: the node and its program. */
export interface WarmTarget {
  node: SiteNode;
  program: string;
}

/**
 * The workers to warm and their programs, or a sentence naming what is not known (an unknown
 * node or category, with the valid ones), for exit code 2. Workers are the plan's NFS mounts.
 */
export function warmTargets(site: Site, args: Pick<WarmArgs, "categories" | "nodes">): WarmTarget[] | string {
  const workers = planSite(site)
    .filter((i) => i.kind === "nfs-mount")
    .map((i) => i.node);
  const server = nfsServerNode(site);
  if (workers.length === 0 || !server) return "this stack has no NFS worker (no node mounts the storage over NFS): there is nothing to warm";
  const valid = (what: [string, string], asked: string[], known: string[]) => {
    const unknown = asked.filter((a) => !known.includes(a));
    if (unknown.length === 0) return undefined;
    const many = unknown.length > 1;
    return `${many ? what[1] : what[0]} ${unknown.map((u) => JSON.stringify(u)).join(", ")} ${many ? "are" : "is"} not known; the ${what[1]} to warm are: ${known.join(", ")}`;
  };
  const names = workers.map((w) => w.name);
  const problem = valid(["node", "nodes"], args.nodes, names) ?? valid(["category", "categories"], args.categories, site.storage.categories);
  if (problem) return problem;
  const categories = args.categories.length ? site.storage.categories.filter((c) => args.categories.includes(c)) : site.storage.categories;
  const program = renderWarm({
    storage: site.storage,
    base: site.nfs.mountPoint,
    categories,
    mounts: mountsOf(site.nfs, site.storage, server.host).map((m) => m.where),
    cache: site.nfs.cache.enabled,
  });
  return workers.filter((w) => args.nodes.length === 0 || args.nodes.includes(w.name)).map((node) => ({ node, program }));
}

/** What one worker did, as its lines came in. */
export interface WarmNode {
  node: string;
  /** Files and bytes the chosen categories hold (known once the program has looked). */
  planned: { files: number; bytes: number };
  /** Files read and bytes read so far. */
  files: number;
  bytes: number;
  /** Files that could not be read. */
  failedFiles: number;
  /** What the program said: the cache note, why a file could not be read, links not followed… */
  notes: string[];
  /** The program ran to its end (its closing line came). */
  done: boolean;
  /** Why the node did not warm (its refusal, or a program that did not run to its end). */
  error?: string;
  /** The node could not be reached at all. */
  unreachable?: boolean;
  ms: number;
}

export const newWarmNode = (node: string): WarmNode => ({
  node,
  planned: { files: 0, bytes: 0 },
  files: 0,
  bytes: 0,
  failedFiles: 0,
  notes: [],
  done: false,
  ms: 0,
});

const REPORT = /^report: (warm-category|warm-links|warm-unlisted|warm-absent|warmed|warm-failed) (\d+) (\d+) (.+)$/;

/**
 * One line of the program's output into the node's state: only lines that carry the frame
 * count; paths stay as the program escaped them (one line, nothing a terminal acts on).
 */
export function takeLine(n: WarmNode, line: string, frame: string): void {
  if (!line.startsWith(`${frame} `)) return;
  const l = line.slice(frame.length + 1);
  if (l === "drift=0") {
    n.done = true;
    return;
  }
  if (l.startsWith("note: ")) {
    n.notes.push(printable(l.slice(6)));
    return;
  }
  const m = REPORT.exec(l);
  if (!m) return;
  const [, kind, a, b, path] = m;
  const shown = printable(path);
  if (kind === "warm-category") {
    n.planned.bytes += Number(a);
    n.planned.files += Number(b);
  } else if (kind === "warmed") {
    n.files += 1;
    n.bytes += Number(a);
  } else if (kind === "warm-failed") n.failedFiles += 1;
  else if (kind === "warm-links") n.notes.push(`${b} link(s) in ${shown} not followed`);
  else if (kind === "warm-unlisted") n.notes.push(`${b} folder(s) in ${shown} the storage owner cannot list: their files are not warmed`);
  else if (kind === "warm-absent") n.notes.push(`no folder ${shown}: nothing to warm there`);
}

/** After the program ended: its refusal, or a sentence saying it did not run to its end. */
export function finish(n: WarmNode, r: Exec, frame: string): void {
  if (r.code === 0 && n.done) return;
  const refusal = r.stderr
    .split("\n")
    .filter((l) => l.startsWith(`${frame} modelshare: `))
    .at(-1);
  if (refusal) n.error = printable(refusal.slice(frame.length + 13));
  else {
    const said = r.stderr.trim() ? `: ${r.stderr.trim().split("\n").slice(-3).join(" ")}` : "";
    n.error = printable(`the warm did not run to its end (exit ${r.code})${said}`);
  }
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
export const human = (bytes: number) =>
  bytes >= 1e9 ? gb(bytes) : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : bytes >= 1e3 ? `${(bytes / 1e3).toFixed(1)} kB` : `${bytes} B`;

/** `node2: 12/40 files, 3.2 GB of 12.3 GB`. */
export const formatProgress = (n: WarmNode): string =>
  printable(
    `${n.node}: ${n.files}/${n.planned.files} files, ${human(n.bytes)} of ${human(n.planned.bytes)}${n.failedFiles ? `, ${n.failedFiles} unreadable` : ""}`,
  );

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rate = (bytes: number, ms: number) => (ms > 0 ? `, ${human((bytes * 1000) / ms)}/s` : "");

/** Whether a node warmed everything it was asked to. */
const failed = (n: WarmNode) => Boolean(n.error) || n.failedFiles > 0;

/** The summary: per node files, bytes, seconds (or why it failed), then the total. */
export function formatSummary(nodes: readonly WarmNode[], totalMs: number): string {
  const out = ["warm summary:"];
  for (const n of nodes) {
    const read = `${n.files} files, ${human(n.bytes)} in ${seconds(n.ms)}${rate(n.bytes, n.ms)}`;
    if (n.unreachable) out.push(`  ${n.node}: UNREACHABLE: ${n.error}`);
    else if (n.error) out.push(`  ${n.node}: FAILED: ${n.error} (${read} before that)`);
    else if (n.failedFiles) out.push(`  ${n.node}: FAILED: ${n.failedFiles} file(s) could not be read (${read})`);
    else out.push(`  ${n.node}: ${read}`);
  }
  const files = nodes.reduce((a, n) => a + n.files, 0);
  const bytes = nodes.reduce((a, n) => a + n.bytes, 0);
  const bad = nodes.filter(failed).map((n) => n.node);
  out.push(`  total: ${files} files, ${human(bytes)} in ${seconds(totalMs)} on ${nodes.length} node(s)${bad.length ? `; not warmed: ${bad.join(", ")}` : ""}`);
  return `${out.map(printable).join("\n")}\n`;
}

/** 0: every node warmed all; 1: a node failed (a refusal, a file it could not read); 2: a node could not be reached. */
export function warmExitCode(nodes: readonly WarmNode[]): 0 | 1 | 2 {
  if (nodes.some((n) => n.unreachable)) return 2;
  return nodes.some(failed) ? 1 : 0;
}

/**
 * A stream's chunks as whole lines, each decoded once it is whole: a character split between two
 * chunks stays whole. `end` gives the last line if the stream did not end with a line break.
 */
export function lineSplitter(onLine: (line: string) => void): { push: (chunk: Buffer) => void; end: () => void } {
  let partial = Buffer.alloc(0);
  return {
    push(chunk) {
      let buf = partial.length ? Buffer.concat([partial, chunk]) : chunk;
      for (let at = buf.indexOf(0x0a); at >= 0; at = buf.indexOf(0x0a)) {
        onLine(buf.subarray(0, at).toString("utf8"));
        buf = buf.subarray(at + 1);
      }
      partial = Buffer.from(buf);
    },
    end() {
      if (partial.length) onLine(partial.toString("utf8"));
      partial = Buffer.alloc(0);
    },
  };
}

/** How often a node's progress line is shown at most, while it reads. */
const PROGRESS_MS = 2000;

/** One worker: dial (or run here), stream the program's lines into its state, print progress. */
export async function warmNode(t: WarmTarget, site: StackSite, say: (line: string) => void): Promise<WarmNode> {
  const n = newWarmNode(t.node.name);
  const started = Date.now();
  const frame = newFrame();
  let shown = 0;
  let notes = 0;
  let planned = false;
  // Line by line, so that what is said keeps the program's order.
  const lines = lineSplitter((l) => {
    takeLine(n, l, frame);
    show();
  });
  const show = () => {
    for (; notes < n.notes.length; notes++) say(`${n.node}: ${n.notes[notes]}`);
    // The program reports what each category holds before its first read.
    if (!planned && (n.files > 0 || n.failedFiles > 0 || n.done)) {
      planned = true;
      say(`${n.node}: ${n.planned.files} files, ${human(n.planned.bytes)} to read`);
    }
    if (Date.now() - shown >= PROGRESS_MS && n.files > 0) {
      shown = Date.now();
      say(formatProgress(n));
    }
  };
  const onStdout = (chunk: Buffer) => lines.push(chunk);
  let run: () => Promise<Exec>;
  let close = () => {};
  if (isLocal(t.node)) run = () => execLocal(commandFor("check", frame), { stdin: t.program, onStdout });
  else {
    try {
      const { client } = await dial({
        host: t.node.host,
        port: t.node.port,
        user: t.node.user,
        privateKey: site.sshKeys[t.node.name] ?? "",
        hostKey: t.node.hostKey,
        perDialTimeout: DIAL.perDialTimeout,
        dialErrorLimit: DIAL.dialErrorLimit,
      });
      run = () => exec(client, commandFor("check", frame), { stdin: t.program, onStdout });
      close = () => client.end();
    } catch (e) {
      return { ...n, unreachable: true, error: printable((e as Error).message), ms: Date.now() - started };
    }
  }
  try {
    const r = await run();
    lines.end();
    finish(n, r, frame);
  } catch (e) {
    n.error = printable((e as Error).message);
  } finally {
    close();
  }
  n.ms = Date.now() - started;
  say(n.error ? `${n.node}: failed: ${n.error}` : `${formatProgress(n)}: done`);
  return n;
}

/** The whole command after `warm`: arguments, the stack, the workers in parallel, the summary. */
export async function warmMain(
  argv: readonly string[],
  open: (stack: string) => Promise<StackSite>,
  write: (s: string) => unknown = (s) => process.stdout.write(s),
): Promise<number> {
  const args = parseWarmArgs(argv);
  if (typeof args === "string") {
    process.stderr.write(`${args}\n`);
    return 2;
  }
  const site = await open(args.stack);
  const targets = warmTargets(site.config, args);
  if (typeof targets === "string") {
    process.stderr.write(printableLines(`modelshare: ${targets}\n`));
    return 2;
  }
  const say = (line: string) => write(`${printable(line)}\n`);
  say(`warming ${targets.map((t) => t.node.name).join(", ")} through their NFS mounts (${site.config.nfs.cache.enabled ? "nfs.cache on" : "nfs.cache off"})`);
  const started = Date.now();
  const nodes = await Promise.all(targets.map((t) => warmNode(t, site, say)));
  write(formatSummary(nodes, Date.now() - started));
  return warmExitCode(nodes);
}
