import { isLocal, type SiteNode } from "../components/config";
import { DIAL } from "../components/node/command";
import { planSite, programsOf, type Planned } from "../components/plan";
import { commandFor } from "../components/shell/script";
import type { StackSite } from "../components/stackConfig";
import { dial, exec, execLocal, type Exec } from "./ssh";

/**
 * `npm run check`: every component's check variant (`bash -s check`, which changes nothing) on
 * its node, all nodes in parallel, one SSH connection per node (one command per component on
 * it), with the program's own connection rules: pinned host key, dial limits, local for
 * localhost. What comes back is drift, refusals and the storage report.
 */
export interface ReportLine {
  kind: "space" | "category" | "output" | "project";
  path: string;
  /** space: bytes free; otherwise bytes of the files inside. */
  bytes: number;
  /** space: storage.minFreeGB in bytes; otherwise the number of files. */
  count: number;
}

export interface ComponentCheck {
  component: string;
  drift: string[];
  /** What converge would refuse (a planted link, a file where a folder belongs…). */
  refusal?: string;
  report: ReportLine[];
}

export interface NodeCheck {
  node: string;
  host: string;
  /** Why the node could not be checked (unreachable, a program that did not run). */
  error?: string;
  components: ComponentCheck[];
  /** SSH connections opened (0 for the local node). */
  sessions: number;
  ms: number;
}

export async function checkSite(site: StackSite): Promise<NodeCheck[]> {
  const plan = planSite(site.config);
  const nodes = site.config.nodes.filter((n) => plan.some((p) => p.node.name === n.name));
  return Promise.all(nodes.map((n) => checkNode(n, plan.filter((p) => p.node.name === n.name), site)));
}

async function checkNode(node: SiteNode, planned: Planned[], site: StackSite): Promise<NodeCheck> {
  const privateKey = site.sshKeys[node.name];
  const started = Date.now();
  const result: NodeCheck = { node: node.name, host: node.host, components: [], sessions: 0, ms: 0 };
  const done = () => ({ ...result, ms: Date.now() - started });
  let run: (program: string) => Promise<Exec>;
  let close = () => {};
  if (isLocal(node)) {
    run = (program) => execLocal(commandFor("check"), { stdin: program });
  } else {
    try {
      const { client, dials } = await dial({
        host: node.host, port: node.port, user: node.user, privateKey: privateKey ?? "", hostKey: node.hostKey,
        perDialTimeout: DIAL.perDialTimeout, dialErrorLimit: DIAL.dialErrorLimit,
      });
      result.sessions = dials;
      run = (program) => exec(client, commandFor("check"), { stdin: program });
      close = () => client.end();
    } catch (e) {
      result.error = (e as Error).message;
      return done();
    }
  }
  try {
    for (const { name, stdin } of planned.flatMap((p) => programsOf(p, site))) {
      const r = await run(stdin);
      const parsed = parse(name.replace(/-converge$/, ""), r);
      if (typeof parsed === "string") {
        result.error = parsed;
        break;
      }
      result.components.push(parsed);
    }
  } finally {
    close();
  }
  return done();
}

/** A component's check, or a sentence saying why it could not be checked. */
export function parse(component: string, r: Exec): ComponentCheck | string {
  const lines = r.stdout.split("\n");
  const drift = lines.filter((l) => l.startsWith("drift: ")).map((l) => l.slice(7));
  const report: ReportLine[] = [];
  for (const l of lines) {
    const m = /^report: (space|category|output|project) (\d+) (\d+) (.+)$/.exec(l);
    if (m) report.push({ kind: m[1] as ReportLine["kind"], bytes: Number(m[2]), count: Number(m[3]), path: m[4] });
  }
  if (r.code === 0 && /(^|\n)drift=\d+\n?$/.test(r.stdout)) return { component, drift, report };
  const refusal = r.stderr.split("\n").find((l) => l.startsWith("modelshare: "));
  if (r.code === 1 && refusal) return { component, drift, report, refusal: refusal.slice(12) };
  return `${component}: the check did not run to its end (exit ${r.code})${r.stderr.trim() ? `: ${r.stderr.trim().split("\n").slice(-3).join(" ")}` : ""}`;
}

/** 0: nothing drifted; 1: drift (or something converge would refuse); 2: a node could not be checked. */
export function exitCode(nodes: NodeCheck[]): 0 | 1 | 2 {
  if (nodes.some((n) => n.error)) return 2;
  return nodes.some((n) => n.components.some((c) => c.drift.length > 0 || c.refusal)) ? 1 : 0;
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
const human = (bytes: number) =>
  bytes >= 1e9 ? gb(bytes) : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : bytes >= 1e3 ? `${(bytes / 1e3).toFixed(1)} kB` : `${bytes} B`;
const tail = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/** The human report: per node what drifted, then the storage report. */
export function formatText(nodes: NodeCheck[]): string {
  const out: string[] = [];
  for (const n of nodes) {
    const where = `${n.node} (${isLocalName(n) ? "this machine" : n.host})`;
    const findings = n.components.flatMap((c) => [...c.drift.map((d) => `  ${c.component}: ${d}`), ...(c.refusal ? [`  ${c.component}: converge would refuse: ${c.refusal}`] : [])]);
    if (n.error) out.push(`${where}: could not be checked: ${n.error}`);
    else out.push(`${where}: ${findings.length === 0 ? "no drift" : `${findings.length} finding(s)`}`);
    out.push(...findings);
    const report = n.components.flatMap((c) => c.report);
    const space = report.find((r) => r.kind === "space");
    if (space) {
      out.push(`storage on ${n.node}: ${gb(space.bytes)} free at ${space.path} (storage.minFreeGB: ${gb(space.count)})${space.bytes < space.count ? "  BELOW THE MINIMUM" : ""}`);
    }
    for (const kind of ["category", "output", "project"] as const) {
      const rows = report.filter((r) => r.kind === kind);
      if (rows.length === 0) continue;
      out.push(`  ${kind === "category" ? "model category" : kind}s:`);
      for (const r of rows) out.push(`    ${tail(r.path).padEnd(24)} ${human(r.bytes).padStart(10)} ${String(r.count).padStart(7)} files`);
    }
  }
  return `${out.join("\n")}\n`;
}

const isLocalName = (n: NodeCheck) => isLocal({ host: n.host });

/** For monitoring (cron, a Prometheus textfile exporter): the whole result and the exit code. */
export function formatJson(nodes: NodeCheck[]): string {
  return `${JSON.stringify({ exitCode: exitCode(nodes), nodes }, null, 2)}\n`;
}
