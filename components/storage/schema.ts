import { z } from "zod";
import { bytes, ownFolderProblem, PATH_MAX, pathProblem, smbFold, smbNameProblem } from "../pathRules";
import type { Add } from "../concern";

/**
 * The `modelshare:storage` section: every key with its default and description, and the rules
 * that concern this section alone (config.ts composes the sections and checks across them).
 */

// ComfyUI's model folder names (comfy/folder_paths.py). Some are aliases of one folder type:
// a site that lists both spellings would get two folders for one kind of model.
export const COMFYUI_CATEGORIES = [
  "audio_encoders",
  "checkpoints",
  "classifiers",
  "clip",
  "clip_vision",
  "configs",
  "controlnet",
  "diffusers",
  "diffusion_models",
  "embeddings",
  "gligen",
  "hypernetworks",
  "latent_upscale_models",
  "loras",
  "model_patches",
  "photomaker",
  "style_models",
  "t2i_adapter",
  "text_encoders",
  "unet",
  "upscale_models",
  "vae",
  "vae_approx",
] as const;
export const CATEGORY_ALIASES: Readonly<Record<string, string>> = {
  clip: "text_encoders",
  unet: "diffusion_models",
  t2i_adapter: "controlnet",
};
export const DEFAULT_CATEGORIES = ["checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip", "diffusion_models"];

/** The storage root: absolute (or ~/… , checked once expanded), never a system path. */
export function rootProblem(root: string): string | undefined {
  if (root.startsWith("~/")) return pathProblem(root.slice(1), true);
  return ownFolderProblem(root, "/srv/modelshare or /vol/service/cw");
}

// Relative folders are what SMB clients see: they must also be names Windows can open.
const subPath = (what: string) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const problem = pathProblem(v, false) ?? smbNameProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe(what);

const folderName = (what: string) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const problem = pathProblem(v, false) ?? smbNameProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
      else if (v.includes("/")) ctx.addIssue({ code: "custom", message: "must be one folder name, without /" });
    })
    .describe(what);

const mode = (what: string) =>
  z
    .string({ error: 'must be a quoted octal string such as "0775" (YAML reads an unquoted 0775 as a number)' })
    .regex(/^[0-7]{3,4}$/, 'must be an octal mode such as "0775" or "2775"')
    .refine((m) => (parseInt(m, 8) & 0o700) === 0o700, "must give the owner rwx (7 in the owner digit); a folder without them cannot be used")
    .describe(what);

const id = (what: string) => z.number().int().min(0).max(4294967294).describe(what);

/** The message for an owner that is neither {uid, gid} nor "unmanaged", saying what to write. */
function ownerMessage(input: unknown): string {
  const example = "write owner: { uid: 1000, gid: 1000 } or owner: unmanaged";
  if (typeof input !== "object" || input === null || Array.isArray(input)) return `must be {uid, gid} or "unmanaged"; ${example}`;
  const o = input as Record<string, unknown>;
  for (const k of ["uid", "gid"]) {
    if (o[k] === undefined) return `${k} is missing; ${example}`;
    if (typeof o[k] === "string")
      return `${k} is the text "${String(o[k])}"; write a number without quotes, e.g. ${k}: ${/^\d+$/.test(String(o[k])) ? String(o[k]) : 1000}`;
  }
  return `must be {uid, gid} (whole numbers from 0 to 4294967294, and allowRoot) or "unmanaged"; ${example}`;
}

const ownerSchema = z.union(
  [
    z.literal("unmanaged"),
    z.strictObject({
      uid: id("Owner uid of the managed folders."),
      gid: id("Owner gid of the managed folders."),
      allowRoot: z
        .boolean()
        .default(false)
        .describe("Allow uid or gid 0: steps inside the tree then run as root (root-owned shared folders are rarely what you want)."),
    }),
  ],
  { error: (issue) => ownerMessage(issue.input) },
);

