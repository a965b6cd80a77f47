import { z } from "zod";
import { canonicalHost, hostKeyProblem, hostProblem, isLocalHost } from "./node/hostRules";
import { checkNfsSection, nfsSchema } from "./nfs/schema";
import { checkInstallers, comfyuiSchema, ollamaSchema } from "./installers/schema";
import { checkPorts } from "./node/portRules";
import { checkServices } from "./services/rules";
import { servicesSchema } from "./services/schema";
import { checkSmbSection, smbSchema } from "./smb/schema";
import { checkStorageSection, lengthProblems, projectsSchema, rootProblem, storageSchema } from "./storage/schema";

export { CATEGORY_ALIASES, COMFYUI_CATEGORIES, DEFAULT_CATEGORIES, type Storage } from "./storage/schema";

/**
 * The site config: one schema, with every default and description in one place. index.ts reads
 * the stack's `modelshare:*` keys and hands them to `parseSite`, which rejects every bad value
 * (naming the key and the fix) before any resource exists, so no node is touched.
 */

export const ROLES = ["storage", "smb", "nfs-server", "worker"] as const;

/** The stack's `modelshare:` sections; any other key is a node's SSH key (or a mistake). */
export const SECTIONS = ["nodes", "storage", "smb", "nfs", "services", "projects", "ollama", "comfyui"] as const;

const hostName = z.string().superRefine((h, ctx) => {
  const problem = hostProblem(h);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const nodeSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/i,
    "must be 1-32 letters, digits or -, not starting or ending with -")
    .describe("Node name, unique in the site (case-insensitive); names its resources."),
  host: hostName.describe("Hostname or IP address to reach the node over SSH; `localhost` (or 127.x, ::1) runs the node's commands locally, without SSH. Never 0.0.0.0, ::, broadcast, multicast, link-local, a zone id or a shorthand such as 0x7f.1."),
  port: z.number().int().min(1).max(65535).default(22).describe("SSH port; not one Samba (137-139, 445), the NFS server (111, 2049) or a host Ollama (11434) holds on this node."),
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name").default("root")
    .describe("SSH user; needs root rights for system changes (or be root)."),
  sshKey: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, "must be the name of a config key")
    .superRefine((k, ctx) => {
      if ((SECTIONS as readonly string[]).includes(k)) {
        ctx.addIssue({ code: "custom", message: `"${k}" is the name of the modelshare:${k} section; name the key after the node instead, e.g. sshKey or sshKeyGpu1` });
      }
    })
    .default("sshKey")
    .describe("Name of the secret config key (`pulumi config set --secret <name> < key`) that holds this node's SSH private key."),
  hostKey: z.string().superRefine((k, ctx) => {
    const problem = hostKeyProblem(k);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }).optional().describe("The node's SSH host public key; connections to any other key are refused."),
  insecureSkipHostKeyCheck: z.boolean().default(false)
    .describe("Opt out of hostKey: accept whatever key the host presents (exposes the SSH key to a man in the middle)."),
  roles: z.array(z.enum(ROLES, { error: `must be one of ${ROLES.join(", ")}` })).min(1, "must list at least one role")
    .describe("What the node is: storage (keeps the models), smb, nfs-server (both on the storage node), worker (GPU node)."),
});

export const siteSchema = z.strictObject({
  nodes: z.array(nodeSchema).min(1, "must list at least one node"),
  storage: storageSchema,
  smb: smbSchema,
  nfs: nfsSchema,
  services: servicesSchema,
  projects: projectsSchema,
  ollama: ollamaSchema,
  comfyui: comfyuiSchema,
});

export type RawSite = z.input<typeof siteSchema>;
export type Site = z.output<typeof siteSchema>;
export type SiteNode = Site["nodes"][number];

