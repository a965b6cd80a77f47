import { z } from "zod";
import { canonicalHost, hostKeyProblem, hostProblem, isLocalHost } from "./hostRules";
import { bytes, ownFolderProblem, PATH_MAX, pathProblem, smbFold, smbNameProblem } from "./pathRules";

/**
 * The site config: one schema, with every default and description in one place. index.ts reads
 * the stack's `modelshare:*` keys and hands them to `parseSite`, which rejects every bad value
 * (naming the key and the fix) before any resource exists, so no node is touched.
 */

// ComfyUI's model folder names (comfy/folder_paths.py). Some are aliases of one folder type:
// a site that lists both spellings would get two folders for one kind of model.
export const COMFYUI_CATEGORIES = [
  "audio_encoders", "checkpoints", "classifiers", "clip", "clip_vision", "configs", "controlnet",
  "diffusers", "diffusion_models", "embeddings", "gligen", "hypernetworks",
  "latent_upscale_models", "loras", "model_patches", "photomaker", "style_models",
  "t2i_adapter", "text_encoders", "unet", "upscale_models", "vae", "vae_approx",
] as const;
export const CATEGORY_ALIASES: Readonly<Record<string, string>> = {
  clip: "text_encoders",
  unet: "diffusion_models",
  t2i_adapter: "controlnet",
};
export const DEFAULT_CATEGORIES = [
  "checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip",
  "diffusion_models",
];

export const ROLES = ["storage", "smb", "nfs-server", "worker"] as const;

/** The stack's `modelshare:` sections; any other key is a node's SSH key (or a mistake). */
export const SECTIONS = ["nodes", "storage", "smb", "nfs", "services"] as const;

/** The storage root: absolute (or ~/… , checked once expanded), never a system path. */
function rootProblem(root: string): string | undefined {
  if (root.startsWith("~/")) return pathProblem(root.slice(1), true);
  return ownFolderProblem(root, "/srv/modelshare or /vol/service/cw");
}

// Relative folders are what SMB clients see: they must also be names Windows can open.
const subPath = (what: string) =>
  z.string().superRefine((v, ctx) => {
    const problem = pathProblem(v, false) ?? smbNameProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }).describe(what);

const folderName = (what: string) =>
  z.string().superRefine((v, ctx) => {
    const problem = pathProblem(v, false) ?? smbNameProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
    else if (v.includes("/")) ctx.addIssue({ code: "custom", message: "must be one folder name, without /" });
  }).describe(what);

const mode = (what: string) =>
  z.string({ error: "must be a quoted octal string such as \"0775\" (YAML reads an unquoted 0775 as a number)" })
    .regex(/^[0-7]{3,4}$/, "must be an octal mode such as \"0775\" or \"2775\"")
    .refine((m) => (parseInt(m, 8) & 0o700) === 0o700, "must give the owner rwx (7 in the owner digit); a folder without them cannot be used")
    .describe(what);