export const storageSchema = z.strictObject({
  root: z
    .string()
    .superRefine((v, ctx) => {
      const problem = rootProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe("Absolute folder holding everything (the seeds: /vol/service/cw). `~/…` is allowed when the storage node is localhost. Its parent must exist."),
  models: subPath("Model store, relative to root: one real folder per category.").default("storage-models/models"),
  user: subPath("User area, relative to root: output/<Service>/, input/, workflows/.").default("storage-user"),
  categories: z
    .array(z.string())
    .min(1, "must list at least one category")
    .default(DEFAULT_CATEGORIES)
    .describe("Model categories (ComfyUI folder names); one folder each in the model store and one link each in every links folder."),
  links: z
    .array(subPath("links folder"))
    .default(["storage-user/models-upload"])
    .describe(
      "Links folders, relative to root: each holds one link per category into the model store (e.g. storage-user/models and/or storage-user/models-upload).",
    ),
  outputs: z.array(folderName("output folder")).default(["ComfyUI", "Fooocus", "Forge"]).describe("One folder per service under <user>/output/."),
  projects: subPath("Per-project folders, relative to root.").default("projects"),
  mediaCache: subPath("Media cache folder, relative to root.").default("media_cache"),
  ollamaModels: subPath("Ollama's models folder (OLLAMA_MODELS), relative to root.").default("storage-models/ollama"),
  comfyuiCustomNodes: subPath("ComfyUI custom_nodes folder, relative to root.").default("storage-models/comfyui/custom_nodes"),
  owner: ownerSchema
    .default({ uid: 1000, gid: 1000, allowRoot: false })
    .describe('Owner of every managed folder: {uid, gid} (default 1000:1000), or "unmanaged" to leave ownership as the running user makes it (the dev stack).'),
  modes: z
    .strictObject({
      models: mode("Mode of the model-store folders.").default("0775"),
      user: mode("Mode of the user-area, project and cache folders.").default("0775"),
    })
    .default({ models: "0775", user: "0775" })
    .describe("Folder modes, as quoted octal strings."),
  intake: z
    .enum(["direct", "staging"])
    .default("direct")
    .describe(
      "How uploads reach the model store. direct: the links folders lead into the store, and check reports what is wrong with a file. staging: they lead to <user>/models-staging/<category>; every 30 s the intake service copies each settled upload that validates into the store (which only its own account, modelshare-intake, can write) and moves one that does not to <user>/models-rejected/<category>, with <name>.reason.txt beside it. Needs a managed storage.owner and the catalog.",
    ),
  minFreeGB: z
    .number()
    .min(0)
    .max(1_000_000)
    .default(50)
    .describe("Deploy fails, with the numbers, if the filesystem holding root has less free space (GB = 10^9 bytes)."),
});

export type Storage = z.output<typeof storageSchema>;

/** `modelshare:projects`: project ids, each a folder under storage.projects. */
export const projectsSchema = z
  .array(folderName("project id (its folder's name)"))
  .default([])
  .superRefine((ids, ctx) => {
    const seen = new Map<string, number>();
    ids.forEach((id, i) => {
      const j = seen.get(smbFold(id));
      if (j !== undefined)
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: `"${id}" is the same folder as projects[${j}] ("${ids[j]}") to Windows and macOS clients (names compare case-insensitively); keep one`,
        });
      else seen.set(smbFold(id), i);
    });
  })
  .describe(
    "Project ids: each gets seed 003's folders (workflows, prompts, generated/, intermediate/, final) and a metadata.json under storage.projects. A project dropped from the list stays on disk.",
  );
/** The intake's folders (storage.intake: staging), relative to root: one folder per category each. */
export const stagingRel = (s: Pick<Storage, "user">) => `${s.user}/models-staging`;
export const rejectedRel = (s: Pick<Storage, "user">) => `${s.user}/models-rejected`;

const inside = (a: string, b: string): boolean => a === b || a.startsWith(`${b}/`);

/** Every folder the site makes, relative to the root, with the key that makes it. */
function managedFolders(s: Storage): Array<[key: string, rel: string]> {
  const out: Array<[string, string]> = [["storage.models", s.models]];
  s.categories.forEach((c, i) => out.push([`storage.categories[${i}]`, `${s.models}/${c}`]));
  out.push(["storage.user", `${s.user}/output`], ["storage.user", `${s.user}/input`], ["storage.user", `${s.user}/workflows`]);
  s.outputs.forEach((o, i) => out.push([`storage.outputs[${i}]`, `${s.user}/output/${o}`]));
  out.push(
    ["storage.projects", s.projects],
    ["storage.mediaCache", s.mediaCache],
    ["storage.ollamaModels", s.ollamaModels],
    ["storage.comfyuiCustomNodes", s.comfyuiCustomNodes],
  );
  if (s.intake === "staging")
    s.categories.forEach((c, i) => out.push([`storage.categories[${i}]`, `${stagingRel(s)}/${c}`], [`storage.categories[${i}]`, `${rejectedRel(s)}/${c}`]));
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
        add(
          key,
          `"${prefix}" and "${other[0]}" (from ${other[1]}) differ only in case or Unicode form, and Windows and macOS clients compare names case-insensitively: they would see one folder; use one spelling`,
        );
        seen.set(smbFold(prefix), [prefix, key]);
      }
    }
  }
}

