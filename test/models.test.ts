import { describe, expect, it } from "vitest";
import type { Site as SiteConfig } from "../components/config";
import { loadSite } from "../components/loadSite";
import { Site } from "../components/site";
import { models } from "../components/models/index";
import { renderModels } from "../components/models/program";
import { checkModels, modelsSchema, type Model } from "../components/models/schema";
import { localSite, localStorage } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";
import { declare } from "./harness/declare";
import { exitCode, formatText, parse, type ComponentCheck, type NodeCheck } from "../ops/check";
import { HOST_KEY, PRIVATE_KEY, storageNode } from "./fixtures/site";

/**
 * The `models` section: its schema, its rules (each naming the key and the fix), its plan, and
 * its rendered program (shellcheck-clean). The real runs are in models.run.test.ts.
 */
const SHA = "a".repeat(64);
const CATEGORIES = ["checkpoints", "loras"];
const ok = (more: Partial<Model> = {}): Model => ({
  category: "loras",
  file: "style.safetensors",
  url: "https://models.example/style.safetensors",
  sha256: SHA,
  ...more,
});

/** The problems the rules report for these models, as `key: message`. */
function problems(list: Model[]): string[] {
  const found: string[] = [];
  checkModels(list, CATEGORIES, (key, message) => found.push(`${key}: ${message}`));
  return found;
}

describe("the models section", () => {
  it("is [] by default, and keeps each model's four keys; an unknown key is refused", () => {
    expect(modelsSchema.parse(undefined)).toEqual([]);
    expect(modelsSchema.parse([ok()])).toEqual([ok()]);
    expect(modelsSchema.safeParse([{ ...ok(), size: 3 }]).success).toBe(false);
    expect(modelsSchema.safeParse([{ category: "loras", file: "x" }]).success).toBe(false);
    expect(modelsSchema.description).toMatch(/SHA-256/);
  });

  it("accepts well-formed models", () => {
    expect(problems([ok(), ok({ category: "checkpoints", url: "http://10.0.0.5:8080/m/x?y=1" })])).toEqual([]);
  });

  it.each([
    [
      "a category that is not the store's",
      ok({ category: "unet" }),
      "models[0].category",
      /"unet" is not a store category: use one of checkpoints, loras, or add it to storage.categories/,
    ],
    ["a file with a slash", ok({ file: "sub/x.safetensors" }), "models[0].file", /holds a "\/": give a plain file name/],
    ["the file ..", ok({ file: ".." }), "models[0].file", /is not a file name/],
    ["the file .", ok({ file: "." }), "models[0].file", /is not a file name/],
    ["a hidden file", ok({ file: ".x.safetensors" }), "models[0].file", /starts with "\.".*give a name without the leading dot/],
    ["an empty file", ok({ file: "" }), "models[0].file", /is empty/],
    ["a file with a newline", ok({ file: "a\nb" }), "models[0].file", /NUL or line break/],
    ["a file with a NUL", ok({ file: "a\0b" }), "models[0].file", /NUL or line break/],
    ["a file over 255 bytes", ok({ file: "é".repeat(128) }), "models[0].file", /256 bytes long, over the 255/],
    ["an ftp URL", ok({ url: "ftp://host/x" }), "models[0].url", /"ftp:" is not supported: give an http:\/\/ or https:\/\/ address/],
    ["a file URL", ok({ url: "file:///etc/passwd" }), "models[0].url", /"file:" is not supported/],
    ["no URL at all", ok({ url: "models/x" }), "models[0].url", /is not a URL/],
    ["a URL with credentials", ok({ url: "https://ada:s3cret@host/x" }), "models[0].url", /credentials .*not supported/],
    ["a short hash", ok({ sha256: "abc" }), "models[0].sha256", /"abc" is not a SHA-256: give its 64 hex digits/],
    ["a hash with non-hex digits", ok({ sha256: "g".repeat(64) }), "models[0].sha256", /is not a SHA-256/],
    ["an upper-case hash", ok({ sha256: "A".repeat(64) }), "models[0].sha256", /write it in lower case/],
  ] as const)("refuses %s, naming the key and the fix", (_what, m, key, says) => {
    const found = problems([ok({ file: "first.safetensors" }), m]).map((p) => p.replace("models[1]", "models[0]"));
    const hit = found.find((p) => p.startsWith(`${key}: `));
    expect(hit, JSON.stringify(found)).toBeDefined();
    expect(hit).toMatch(says);
  });

  it("never repeats a URL's password in a problem", () => {
    expect(problems([ok({ url: "https://ada:s3cret@host/x" })]).join("\n")).not.toContain("s3cret");
  });

  it("refuses two models at the same place, naming the second and the first", () => {
    expect(problems([ok(), ok({ category: "checkpoints" }), ok({ url: "https://elsewhere/x" })])).toEqual([
      "models[2].file: loras/style.safetensors is declared by models[0] already: a place holds one model; remove one of them",
    ]);
  });

  it("the concern's check takes the site's models and the store's categories", () => {
    const site = { ...localSite({ root: "/srv/m", categories: ["vae"] }), models: [ok()] } as SiteConfig;
    const found: string[] = [];
    models.check(site, (k, m) => found.push(`${k}: ${m}`), { root: "/srv/m", sections: [] });
    expect(found).toEqual(['models[0].category: "loras" is not a store category: use one of vae, or add it to storage.categories']);
  });
});

