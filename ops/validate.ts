import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { isMap, parseDocument } from "yaml";
import { SiteConfigError } from "../components/config";
import { siteFromConfig } from "../components/stackConfig";
import { printableLines } from "./text";

/**
 * `npm run validate -- Pulumi.<site>.yaml`: the stack file checked as `pulumi up` would check
 * it, read directly (no Pulumi CLI, no backend, no stack needed). A `secure:` value counts as
 * present; what it holds can only be checked where it is decrypted (`pulumi up`, `npm run
 * check`). Exit 0: valid; 1: every problem listed, each naming the key and the fix; 2: the file
 * cannot be read.
 */
export const VALIDATE_USAGE = "usage: npm run validate -- Pulumi.<site>.yaml";
const NAMESPACE = "modelshare";

export interface Validation {
  problems: string[];
  /** What the site is, when it is valid: one line per node, the secrets left undecrypted. */
  summary?: string[];
}

/** The stack file's text, checked. `file` only names it in messages. */
export function validateStackText(text: string, file: string): Validation {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    return { problems: doc.errors.map((e) => `${file}: is not valid YAML: ${e.message.split("\n")[0]}; fix the file's indentation or quoting there`) };
  }
  const top = doc.toJS() as unknown;
  const config = (top as { config?: unknown } | null)?.config;
  if (top === null || typeof top !== "object" || !isMap(doc.contents) || config === undefined) {
    return { problems: [`${file}: has no config: map; a stack file holds config: with the modelshare: keys (see the README's example)`] };
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    return { problems: [`${file}: config: is not a map of keys; write each setting as modelshare:<key>: <value>`] };
  }
  const values: Record<string, string> = {};
  const opaque = new Set<string>();
  for (const [raw, value] of Object.entries(config as Record<string, unknown>)) {
    // Pulumi reads a key without a namespace as the project's own (Pulumi.yaml: name: modelshare).
    const key = raw.includes(":") ? raw : `${NAMESPACE}:${raw}`;
    if (!key.startsWith(`${NAMESPACE}:`)) continue; // another package's setting: not ours to judge
    if (value !== null && typeof value === "object" && !Array.isArray(value) && "secure" in value) {
      opaque.add(key);
      values[key] = "";
      continue;
    }
    values[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  try {
    const site = siteFromConfig(values, (k) => opaque.has(k), { opaque: (k) => opaque.has(k) });
    const summary = [
      ...site.config.nodes.map((n) => `node ${n.name} (${n.host}): ${n.roles.join(", ")}`),
      `storage: ${site.config.storage.root} on ${site.config.nodes.find((n) => n.roles.includes("storage"))?.name}`,
      ...(opaque.size ? [`${opaque.size} secret(s) present, not decrypted here: ${[...opaque].sort().join(", ")}`] : []),
    ];
    return { problems: [], summary };
  } catch (e) {
    if (e instanceof SiteConfigError) return { problems: e.problems };
    throw e;
  }
}

export function validateMain(argv: string[]): number {
  if (argv.length !== 1 || argv[0].startsWith("-")) {
    process.stderr.write(`${VALIDATE_USAGE}\n`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(argv[0], "utf8");
  } catch (e) {
    process.stderr.write(
      printableLines(`modelshare: cannot read ${argv[0]} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${VALIDATE_USAGE}\n`),
    );
    return 2;
  }
  const file = basename(argv[0]);
  const { problems, summary } = validateStackText(text, file);
  if (problems.length > 0) {
    process.stdout.write(printableLines(`${file}: not valid; nothing would be changed on any node:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`));
    return 1;
  }
  process.stdout.write(printableLines(`${file}: valid\n${(summary ?? []).map((l) => `  ${l}`).join("\n")}\n`));
  return 0;
}

if (require.main === module) process.exit(validateMain(process.argv.slice(2)));
