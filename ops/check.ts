import { randomBytes } from "node:crypto";
import type { SiteNode } from "../components/config";
import { DIAL } from "../components/node/dial";
import { isLocal } from "../components/node/hostRules";
import { checkCluster } from "./kube";
import { planSite, stdinOf, type PlanItem } from "../components/plan";
import { commandFor } from "../components/shell/script";
import type { StackSite } from "../components/stackConfig";
import { dial, exec, execLocal, type Exec } from "./ssh";
import { printable, safeJson, unescapeLine } from "./text";

/**
 * `npm run check`: every component's check variant (`bash -s check`, which changes nothing) on
 * its node, all nodes in parallel, one SSH connection per node (one command per component on
 * it), with the program's own connection rules: pinned host key, dial limits, local for
 * localhost. What comes back is drift, refusals and the storage report.
 *
 * Every run gets a fresh random frame on its command line (`bash -s check <frame>`); only the
 * lines that start with it are read, and every name in them is escaped by the program: a name
 * planted in the tree can neither add a line nor send a terminal anything but text.
 */
export interface ReportLine {
  kind: "space" | "category" | "output" | "project" | "cache" | "cache-off" | "catalog";
  /** The folder's real name (a byte that is not UTF-8 reads as U+FFFD; escapedPath is exact). */
  path: string;
  /** The name as the program printed it: one line, control characters and odd bytes escaped. */
  escapedPath: string;
  /** space: bytes free; cache: bytes cached; catalog: bytes of models read; otherwise bytes of the files inside. */
  bytes: number;
  /** space: storage.minFreeGB in bytes; cache: bytes free beside the cache; catalog: files hashed; otherwise the number of files. */
  count: number;
}

/** What the catalog found a model file to be (components/catalog/catalog.py). */
export type ModelStatus = "ok" | "incomplete" | "invalid" | "dangerous" | "unstable" | "unknown" | "skipped";
/** The statuses that make `check` exit 1: a file no service should load as it is. */
export const MODEL_FINDINGS: readonly ModelStatus[] = ["incomplete", "invalid", "dangerous"];

/** One file of the model store, as the catalog judged it (`--json` carries every one). */
export interface ModelRow {
  /** Relative to the model store (`checkpoints/a.safetensors`); its real name, as in ReportLine. */
  path: string;
  escapedPath: string;
  size: number;
  format: string;
  status: ModelStatus;
  /** SHA-256 of its content; absent for a file left alone (unstable, skipped). */
  sha256?: string;
  /** The content it had before, when it changed under the same name. */
  changedFrom?: string;
  reason: string;
}

export interface ComponentCheck {
  component: string;
  /** What converge would change, as the program said it (names in it escaped). */
  drift: string[];
  /** What converge would refuse (a planted link, a file where a folder belongs…). */
  refusal?: string;
  report: ReportLine[];
  /** The catalog's rows (the catalog program only). */
  models: ModelRow[];
  /** Each declared model (modelshare:models), as the fetcher found it (its program only). */
  declared?: DeclaredRow[];
  /** What `npm run dedupe` did (its program only). */
  dedupe?: DedupeRow[];
  /** Each upload still in a staging folder (storage.intake: staging; the intake's program only). */
  staging?: StagingRow[];
}

/** An upload the intake has not taken yet: still settling, held by a name the store has, or stuck. */
export interface StagingRow {
  /** `category/file` (a control character in it shown escaped). */
  path: string;
  status: "waiting" | "held" | "stuck";
  size: number;
  reason: string;
}
/** An upload that will not reach the store by itself: someone has to act. */
const STAGING_FINDINGS: readonly string[] = ["held", "stuck"];

/** A declared model on the storage node: present, or why not (components/models/fetch.py). */
export interface DeclaredRow {
  /** `category/file` (a control character in it shown escaped). */
  path: string;
  status: "present" | "missing" | "partial" | "different" | "failed";
  /** The file's bytes (the part's when partial). */
  size: number;
  /** What the file's content hashes to, when it was looked at. */
  sha256?: string;
  reason: string;
}
/** A declared model that is not what the site declares: a service would miss it or load another. */
const DECLARED_FINDINGS: readonly string[] = ["missing", "partial", "different", "failed"];

