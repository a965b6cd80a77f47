import { z } from "zod";
import type { Add } from "./concern";
import { CONCERNS } from "./concerns";
import { canonicalHost, hostKeyProblem, hostProblem, isLocal } from "./node/hostRules";
import { checkPorts } from "./node/portRules";
import { lengthProblems, rootProblem } from "./storage/schema";
import { closest } from "./spelling";

export { CATEGORY_ALIASES, COMFYUI_CATEGORIES, DEFAULT_CATEGORIES, type Storage } from "./storage/schema";
export { isLocal } from "./node/hostRules";

/**
 * The site config: one schema, with every default and description in one place. index.ts reads
 * the stack's `modelshare:*` keys and hands them to `parseSite`, which rejects every bad value
 * (naming the key and the fix) before any resource exists, so no node is touched.
 */

export const ROLES = ["storage", "smb", "nfs-server", "worker"] as const;

/** The stack's `modelshare:` sections; any other key is a node's SSH key (or a mistake). */
export const SECTIONS: readonly string[] = ["nodes", ...CONCERNS.flatMap((c) => Object.keys(c.sections))];

const hostName = z.string().superRefine((h, ctx) => {
  const problem = hostProblem(h);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const nodeSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/i, "must be 1-32 letters, digits or -, not starting or ending with -")
    .describe("Node name, unique in the site (case-insensitive); names its resources."),
  host: hostName.describe(
    "Hostname or IP address to reach the node over SSH; `localhost` (or 127.x, ::1) runs the node's commands locally, without SSH. Never 0.0.0.0, ::, broadcast, multicast, link-local, a zone id or a shorthand such as 0x7f.1.",
  ),
  port: z
    .number()
    .int()
    .min(1)
    .max(65535)
    .default(22)
    .describe("SSH port; not one Samba (137-139, 445), the NFS server (111, 2049) or a host Ollama (11434) holds on this node."),
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name")
    .default("root")
    .describe("SSH user; needs root rights for system changes (or be root)."),
  sshKey: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_]*$/, "must be the name of a config key")
    .superRefine((k, ctx) => {
      if ((SECTIONS as readonly string[]).includes(k)) {
        ctx.addIssue({
          code: "custom",
          message: `"${k}" is the name of the modelshare:${k} section; name the key after the node instead, e.g. sshKey or sshKeyGpu1`,
        });
      }
    })
    .default("sshKey")
    .describe("Name of the secret config key (`pulumi config set --secret <name> < key`) that holds this node's SSH private key."),
  hostKey: z
    .string()
    .superRefine((k, ctx) => {
      const problem = hostKeyProblem(k);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .optional()
    .describe("The node's SSH host public key; connections to any other key are refused."),
  insecureSkipHostKeyCheck: z
    .boolean()
    .default(false)
    .describe("Opt out of hostKey: accept whatever key the host presents (exposes the SSH key to a man in the middle)."),
  roles: z
    .array(z.enum(ROLES, { error: `must be one of ${ROLES.join(", ")}` }))
    .min(1, "must list at least one role")
    .describe("What the node is: storage (keeps the models), smb, nfs-server (both on the storage node), worker (GPU node)."),
});

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type ConcernSections = UnionToIntersection<(typeof CONCERNS)[number]["sections"]>;
const nodes = { nodes: z.array(nodeSchema).min(1, "must list at least one node") };

/** The nodes, then each concern's sections (concerns.ts). */
export const siteSchema = z.strictObject(Object.assign({}, nodes, ...CONCERNS.map((c) => c.sections)) as typeof nodes & ConcernSections);

export type RawSite = z.input<typeof siteSchema>;
export type Site = z.output<typeof siteSchema>;
export type SiteNode = Site["nodes"][number];

export class SiteConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`modelshare: the site config is not valid; nothing was changed on any node:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "SiteConfigError";
  }
}

const REFERENCE = "docs/config-reference.md";

/**
 * One schema issue as the problems a person can act on: the key as written in the stack file,
 * what it must be and what to write, never the schema library's own wording (which names no
 * fix). A message a rule wrote itself (custom, or a check's own text) is kept as it is.
 */
export function issueProblems(issue: z.core.$ZodIssue): string[] {
  const key = keyPath(issue.path);
  const at = key || "(site)";
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = knownKeys(issue.path);
      return issue.keys.map((k) => {
        const where = key ? `${key}.${k}` : `modelshare:${k}`;
        const near = known && closest(k, known);
        const list = known ? ` (known here: ${known.join(", ")})` : "";
        return near ? `${where}: is not a setting; did you mean ${near}?${list}` : `${where}: is not a setting${list}; fix the spelling or remove it`;
      });
    }
    case "invalid_type":
      if (!/^Invalid input/.test(issue.message)) return [`${at}: ${issue.message}`]; // a rule's own words
      if (input === undefined) return [`${at}: is required; add it (${REFERENCE} shows each key with an example)`];
      return [`${at}: must be ${article(issue.expected)}, not ${describe(input)}; write it as ${REFERENCE} shows`];
    case "invalid_value":
      if (/^Invalid (option|input)/.test(issue.message))
        return [`${at}: must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, not ${describe(input)}`];
      return [`${at}: ${issue.message}`];
    case "too_small":
    case "too_big":
      if (/^Too (small|big)/.test(issue.message)) {
        const bound = `${issue.code === "too_small" ? "at least" : "at most"} ${String(issue.code === "too_small" ? issue.minimum : issue.maximum)}`;
        const what = issue.origin === "array" ? `a list of ${bound} entries` : issue.origin === "string" ? `${bound} characters long` : bound;
        return [`${at}: must be ${what}${input === undefined ? "" : `, not ${describe(input)}`}`];
      }
      return [`${at}: ${issue.message}`];
    default:
      return [`${at}: ${issue.message}`];
  }
}

const article = (type: string) =>
  ({ object: "a map of keys", array: "a list", string: "a string", number: "a number", boolean: "true or false" })[type] ?? type;

/** A value as a message shows it: short, and never more than a line. */
function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a map";
  const text = JSON.stringify(v) ?? String(v);
  return `${typeof v === "string" ? "the string " : ""}${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

/** The keys the schema allows at `path` (a map's), or undefined where it cannot tell (a union). */
function knownKeys(path: ReadonlyArray<PropertyKey>): string[] | undefined {
  let s = unwrap(siteSchema);
  for (const p of path) {
    const def = s?._zod?.def as { type?: string; element?: unknown; shape?: Record<string, unknown>; valueType?: unknown } | undefined;
    if (typeof p === "number" && def?.type === "array") s = unwrap(def.element);
    else if (def?.type === "object" && typeof p === "string") s = unwrap(def.shape?.[p]);
    else if (def?.type === "record") s = unwrap(def.valueType);
    else return undefined;
  }
  const def = s?._zod?.def as { type?: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === "object" ? Object.keys(def.shape ?? {}) : undefined;
}

type Introspected = { _zod?: { def?: Record<string, unknown> } } | undefined;
/** Past the wrappers (default, optional, a pipe…) to the schema that holds the shape. */
function unwrap(schema: unknown): Introspected {
  let s = schema as Introspected;
  for (let i = 0; i < 16; i++) {
    const def = s?._zod?.def;
    if (!def) return s;
    if (["default", "optional", "nullable", "prefault", "readonly", "catch", "nonoptional"].includes(def.type as string)) s = def.innerType as Introspected;
    else if (def.type === "pipe") s = def.in as Introspected;
    else return s;
  }
  return s;
}

/** `nodes[1].host` style, the way the key is written in the stack file. */
export function keyPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), "");
}