export class SiteConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`modelshare: the site config is not valid; nothing was changed on any node:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "SiteConfigError";
  }
}

/** `nodes[1].host` style, the way the key is written in the stack file. */
export function keyPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), "");
}

export const isLocal = (node: Pick<SiteNode, "host">): boolean => isLocalHost(node.host);

/**
 * Validates a raw site config and returns it with defaults filled in, or throws SiteConfigError
 * listing every problem. `homedir` expands a `~/` storage root (localhost storage nodes only).
 */
export function parseSite(raw: unknown, env: { homedir: string }): Site {
  const result = siteSchema.safeParse(raw);
  if (!result.success) {
    throw new SiteConfigError(result.error.issues.map((i) => `${keyPath(i.path) || "(site)"}: ${i.message}`));
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
  const add = (key: string, message: string) => problems.push(`${key}: ${message}`);
  checkNodes(site, add);
  checkStorage(site, add);
  checkSmb(site, add);
  checkNfs(site, add);
  checkServices(site, add);
  checkPorts(site, add);
  // Checkouts are compared with the storage tree as the node sees it: a ~/ root expanded.
  const root = site.storage.root.startsWith("~/") ? `${homedir.replace(/\/+$/, "")}${site.storage.root.slice(1)}` : site.storage.root;
  checkInstallers({ ...site, storage: { ...site.storage, root } }, add);
  return problems;
}

type Add = (key: string, message: string) => void;

function checkNodes(site: Site, add: Add): void {
  const names = new Map<string, number>();
  const hosts = new Map<string, number>();
  site.nodes.forEach((node, i) => {
    const at = `nodes[${i}]`;
    const name = node.name.toLowerCase();
    if (names.has(name)) add(`${at}.name`, `"${node.name}" is already the name of nodes[${names.get(name)}] (names compare case-insensitively); rename one`);
    else names.set(name, i);
    const host = canonicalHost(node.host);
    if (hosts.has(host)) add(`${at}.host`, `"${node.host}" is the same machine as the host of nodes[${hosts.get(host)}]; one machine is one node, give it all its roles`);
    else hosts.set(host, i);
    const dup = node.roles.find((r, j) => node.roles.indexOf(r) !== j);
    if (dup) add(`${at}.roles`, `lists "${dup}" twice`);
    if (!isLocal(node) && !node.hostKey && !node.insecureSkipHostKeyCheck) {
      add(`${at}.hostKey`, "is required for an SSH node: set it to the node's host public key (ssh-keyscan -t ed25519 HOST), or set insecureSkipHostKeyCheck: true to opt out");
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

/** The nodes that mount the export: every worker but the storage node (which has the files). */
export const nfsWorkers = (site: Site): SiteNode[] =>
  site.nodes.filter((n) => n.roles.includes("worker") && !n.roles.includes("storage"));

function checkNfs(site: Site, add: Add): void {
  checkNfsSection(site.nfs, site.storage, add);
  if (!site.nfs.enabled) return;
  const server = site.nodes.find((n) => n.roles.includes("nfs-server"));
  if (!server) {
    add("nfs.enabled", "is true, but no node has the nfs-server role; add nfs-server to the storage node's roles");
    return;
  }
  const workers = nfsWorkers(site);
  if (workers.length > 0 && isLocal(server)) add("nfs.enabled", `the storage node's host is ${server.host}, which workers cannot reach; give it the address they use`);
  workers.forEach((w) => {
    if (isLocal(w)) add("nfs.enabled", `worker ${w.name}'s host is ${w.host}, which cannot be an export's client; give it its address on the network`);
  });
}

function checkSmb(site: Site, add: Add): void {
  const smb = site.smb;
  if (!smb.enabled) return;
  if (!site.nodes.some((n) => n.roles.includes("smb"))) add("smb.enabled", "is true, but no node has the smb role; add smb to the storage node's roles");
  checkSmbSection(smb, site.storage, add);
  // A password key is a config key of its own: not a section, not the token, not an SSH key.
  const sshKeys = new Set(site.nodes.filter((n) => !isLocal(n)).map((n) => n.sshKey));
  smb.users.forEach((u, i) => {
    const k = u.passwordKey;
    const example = `smbPassword${u.name.replace(/[^a-z0-9]/g, "").replace(/^./, (c) => c.toUpperCase())}`;
    if ((SECTIONS as readonly string[]).includes(k) || k === "convergeToken") add(`smb.users[${i}].passwordKey`, `"${k}" is a modelshare setting of its own; name the key after the user, e.g. ${example}`);
    else if (sshKeys.has(k)) add(`smb.users[${i}].passwordKey`, `"${k}" holds a node's SSH key; give the password a key of its own, e.g. ${example}`);
  });
}

function checkStorage(site: Site, add: Add): void {
  const s = site.storage;
  const storageNode = site.nodes.find((n) => n.roles.includes("storage"));
  if (s.root.startsWith("~/") && storageNode && !isLocal(storageNode)) {
    add("storage.root", "may start with ~/ only when the storage node's host is localhost; give an absolute path");
  }

  checkStorageSection(s, add);
}