/** One row of `npm run dedupe`: a name made a link, a name left as it was, or the total. */
export type DedupeRow =
  | { kind: "linked"; size: number; path: string; canonical: string }
  | { kind: "skipped"; reason: string; path: string }
  | { kind: "saved"; bytes: number; files: number };

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
  // The cluster's objects (modelshare:kubernetes), beside the nodes: one more entry, "cluster".
  const [checked, cluster] = await Promise.all([
    Promise.all(
      nodes.map((n) =>
        checkNode(
          n,
          plan.filter((p) => p.node.name === n.name),
          site,
        ),
      ),
    ),
    checkCluster(site),
  ]);
  return cluster ? [...checked, cluster] : checked;
}

export async function checkNode(node: SiteNode, planned: PlanItem[], site: StackSite): Promise<NodeCheck> {
  const privateKey = site.sshKeys[node.name];
  const started = Date.now();
  const result: NodeCheck = { node: node.name, host: node.host, components: [], sessions: 0, ms: 0 };
  const done = () => ({ ...result, ms: Date.now() - started });
  let run: (program: string, frame: string) => Promise<Exec>;
  let close = () => {};
  if (isLocal(node)) {
    run = (program, frame) => execLocal(commandFor("check", frame), { stdin: program });
  } else {
    try {
      const { client, dials } = await dial({
        host: node.host,
        port: node.port,
        user: node.user,
        privateKey: privateKey ?? "",
        hostKey: node.hostKey,
        perDialTimeout: DIAL.perDialTimeout,
        dialErrorLimit: DIAL.dialErrorLimit,
      });
      result.sessions = dials;
      run = (program, frame) => exec(client, commandFor("check", frame), { stdin: program });
      close = () => client.end();
    } catch (e) {
      result.error = (e as Error).message;
      return done();
    }
  }
  try {
    for (const program of planned.flatMap((p) => p.programs)) {
      const frame = newFrame();
      const parsed = parse(program.component, await run(stdinOf(program, site), frame), frame);
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

/** A run's frame: 128 random bits, which nothing in the tree can know beforehand. */
export const newFrame = (): string => randomBytes(16).toString("hex");

/**
 * A component's check, or a sentence saying why it could not be checked. Only the lines that
 * start with `frame` count; the closing `drift=N` must be the last line and agree with the
 * drift lines, or the run is not taken as a check at all.
 */
export function parse(component: string, r: Exec, frame: string): ComponentCheck | string {
  const framed = (text: string) =>
    text
      .split("\n")
      .filter((l) => l.startsWith(`${frame} `))
      .map((l) => l.slice(frame.length + 1));
  const lines = framed(r.stdout);
  const drift = lines.filter((l) => l.startsWith("drift: ")).map((l) => printable(l.slice(7)));
  const report: ReportLine[] = [];
  const models: ModelRow[] = [];
  const dedupe: DedupeRow[] = [];
  const declared: DeclaredRow[] = [];
  const staging: StagingRow[] = [];
  for (const l of lines) {
    const st = stagingRow(l);
    if (st) staging.push(st);
    const wanted = declaredRow(l);
    if (wanted) declared.push(wanted);
    const d = dedupeRow(l);
    if (d) dedupe.push(d);
    const m = /^report: (space|category|output|project|cache|cache-off|catalog) (\d+) (\d+) (.+)$/.exec(l);
    if (m) report.push({ kind: m[1] as ReportLine["kind"], bytes: Number(m[2]), count: Number(m[3]), path: unescapeLine(m[4]), escapedPath: printable(m[4]) });
    const row = modelRow(l);
    if (row) models.push(row);
  }
  const last = r.stdout.replace(/\n$/, "").split("\n").at(-1) ?? "";
  const closing = last.startsWith(`${frame} `) ? /^drift=(\d+)$/.exec(last.slice(frame.length + 1)) : null;
  if (r.code === 0 && closing) {
    if (Number(closing[1]) === drift.length)
      return {
        component,
        drift,
        report,
        models,
        ...(dedupe.length ? { dedupe } : {}),
        ...(declared.length ? { declared } : {}),
        ...(staging.length ? { staging } : {}),
      };
    return `${component}: the check's output does not add up (drift=${closing[1]}, but ${drift.length} drift lines)`;
  }
  const refusal = framed(r.stderr).find((l) => l.startsWith("modelshare: "));
  if (r.code === 1 && refusal)
    return {
      component,
      drift,
      report,
      models,
      refusal: printable(refusal.slice(12)),
      ...(dedupe.length ? { dedupe } : {}),
      ...(declared.length ? { declared } : {}),
      ...(staging.length ? { staging } : {}),
    };
  const said = r.stderr.trim() ? `: ${r.stderr.trim().split("\n").slice(-3).join(" ")}` : "";
  return printable(`${component}: the check did not run to its end (exit ${r.code})${said}`);
}

/** `report: declared STATUS SIZE SHA PATH REASON` (path: spaces as \x20; reason: escaped). */
const DECLARED_ROW = /^report: declared (present|missing|partial|different|failed) (\d+) ([0-9a-f]{64}|-) (\S+) (.+)$/;

export function declaredRow(line: string): DeclaredRow | undefined {
  const m = DECLARED_ROW.exec(line);
  if (!m) return undefined;
  return {
    path: printable(unescapeLine(m[4])),
    status: m[1] as DeclaredRow["status"],
    size: Number(m[2]),
    ...(m[3] === "-" ? {} : { sha256: m[3] }),
    reason: m[5] === "-" ? "" : printable(unescapeLine(m[5])),
  };
}

/** `report: staging STATUS SIZE PATH REASON` (path: spaces as \x20; reason: escaped). */
const STAGING_ROW = /^report: staging (waiting|held|stuck) (\d+) (\S+) (.+)$/;

export function stagingRow(line: string): StagingRow | undefined {
  const m = STAGING_ROW.exec(line);
  if (!m) return undefined;
  return { path: printable(unescapeLine(m[3])), status: m[1] as StagingRow["status"], size: Number(m[2]), reason: printable(unescapeLine(m[4])) };
}

const STATUSES = "ok|incomplete|invalid|dangerous|unstable|unknown|skipped";
const MODEL_ROW = new RegExp(`^report: model (\\d+) (\\S+) (${STATUSES}) ([0-9a-f]{64}|-) ([0-9a-f]{64}|-) (\\S+) (.+)$`);

/** `report: model SIZE FORMAT STATUS SHA CHANGED REASON PATH` (reason: escaped, spaces as \x20). */
export function modelRow(line: string): ModelRow | undefined {
  const m = MODEL_ROW.exec(line);
  if (!m) return undefined;
  return {
    path: unescapeLine(m[7]),
    escapedPath: printable(m[7]),
    size: Number(m[1]),
    format: printable(m[2]),
    status: m[3] as ModelStatus,
    ...(m[4] === "-" ? {} : { sha256: m[4] }),
    ...(m[5] === "-" ? {} : { changedFrom: m[5] }),
    reason: m[6] === "-" ? "" : printable(unescapeLine(m[6])),
  };
}

/** `report: dedupe linked SIZE PATH CANONICAL` | `skipped REASON PATH` | `saved BYTES FILES` (names escaped, no spaces). */
export function dedupeRow(line: string): DedupeRow | undefined {
  const linked = /^report: dedupe linked (\d+) (\S+) (\S+)$/.exec(line);
  const name = (escaped: string) => printable(unescapeLine(escaped));
  if (linked) return { kind: "linked", size: Number(linked[1]), path: name(linked[2]), canonical: name(linked[3]) };
  const skipped = /^report: dedupe skipped (\S+) (\S+)$/.exec(line);
  if (skipped) return { kind: "skipped", reason: name(skipped[1]), path: name(skipped[2]) };
  const saved = /^report: dedupe saved (\d+) (\d+)$/.exec(line);
  if (saved) return { kind: "saved", bytes: Number(saved[1]), files: Number(saved[2]) };
  return undefined;
}

const isFinding = (r: ModelRow) => MODEL_FINDINGS.includes(r.status);

/**
 * 0: nothing drifted; 1: drift, something converge would refuse, or a model no service should
 * load (incomplete, invalid, dangerous); 2: a node could not be checked.
 */
export function exitCode(nodes: NodeCheck[]): 0 | 1 | 2 {
  if (nodes.some((n) => n.error)) return 2;
  const wrong = (c: ComponentCheck) =>
    c.models.some(isFinding) ||
    (c.declared ?? []).some((d) => DECLARED_FINDINGS.includes(d.status)) ||
    (c.staging ?? []).some((d) => STAGING_FINDINGS.includes(d.status));
  return nodes.some((n) => n.components.some((c) => c.drift.length > 0 || c.refusal || wrong(c))) ? 1 : 0;
}

/** Names that hold the same content (two or more), per hash, largest waste first. */
export function duplicates(rows: readonly ModelRow[]): Array<{ sha256: string; size: number; paths: string[] }> {
  const by = new Map<string, ModelRow[]>();
  for (const r of rows) if (r.sha256) by.set(r.sha256, [...(by.get(r.sha256) ?? []), r]);
  return [...by.entries()]
    .filter(([, rs]) => rs.length > 1)
    .map(([sha256, rs]) => ({ sha256, size: rs[0].size, paths: rs.map((r) => r.escapedPath) }))
    .sort((a, b) => b.size * (b.paths.length - 1) - a.size * (a.paths.length - 1) || a.sha256.localeCompare(b.sha256));
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
export const human = (bytes: number): string =>
  bytes >= 1e9 ? gb(bytes) : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : bytes >= 1e3 ? `${(bytes / 1e3).toFixed(1)} kB` : `${bytes} B`;
const tail = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/**
 * The human report: per node what drifted, then the storage report. Names show escaped as the
 * program printed them, and every line passes printable: nothing in it reaches the terminal as
 * a control character, whatever a node sent.
 */
export function formatText(nodes: NodeCheck[], stack = "<stack>"): string {
  const out: string[] = [];
  for (const n of nodes) {
    const where = `${n.node} (${isLocalName(n) ? "this machine" : n.host})`;
    const findings = n.components.flatMap((c) => [
      ...c.drift.map((d) => `  ${c.component}: ${d}`),
      ...(c.refusal ? [`  ${c.component}: converge would refuse: ${c.refusal}`] : []),
    ]);
    if (n.error) out.push(`${where}: could not be checked: ${n.error}`);
    else out.push(`${where}: ${findings.length === 0 ? "no drift" : `${findings.length} finding(s)`}`);
    out.push(...findings);
    const report = n.components.flatMap((c) => c.report);
    const space = report.find((r) => r.kind === "space");
    if (space) {
      out.push(
        `storage on ${n.node}: ${gb(space.bytes)} free at ${space.escapedPath} (storage.minFreeGB: ${gb(space.count)})${space.bytes < space.count ? "  BELOW THE MINIMUM" : ""}`,
      );
    }
    // cache-off: the kernel's release, which has no CacheFiles.
    for (const r of report.filter((x) => x.kind === "cache" || x.kind === "cache-off")) {
      out.push(
        r.kind === "cache"
          ? `cache on ${n.node}: ${human(r.bytes)} cached in ${r.escapedPath}, ${gb(r.count)} free beside it`
          : `cache on ${n.node}: none, its kernel (${r.escapedPath}) cannot cache NFS reads; the mount works uncached`,
      );
    }
    out.push(
      ...modelLines(
        n.node,
        n.components.flatMap((c) => c.models),
        report.find((r) => r.kind === "catalog"),
      ),
    );
    out.push(
      ...declaredLines(
        n.node,
        n.components.flatMap((c) => c.declared ?? []),
      ),
    );
    out.push(
      ...stagingLines(
        n.node,
        n.components.flatMap((c) => c.staging ?? []),
      ),
    );
    for (const kind of ["category", "output", "project"] as const) {
      const rows = report.filter((r) => r.kind === kind);
      if (rows.length === 0) continue;
      out.push(`  ${kind === "category" ? "model categories" : `${kind}s`}:`);
      for (const r of rows)
        out.push(`    ${tail(r.escapedPath).padEnd(24)} ${human(r.bytes).padStart(10)} ${String(r.count).padStart(7)} ${r.count === 1 ? "file" : "files"}`);
    }
  }
  out.push(...nextSteps(nodes, stack));
  return `${out.map(printable).join("\n")}\n`;
}

const isLocalName = (n: NodeCheck) => isLocal({ host: n.host });

/** What fixes what the report found, one line per kind of finding (none when all is well). */
function nextSteps(nodes: readonly NodeCheck[], stack: string): string[] {
  const all = nodes.flatMap((n) => n.components);
  const steps: string[] = [];
  if (nodes.some((n) => n.error)) steps.push("a node that could not be checked: make it reachable (its reason is above), then check again");
  if (all.some((c) => c.refusal)) steps.push("'converge would refuse': change what that line names first; converge will not guess");
  if (all.some((c) => c.drift.length > 0)) steps.push(`drift: npm run repair -- ${stack} converges every node again (or pulumi up after a config change)`);
  if (all.some((c) => c.models.some(isFinding)))
    steps.push("a model marked INCOMPLETE, INVALID or DANGEROUS: replace or remove that file; no service should load it");
  if (all.some((c) => (c.declared ?? []).some((d) => DECLARED_FINDINGS.includes(d.status))))
    steps.push(`a declared model MISSING or PARTIAL: npm run repair -- ${stack} fetches it; DIFFERENT: rename that file, or correct modelshare:models`);
  if (all.some((c) => (c.staging ?? []).some((d) => STAGING_FINDINGS.includes(d.status))))
    steps.push("an upload HELD or STUCK in staging: its line says what to do");
  return steps.length ? ["what to do:", ...steps.map((x) => `  - ${x}`)] : [];
}

/** The declared models: how many are present, then each that is not, and why. */
function declaredLines(node: string, rows: readonly DeclaredRow[]): string[] {
  if (rows.length === 0) return [];
  const present = rows.filter((r) => r.status === "present").length;
  const out = [`declared models on ${node}: ${present} of ${rows.length} present`];
  for (const r of rows.filter((x) => x.status !== "present")) out.push(`  ${r.status.toUpperCase()} ${r.path}${r.reason ? `: ${r.reason}` : ""}`);
  return out;
}

/** The uploads still in staging: how many, then each held or stuck one, and why. */
function stagingLines(node: string, rows: readonly StagingRow[]): string[] {
  if (rows.length === 0) return [];
  const out = [`uploads in staging on ${node}: ${rows.length} (${rows.filter((r) => r.status === "waiting").length} waiting for the intake)`];
  for (const r of rows.filter((x) => x.status !== "waiting")) out.push(`  ${r.status.toUpperCase()} ${r.path}: ${r.reason}`);
  return out;
}

/** The catalog's part of the report: counts, then every finding, duplicate and changed file. */
function modelLines(node: string, rows: readonly ModelRow[], catalog: ReportLine | undefined): string[] {
  if (!catalog) return [];
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const total = rows.reduce((a, r) => a + r.size, 0);
  const out = [
    `models on ${node}: ${rows.length} file(s), ${human(total)}: ${[...counts].map(([k, v]) => `${v} ${k}`).join(", ") || "none"}; this check read ${human(catalog.bytes)} (${catalog.count} file(s) hashed)`,
  ];
  for (const r of rows.filter(isFinding)) out.push(`  ${r.status.toUpperCase()} ${r.escapedPath}: ${r.reason}`);
  for (const r of rows.filter((x) => x.status === "unstable" || x.status === "skipped" || x.status === "unknown"))
    out.push(`  ${r.status} ${r.escapedPath}: ${r.reason}`);
  for (const r of rows.filter((x) => x.changedFrom))
    out.push(`  changed under the same name: ${r.escapedPath} (was ${r.changedFrom!.slice(0, 12)}…, now ${r.sha256!.slice(0, 12)}…)`);
  for (const d of duplicates(rows)) out.push(`  same content (${human(d.size)} each, ${d.sha256.slice(0, 12)}…): ${d.paths.join(", ")}`);
  return out;
}

/**
 * For monitoring (cron, a Prometheus textfile exporter): the whole result and the exit code.
 * Report paths are the real names (JSON escapes them; safeJson also what a terminal acts on).
 */
export function formatJson(nodes: NodeCheck[]): string {
  return `${safeJson({ exitCode: exitCode(nodes), nodes })}\n`;
}