/**
 * Validates a raw site config and returns it with defaults filled in, or throws SiteConfigError
 * listing every problem. `homedir` expands a `~/` storage root (localhost storage nodes only).
 */
export function parseSite(raw: unknown, env: { homedir: string }): Site {
  const result = siteSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    throw new SiteConfigError(result.error.issues.flatMap((i) => issueProblems(i)));
  }
  const site = result.data;
  const problems = siteProblems(site, env.homedir);
  if (problems.length > 0) throw new SiteConfigError(problems);
  if (!site.storage.root.startsWith("~/")) return checked(site);
  const root = `${env.homedir.replace(/\/+$/, "")}${site.storage.root.slice(1)}`;
  const problem = rootProblem(root);
  if (problem) throw new SiteConfigError([`storage.root: ${site.storage.root} is ${root}, which ${problem}`]);
  return checked({ ...site, storage: { ...site.storage, root } });
}

/** The checks that need the final (expanded) root. */
function checked(site: Site): Site {
  const problems = lengthProblems(site.storage);
  if (problems.length > 0) throw new SiteConfigError(problems);
  return site;
}

function siteProblems(site: Site, homedir: string): string[] {
  const problems: string[] = [];
  const add: Add = (key, message) => problems.push(`${key}: ${message}`);
  checkNodes(site, add);
  // Rules compare paths with the storage tree as the node sees it: a ~/ root expanded.
  const root = site.storage.root.startsWith("~/") ? `${homedir.replace(/\/+$/, "")}${site.storage.root.slice(1)}` : site.storage.root;
  for (const concern of CONCERNS) concern.check(site, add, { root, sections: SECTIONS });
  checkPorts(site, add);
  return problems;
}

function checkNodes(site: Site, add: Add): void {
  const names = new Map<string, number>();
  const hosts = new Map<string, number>();
  site.nodes.forEach((node, i) => {
    const at = `nodes[${i}]`;
    const name = node.name.toLowerCase();
    if (names.has(name)) add(`${at}.name`, `"${node.name}" is already the name of nodes[${names.get(name)}] (names compare case-insensitively); rename one`);
    else names.set(name, i);
    const host = canonicalHost(node.host);
    if (hosts.has(host))
      add(`${at}.host`, `"${node.host}" is the same machine as the host of nodes[${hosts.get(host)}]; one machine is one node, give it all its roles`);
    else hosts.set(host, i);
    const dup = node.roles.find((r, j) => node.roles.indexOf(r) !== j);
    if (dup) add(`${at}.roles`, `lists "${dup}" twice`);
    if (!isLocal(node) && !node.hostKey && !node.insecureSkipHostKeyCheck) {
      add(
        `${at}.hostKey`,
        "is required for an SSH node: set it to the node's host public key (ssh-keyscan -t ed25519 HOST), or set insecureSkipHostKeyCheck: true to opt out",
      );
    }
    if (node.hostKey && node.insecureSkipHostKeyCheck) {
      add(`${at}.insecureSkipHostKeyCheck`, "contradicts hostKey; keep hostKey and remove insecureSkipHostKeyCheck");
    }
  });
  const storage = site.nodes.filter((n) => n.roles.includes("storage"));
  if (storage.length === 0) add("nodes", "no node has the storage role; give exactly one node roles: [storage, …]");
  if (storage.length > 1) add("nodes", `${storage.map((n) => n.name).join(" and ")} both have the storage role; a site has exactly one storage node`);
  site.nodes.forEach((node, i) => {
    for (const role of ["smb", "nfs-server"] as const) {
      if (node.roles.includes(role) && !node.roles.includes("storage")) {
        add(`nodes[${i}].roles`, `"${role}" serves the storage node's files, so it must be on the storage node; move it there`);
      }
    }
  });
}
