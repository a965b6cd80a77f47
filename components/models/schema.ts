import { z } from "zod";
import type { Add } from "../concern";

/** One model a site declares: where it goes in the store, where it comes from, what it must be. */
export const modelSchema = z.strictObject({
  category: z.string().describe("The store category folder it goes into (one of `storage.categories`)."),
  file: z.string().describe("Its file name in that folder: a plain name (no `/`, not starting with `.`)."),
  url: z.string().describe("Where the storage node downloads it from, once (http:// or https://; credentials in the URL are not supported)."),
  sha256: z
    .string()
    .describe("Its SHA-256, 64 lower-case hex digits: a download with other bytes is refused, and a file already there with other bytes is never replaced."),
});

/**
 * `modelshare:models`: models the site declares. Converge downloads each one that is missing,
 * once, as the storage owner, verifies it against its SHA-256 and only then gives it its name;
 * a file already at that name is never replaced.
 */
export const modelsSchema = z
  .array(modelSchema)
  .default([])
  .describe("Models the storage node fetches once into the model store (as the storage owner), each verified by its SHA-256.");

export type Model = z.output<typeof modelSchema>;

const SHA256 = /^[0-9a-f]{64}$/;

/** Why `file` is not a plain file name, or undefined when it is one. */
export function fileProblem(file: string): string | undefined {
  if (file === "") return "is empty: give the model's file name";
  if (file.includes("/")) return `${JSON.stringify(file)} holds a "/": give a plain file name (the category names the folder)`;
  if (file === "." || file === "..") return `${JSON.stringify(file)} is not a file name: give the model's file name`;
  if (file.startsWith("."))
    return `${JSON.stringify(file)} starts with ".": such names are modelshare's own (partial downloads) or hidden; give a name without the leading dot`;
  if (/[\0\n\r]/.test(file)) return `${JSON.stringify(file)} holds a NUL or line break: give a name without them`;
  if (Buffer.byteLength(file) > 255) return `is ${Buffer.byteLength(file)} bytes long, over the 255 a file name may have: give a shorter name`;
  return undefined;
}

/** Why `url` cannot be fetched, or undefined when it can. */
export function urlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL: give an http:// or https:// address`;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `${JSON.stringify(u.protocol)} is not supported: give an http:// or https:// address`;
  if (u.hostname === "") return `${JSON.stringify(url)} names no host: give an http:// or https:// address with a host`;
  // Never echo the URL here: it holds a password.
  if (u.username !== "" || u.password !== "")
    return "holds credentials (user:password@): they are not supported, and would be stored in the stack and the program; use a URL that needs none, or put the model there yourself";
  return undefined;
}

/**
 * The rules of `models`: every category is one of the store's, every file a plain name, every
 * URL fetchable without credentials, every SHA-256 64 lower-case hex digits, and no two models
 * at the same place.
 */
export function checkModels(models: readonly Model[], categories: readonly string[], add: Add): void {
  const seen = new Map<string, number>();
  models.forEach((m, i) => {
    const key = `models[${i}]`;
    if (!categories.includes(m.category))
      add(`${key}.category`, `${JSON.stringify(m.category)} is not a store category: use one of ${categories.join(", ")}, or add it to storage.categories`);
    const file = fileProblem(m.file);
    if (file) add(`${key}.file`, file);
    const url = urlProblem(m.url);
    if (url) add(`${key}.url`, url);
    if (!SHA256.test(m.sha256)) {
      if (SHA256.test(m.sha256.toLowerCase())) add(`${key}.sha256`, "has upper-case hex digits: write it in lower case");
      else add(`${key}.sha256`, `${JSON.stringify(m.sha256)} is not a SHA-256: give its 64 hex digits (sha256sum prints them)`);
    }
    const place = `${m.category}/${m.file}`;
    const first = seen.get(place);
    if (first !== undefined) add(`${key}.file`, `${place} is declared by models[${first}] already: a place holds one model; remove one of them`);
    else seen.set(place, i);
  });
}