const hostName = z.string().superRefine((h, ctx) => {
  const problem = hostProblem(h);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const nodeSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/i,
    "must be 1-32 letters, digits or -, not starting or ending with -")
    .describe("Node name, unique in the site (case-insensitive); names its resources."),
  host: hostName.describe("Hostname or IP address to reach the node over SSH; `localhost` (or 127.x, ::1) runs the node's commands locally, without SSH."),
  port: z.number().int().min(1).max(65535).default(22).describe("SSH port."),
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

const id = (what: string) => z.number().int().min(0).max(4294967294).describe(what);

/** The message for an owner that is neither {uid, gid} nor "unmanaged", saying what to write. */
function ownerMessage(input: unknown): string {
  const example = "write owner: { uid: 1000, gid: 1000 } or owner: unmanaged";
  if (typeof input !== "object" || input === null || Array.isArray(input)) return `must be {uid, gid} or "unmanaged"; ${example}`;
  const o = input as Record<string, unknown>;
  for (const k of ["uid", "gid"]) {
    if (o[k] === undefined) return `${k} is missing; ${example}`;
    if (typeof o[k] === "string") return `${k} is the text "${String(o[k])}"; write a number without quotes, e.g. ${k}: ${/^\d+$/.test(String(o[k])) ? String(o[k]) : 1000}`;
  }
  return `must be {uid, gid} (whole numbers from 0 to 4294967294, and allowRoot) or "unmanaged"; ${example}`;
}

const ownerSchema = z.union([
  z.literal("unmanaged"),
  z.strictObject({
    uid: id("Owner uid of the managed folders."),
    gid: id("Owner gid of the managed folders."),
    allowRoot: z.boolean().default(false).describe("Allow uid or gid 0: steps inside the tree then run as root (root-owned shared folders are rarely what you want)."),
  }),
], { error: (issue) => ownerMessage(issue.input) });

export const storageSchema = z.strictObject({
  root: z.string().superRefine((v, ctx) => {
    const problem = rootProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }).describe("Absolute folder holding everything (the seeds: /vol/service/cw). `~/…` is allowed when the storage node is localhost. Its parent must exist."),
  models: subPath("Model store, relative to root: one real folder per category.").default("storage-models/models"),
  user: subPath("User area, relative to root: output/<Service>/, input/, workflows/.").default("storage-user"),
  categories: z.array(z.string()).min(1, "must list at least one category").default(DEFAULT_CATEGORIES)
    .describe("Model categories (ComfyUI folder names); one folder each in the model store and one link each in every links folder."),
  links: z.array(subPath("links folder")).default(["storage-user/models-upload"])
    .describe("Links folders, relative to root: each holds one link per category into the model store (e.g. storage-user/models and/or storage-user/models-upload)."),
  outputs: z.array(folderName("output folder")).default(["ComfyUI", "Fooocus", "Forge"])
    .describe("One folder per service under <user>/output/."),
  projects: subPath("Per-project folders, relative to root.").default("projects"),
  mediaCache: subPath("Media cache folder, relative to root.").default("media_cache"),
  ollamaModels: subPath("Ollama's models folder (OLLAMA_MODELS), relative to root.").default("storage-models/ollama"),
  comfyuiCustomNodes: subPath("ComfyUI custom_nodes folder, relative to root.").default("storage-models/comfyui/custom_nodes"),
  owner: ownerSchema.default({ uid: 1000, gid: 1000, allowRoot: false })
    .describe("Owner of every managed folder: {uid, gid} (default 1000:1000), or \"unmanaged\" to leave ownership as the running user makes it (the dev stack)."),
  modes: z.strictObject({
    models: mode("Mode of the model-store folders.").default("0775"),
    user: mode("Mode of the user-area, project and cache folders.").default("0775"),
  }).default({ models: "0775", user: "0775" }).describe("Folder modes, as quoted octal strings."),
  minFreeGB: z.number().min(0).max(1_000_000).default(50)
    .describe("Deploy fails, with the numbers, if the filesystem holding root has less free space (GB = 10^9 bytes)."),
});

const notYet = (what: string) =>
  z.boolean().default(false).refine((on) => !on, `${what} is not built in this version of modelshare yet; keep it false`);

export const smbSchema = z.strictObject({
  enabled: notYet("the SMB share").describe("Serve the storage root over SMB."),
  share: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, _ . -").default("ki_Daten").describe("SMB share name."),
}).default({ enabled: false, share: "ki_Daten" });

export const nfsSchema = z.strictObject({
  enabled: notYet("the NFS export").describe("Export the storage root over NFS to the workers."),
  server: z.enum(["kernel", "ganesha"]).default("kernel").describe("NFS server implementation."),
  mountPoint: z.string().default("/mnt/modelshare").describe("Where workers mount the storage root."),
}).default({ enabled: false, server: "kernel", mountPoint: "/mnt/modelshare" });

const serviceSchema = z.strictObject({
  enabled: notYet("this service").describe("Run the service's container on its nodes."),
  nodes: z.array(z.string()).default([]).describe("Worker node names that run it."),
}).default({ enabled: false, nodes: [] });

export const servicesSchema = z.strictObject({
  comfyui: serviceSchema, fooocus: serviceSchema, forge: serviceSchema, ollama: serviceSchema,
}).default({
  comfyui: { enabled: false, nodes: [] }, fooocus: { enabled: false, nodes: [] },
  forge: { enabled: false, nodes: [] }, ollama: { enabled: false, nodes: [] },
});

export const siteSchema = z.strictObject({
  nodes: z.array(nodeSchema).min(1, "must list at least one node"),
  storage: storageSchema,
  smb: smbSchema,
  nfs: nfsSchema,
  services: servicesSchema,
});

export type RawSite = z.input<typeof siteSchema>;
export type Site = z.output<typeof siteSchema>;
export type SiteNode = Site["nodes"][number];
export type Storage = Site["storage"];

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

const inside = (a: string, b: string): boolean => a === b || a.startsWith(`${b}/`);

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
  const problems = siteProblems(site);
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

function siteProblems(site: Site): string[] {
  const problems: string[] = [];
  const add = (key: string, message: string) => problems.push(`${key}: ${message}`);
  checkNodes(site, add);
  checkStorage(site, add);
  const mountProblem = ownFolderProblem(site.nfs.mountPoint, "/mnt/modelshare");
  if (mountProblem) add("nfs.mountPoint", mountProblem);
  for (const [service, cfg] of Object.entries(site.services)) {
    cfg.nodes.forEach((name, i) => {
      const node = site.nodes.find((n) => n.name.toLowerCase() === name.toLowerCase());
      if (!node) add(`services.${service}.nodes[${i}]`, `no node is named "${name}"`);
      else if (!node.roles.includes("worker")) add(`services.${service}.nodes[${i}]`, `node "${name}" has no worker role`);
    });
  }
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

/** Every folder the site makes, relative to the root, with the key that makes it. */
function managedFolders(s: Storage): Array<[key: string, rel: string]> {
  const out: Array<[string, string]> = [["storage.models", s.models]];
  s.categories.forEach((c, i) => out.push([`storage.categories[${i}]`, `${s.models}/${c}`]));
  out.push(["storage.user", `${s.user}/output`], ["storage.user", `${s.user}/input`], ["storage.user", `${s.user}/workflows`]);
  s.outputs.forEach((o, i) => out.push([`storage.outputs[${i}]`, `${s.user}/output/${o}`]));
  out.push(["storage.projects", s.projects], ["storage.mediaCache", s.mediaCache],
    ["storage.ollamaModels", s.ollamaModels], ["storage.comfyuiCustomNodes", s.comfyuiCustomNodes]);
  // A link is briefly made as <name>.modelshare-new, then renamed into place.
  s.links.forEach((l, i) => s.categories.forEach((c) => out.push([`storage.links[${i}]`, `${l}/${c}.modelshare-new`])));
  return out;
}

/**
 * Windows and macOS clients compare names case-insensitively (and macOS in one Unicode form):
 * two folders whose names differ only so would be one folder to them.
 */
function checkSpellings(s: Storage, add: Add): void {
  const seen = new Map<string, [string, string]>();
  for (const [key, rel] of managedFolders(s)) {
    const parts = rel.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join("/");
      const other = seen.get(smbFold(prefix));
      if (!other) seen.set(smbFold(prefix), [prefix, key]);
      else if (other[0] !== prefix) {
        add(key, `"${prefix}" and "${other[0]}" (from ${other[1]}) differ only in case or Unicode form, and Windows and macOS clients compare names case-insensitively: they would see one folder; use one spelling`);
        seen.set(smbFold(prefix), [prefix, key]);
      }
    }
  }
}

/** Each managed folder's whole path fits in PATH_MAX bytes (checked with the final root). */
function lengthProblems(s: Storage): string[] {
  const problems = new Map<string, string>();
  for (const [key, rel] of managedFolders(s)) {
    const path = `${s.root}/${rel}`;
    if (bytes(path) > PATH_MAX && !problems.has(key)) {
      problems.set(key, `${key}: makes ${path.slice(0, 40)}… ${bytes(path)} bytes long, and Linux paths hold at most ${PATH_MAX}; shorten storage.root or ${key}`);
    }
  }
  return [...problems.values()];
}

function checkStorage(site: Site, add: Add): void {
  const s = site.storage;
  const storageNode = site.nodes.find((n) => n.roles.includes("storage"));
  if (s.root.startsWith("~/") && storageNode && !isLocal(storageNode)) {
    add("storage.root", "may start with ~/ only when the storage node's host is localhost; give an absolute path");
  }

  const seen = new Map<string, number>();
  s.categories.forEach((c, i) => {
    if (!(COMFYUI_CATEGORIES as readonly string[]).includes(c)) {
      add(`storage.categories[${i}]`, `"${c}" is not a ComfyUI model folder; use one of ${COMFYUI_CATEGORIES.join(", ")}`);
      return;
    }
    const kind = CATEGORY_ALIASES[c] ?? c;
    const j = seen.get(kind);
    if (j !== undefined) add(`storage.categories[${i}]`, `"${c}" is the same kind of model folder as storage.categories[${j}] ("${s.categories[j]}"); keep one`);
    else seen.set(kind, i);
  });

  checkSpellings(s, add);
  s.links.forEach((l, i) => s.links.indexOf(l) !== i && add(`storage.links[${i}]`, `"${l}" is listed twice`));

  // Folders that must be disjoint: none equal to or inside another.
  const user = s.user;
  const disjoint: Array<[string, string]> = [
    ["storage.models", s.models], ["storage.user", user], ["storage.projects", s.projects],
    ["storage.mediaCache", s.mediaCache], ["storage.ollamaModels", s.ollamaModels],
    ["storage.comfyuiCustomNodes", s.comfyuiCustomNodes],
  ];
  for (let i = 0; i < disjoint.length; i++) {
    for (let j = i + 1; j < disjoint.length; j++) {
      const [ka, a] = disjoint[i]; const [kb, b] = disjoint[j];
      if (inside(a, b) || inside(b, a)) add(kb, `"${b}" overlaps ${ka} ("${a}"); each must be a folder of its own, neither inside the other`);
    }
  }
  const serviceFolders = [`${user}/output`, `${user}/input`, `${user}/workflows`];
  s.links.forEach((l, i) => {
    const key = `storage.links[${i}]`;
    for (const [k, p] of disjoint) {
      if (k === "storage.user") {
        if (l === p) add(key, `is the user area itself; use a folder inside it such as ${user}/models-upload`);
        continue;
      }
      if (inside(l, p)) add(key, `"${l}" is inside ${k} ("${p}")${k === "storage.models" ? ", the links' own target" : ""}; links would point into their own tree`);
      else if (inside(p, l)) add(key, `"${l}" contains ${k} ("${p}"); choose a links folder that holds only links`);
    }
    for (const f of serviceFolders) {
      if (inside(l, f) || inside(f, l)) add(key, `"${l}" overlaps ${f}, where services read and write; choose another folder`);
    }
    s.links.forEach((other, j) => {
      if (j !== i && l !== other && inside(l, other)) add(key, `"${l}" is inside storage.links[${j}] ("${other}")`);
    });
  });

  if (typeof s.owner === "object" && !s.owner.allowRoot && (s.owner.uid === 0 || s.owner.gid === 0)) {
    add("storage.owner", "uid or gid 0 makes the shared folders root's; use the users' uid/gid, or set storage.owner.allowRoot: true if you mean it");
  }
}