/** Each managed folder's whole path fits in PATH_MAX bytes (checked with the final root). */
export function lengthProblems(s: Storage): string[] {
  const problems = new Map<string, string>();
  for (const [key, rel] of managedFolders(s)) {
    const path = `${s.root}/${rel}`;
    if (bytes(path) > PATH_MAX && !problems.has(key)) {
      problems.set(
        key,
        `${key}: makes ${path.slice(0, 40)}… ${bytes(path)} bytes long, and Linux paths hold at most ${PATH_MAX}; shorten storage.root or ${key}`,
      );
    }
  }
  return [...problems.values()];
}

/** The storage section's own rules, each problem named by its key. */
export function checkStorageSection(s: Storage, add: Add): void {
  const seen = new Map<string, number>();
  s.categories.forEach((c, i) => {
    if (!(COMFYUI_CATEGORIES as readonly string[]).includes(c)) {
      add(`storage.categories[${i}]`, `"${c}" is not a ComfyUI model folder; use one of ${COMFYUI_CATEGORIES.join(", ")}`);
      return;
    }
    const kind = CATEGORY_ALIASES[c] ?? c;
    const j = seen.get(kind);
    if (j !== undefined)
      add(`storage.categories[${i}]`, `"${c}" is the same kind of model folder as storage.categories[${j}] ("${s.categories[j]}"); keep one`);
    else seen.set(kind, i);
  });

  checkSpellings(s, add);
  s.links.forEach((l, i) => s.links.indexOf(l) !== i && add(`storage.links[${i}]`, `"${l}" is listed twice`));

  // Folders that must be disjoint: none equal to or inside another.
  const user = s.user;
  const disjoint: Array<[string, string]> = [
    ["storage.models", s.models],
    ["storage.user", user],
    ["storage.projects", s.projects],
    ["storage.mediaCache", s.mediaCache],
    ["storage.ollamaModels", s.ollamaModels],
    ["storage.comfyuiCustomNodes", s.comfyuiCustomNodes],
  ];
  for (let i = 0; i < disjoint.length; i++) {
    for (let j = i + 1; j < disjoint.length; j++) {
      const [ka, a] = disjoint[i];
      const [kb, b] = disjoint[j];
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
      if (inside(l, p))
        add(key, `"${l}" is inside ${k} ("${p}")${k === "storage.models" ? ", the links' own target" : ""}; links would point into their own tree`);
      else if (inside(p, l)) add(key, `"${l}" contains ${k} ("${p}"); choose a links folder that holds only links`);
    }
    for (const f of s.intake === "staging" ? [stagingRel(s), rejectedRel(s)] : []) {
      if (inside(l, f) || inside(f, l)) add(key, `"${l}" overlaps ${f}, the intake's folder (storage.intake is staging); choose another folder`);
    }
    for (const f of serviceFolders) {
      if (inside(l, f) || inside(f, l)) add(key, `"${l}" overlaps ${f}, where services read and write; choose another folder`);
    }
    s.links.forEach((other, j) => {
      if (j !== i && l !== other && inside(l, other)) add(key, `"${l}" is inside storage.links[${j}] ("${other}")`);
    });
  });

  if (s.intake === "staging" && s.owner === "unmanaged") {
    add(
      "storage.intake",
      "is staging, which gives the model store to an account of its own (modelshare-intake) so that uploaders cannot write it; that needs root on the storage node and a managed storage.owner ({ uid, gid }), or use intake: direct",
    );
  }
  if (typeof s.owner === "object" && !s.owner.allowRoot && (s.owner.uid === 0 || s.owner.gid === 0)) {
    add("storage.owner", "uid or gid 0 makes the shared folders root's; use the users' uid/gid, or set storage.owner.allowRoot: true if you mean it");
  }
}