describe("the models plan", () => {
  const ctx = (site: SiteConfig) => ({ storageNode: site.nodes[0], base: () => site.storage.root, ready: () => ["here-layout"] });

  it("plans nothing when no model is declared", () => {
    const site = { ...localSite({ root: "/srv/m" }), models: [] } as SiteConfig;
    expect(models.plan(site, ctx(site))).toEqual([]);
  });

  it("plans one item on the storage node after its storage, naming the declared models, where each is and its hash", () => {
    const site = { ...localSite({ root: "/srv/m", categories: ["loras", "vae"] }), models: [ok(), ok({ category: "vae", file: "v.pt" })] } as SiteConfig;
    const [item, ...rest] = models.plan(site, ctx(site));
    expect(rest).toEqual([]);
    expect(item).toMatchObject({ kind: "models", type: "modelshare:models:DeclaredModels", name: "here-models", after: ["here-layout"] });
    expect(item.outputs).toEqual({
      declared: {
        "loras/style.safetensors": { path: "/srv/m/storage-models/models/loras/style.safetensors", sha256: ok().sha256 },
        "vae/v.pt": { path: "/srv/m/storage-models/models/vae/v.pt", sha256: ok().sha256 },
      },
    });
    expect(item.programs.map((p) => [p.name, p.removes, p.converges])).toEqual([["here-models-converge", true, true]]);
    expect(item.programs[0].text).toContain('models_fetch \'/srv/m/storage-models/models\' \'[{"category":"loras"');
  });
});

describe("the models program text", () => {
  // SC2016 (an info about `$` or a backtick inside single quotes) is what quoting them is for:
  // the URL below and the fetcher's source travel single-quoted; everything else must be clean.
  it("is shellcheck-clean, with a quote, a dollar and a backtick in a URL", () => {
    const s = localStorage({ root: "/srv/m", categories: ["loras"] });
    const text = renderModels([ok({ url: "https://h/it's/$HOME/`id`" })], s);
    expect(shellcheck([text], ["--exclude=SC2016"])).toBe("");
  });
});

describe("the declaredModels stack output", () => {
  it("maps each category/file to its path on the storage node and its SHA-256 (none without models)", async () => {
    const config = (list: Model[]) => ({
      "modelshare:nodes": JSON.stringify([{ ...storageNode(), hostKey: HOST_KEY, sshKey: "sshKey" }]),
      "modelshare:storage": JSON.stringify({ root: "/srv/m", categories: ["loras", "vae"] }),
      "modelshare:models": JSON.stringify(list),
      "modelshare:sshKey": PRIVATE_KEY,
    });
    const outputOf = async (list: Model[]) => {
      let out: unknown = "not declared";
      await declare({ stack: "models", config: config(list), secretKeys: ["modelshare:sshKey"] }, async () => {
        const site = new Site("site", loadSite());
        out = site.declaredModels ? await new Promise((resolve) => site.declaredModels!.apply(resolve)) : undefined;
      });
      return out;
    };
    expect(await outputOf([ok(), ok({ category: "vae", file: "v.pt", sha256: "b".repeat(64) })])).toEqual({
      "loras/style.safetensors": { path: "/srv/m/storage-models/models/loras/style.safetensors", sha256: SHA },
      "vae/v.pt": { path: "/srv/m/storage-models/models/vae/v.pt", sha256: "b".repeat(64) },
    });
    expect(await outputOf([])).toBeUndefined();
  });
});

describe("the declared models in check", () => {
  const F = "0123456789abcdef0123456789abcdef";
  const check = (lines: string[]) => parse("n-models", { code: 0, stdout: [...lines, `${F} drift=0`, ""].join("\n"), stderr: "" }, F) as ComponentCheck;
  const node = (c: ComponentCheck): NodeCheck => ({ node: "n", host: "10.0.0.1", components: [c], sessions: 1, ms: 1 });
  const present = `${F} report: declared present 1000 ${SHA} checkpoints/my\\x20model.safetensors -`;

  it("are read field by field; present ones are no finding, a missing, partial, different or unreadable (failed) one is (exit 1), named in the text", () => {
    expect(check([present]).declared).toEqual([{ path: "checkpoints/my model.safetensors", status: "present", size: 1000, sha256: SHA, reason: "" }]);
    expect(exitCode([node(check([present]))])).toBe(0);
    for (const status of ["missing", "partial", "different", "failed"]) {
      const c = check([present, `${F} report: declared ${status} 10 - loras/x.safetensors its\\x20reason`]);
      expect(exitCode([node(c)])).toBe(1);
      expect(formatText([node(c)])).toContain(`declared models on n: 1 of 2 present\n  ${status.toUpperCase()} loras/x.safetensors: its reason\n`);
    }
  });

  it("a row without the frame or with another status is not taken", () => {
    expect(check([`report: declared missing 0 - loras/x.safetensors -`, `${F} report: declared fetched 0 - loras/y.safetensors -`])).not.toHaveProperty(
      "declared",
    );
  });
});
