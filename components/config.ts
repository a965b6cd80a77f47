import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";

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

/** Paths a storage root must never be, or be inside (the `true` ones). */
const SYSTEM_PATHS: ReadonlyArray<[string, boolean]> = [
  ["/", false], ["/bin", true], ["/boot", true], ["/dev", true], ["/etc", true],
  ["/home", false], ["/lib", true], ["/lib32", true], ["/lib64", true], ["/media", false],
  ["/mnt", false], ["/opt", false], ["/proc", true], ["/root", false], ["/run", true],
  ["/sbin", true], ["/srv", false], ["/sys", true], ["/tmp", false], ["/usr", true],
  ["/var", false], ["/var/lib", false], ["/var/lib/docker", true], ["/var/lib/containerd", true],
  ["/var/log", true], ["/var/tmp", false], ["/vol", false],
];

// A folder name: letters, digits, space and . _ @ + , = -; not starting with "-" (it would
// read as an option) nor a space, and never "." or "..".
const SEGMENT = /^[\p{L}\p{N}_.@+,=][\p{L}\p{N} _.@+,=-]*$/u;

function pathProblem(value: string, absolute: boolean): string | undefined {
  if (value.length === 0) return "must not be empty";
  if (value.length > 1024) return "is longer than 1024 characters";
  if (/[\u0000-\u001f\u007f]/.test(value)) return "contains a control character";
  if (absolute && !value.startsWith("/")) return "must be an absolute path (start with /)";
  if (!absolute && value.startsWith("/")) return "must be relative to storage.root (no leading /)";
  if (value.includes("//")) return "must not contain //";
  if (absolute && value === "/") return undefined;
  if (value.length > 1 && value.endsWith("/")) return "must not end with /";
  const segments = value.split("/").filter((_, i) => !(absolute && i === 0));
  for (const segment of segments) {
    if (segment === "." || segment === "..") return `must not contain a "${segment}" segment`;
    if (!SEGMENT.test(segment)) {
      return `has the folder name "${segment}": use letters, digits, space and . _ @ + , = - (not first: - or space); no shell characters`;
    }
  }
  return undefined;
}

/** The storage root: absolute (or ~/… , checked against the node later), never a system path. */
function rootProblem(root: string): string | undefined {
  const path = root.startsWith("~/") ? root.slice(1) : root;
  const problem = pathProblem(path, true);
  if (problem) return problem;
  if (root.startsWith("~/")) return undefined;
  const hit = SYSTEM_PATHS.find(([p, subtree]) => root === p || (subtree && root.startsWith(`${p}/`)));
  return hit
    ? `"${root}" is ${root === hit[0] ? "" : "inside "}the system path ${hit[0]}; choose a folder of its own such as /srv/modelshare or /vol/service/cw`
    : undefined;
}

const subPath = (what: string) =>
  z.string().superRefine((v, ctx) => {
    const problem = pathProblem(v, false);
    if (problem) ctx.addIssue({ code: "custom", message: `${problem}` });
  }).describe(what);

const folderName = (what: string) =>
  z.string().superRefine((v, ctx) => {
    const problem = pathProblem(v, false);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
    else if (v.includes("/")) ctx.addIssue({ code: "custom", message: "must be one folder name, without /" });
  }).describe(what);

const mode = (what: string) =>
  z.string({ error: "must be a quoted octal string such as \"0775\" (YAML reads an unquoted 0775 as a number)" })
    .regex(/^[0-7]{3,4}$/, "must be an octal mode such as \"0775\" or \"2775\"")
    .refine((m) => (parseInt(m, 8) & 0o700) === 0o700, "must give the owner rwx (7 in the owner digit); a folder without them cannot be used")
    .describe(what);

const hostName = z.string().superRefine((h, ctx) => {
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
  const ok = isIPv4(h) || isIPv6(h) ||
    (h.length <= 253 && !/^[0-9.]+$/.test(h) && h.split(".").every((l) => label.test(l)));
  if (!ok) ctx.addIssue({ code: "custom", message: `"${h}" is not a hostname or IP address` });
});

const HOST_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;

export const nodeSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/i,
    "must be 1-32 letters, digits or -, not starting or ending with -")
    .describe("Node name, unique in the site (case-insensitive); names its resources."),
  host: hostName.describe("Hostname or IP address to reach the node over SSH; `localhost` runs the node's commands locally, without SSH."),
  port: z.number().int().min(1).max(65535).default(22).describe("SSH port."),
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name").default("root")
    .describe("SSH user; needs root rights for system changes (or be root)."),
  sshKey: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, "must be the name of a config key").default("sshKey")
    .describe("Name of the secret config key (`pulumi config set --secret <name> < key`) that holds this node's SSH private key."),
  hostKey: z.string().regex(HOST_KEY, "must be the node's SSH host public key, e.g. \"ssh-ed25519 AAAA…\" (ssh-keyscan -t ed25519 HOST, without the host name)")
    .optional().describe("The node's SSH host public key; connections to any other key are refused."),
  insecureSkipHostKeyCheck: z.boolean().default(false)
    .describe("Opt out of hostKey: accept whatever key the host presents (exposes the SSH key to a man in the middle)."),
  roles: z.array(z.enum(ROLES, { error: `must be one of ${ROLES.join(", ")}` })).min(1, "must list at least one role")
    .describe("What the node is: storage (keeps the models), smb, nfs-server (both on the storage node), worker (GPU node)."),
});

const ownerSchema = z.union([
  z.literal("unmanaged"),
  z.strictObject({
    uid: z.number().int().min(0).max(4294967294).describe("Owner uid of the managed folders."),
    gid: z.number().int().min(0).max(4294967294).describe("Owner gid of the managed folders."),
    allowRoot: z.boolean().default(false).describe("Allow uid or gid 0 (root-owned shared folders are rarely what you want)."),
  }),
], { error: "must be {uid, gid} or \"unmanaged\"" });

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

export const isLocal = (node: Pick<SiteNode, "host">): boolean => node.host === "localhost";

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
  if (!site.storage.root.startsWith("~/")) return site;
  const root = `${env.homedir.replace(/\/+$/, "")}${site.storage.root.slice(1)}`;
  const problem = rootProblem(root);
  if (problem) throw new SiteConfigError([`storage.root: ${site.storage.root} is ${root}, which ${problem}`]);
  return { ...site, storage: { ...site.storage, root } };
}

function siteProblems(site: Site): string[] {
  const problems: string[] = [];
  const add = (key: string, message: string) => problems.push(`${key}: ${message}`);
  checkNodes(site, add);
  checkStorage(site, add);
  const mountProblem = pathProblem(site.nfs.mountPoint, true);
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
    const host = node.host.toLowerCase();
    if (hosts.has(host)) add(`${at}.host`, `"${node.host}" is already the host of nodes[${hosts.get(host)}]; one machine is one node, give it all its roles`);
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

  const lower = s.outputs.map((o) => o.toLowerCase());
  lower.forEach((o, i) => lower.indexOf(o) !== i && add(`storage.outputs[${i}]`, `"${s.outputs[i]}" is listed twice (Windows clients compare names case-insensitively)`));
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
