import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { isMap, parseDocument } from "yaml";
import { SiteConfigError } from "../components/config";
import { siteFromConfig } from "../components/stackConfig";
import { BadPassphraseError, passphraseDecrypter, passphraseFromEnv } from "./passphrase";
import { printableLines } from "./text";

/**
 * `npm run validate -- Pulumi.<site>.yaml`: the stack file checked as `pulumi up` would check
 * it, read directly (no Pulumi CLI, no backend, no stack needed). A `secure:` value is present;
 * what it holds is checked too when the stack uses a passphrase (its `encryptionsalt`) and the
 * passphrase is given as for `pulumi up` (PULUMI_CONFIG_PASSPHRASE or _FILE): ops/passphrase.ts.
 * Exit 0: valid; 1: every problem listed, each naming the key and the fix; 2: the file cannot
 * be read.
 */
export const VALIDATE_USAGE = "usage: npm run validate -- Pulumi.<site>.yaml";
const NAMESPACE = "modelshare";

export interface Validation {
  problems: string[];
  /** What the site is, when it is valid: one line per node, the secrets left undecrypted. */
  summary?: string[];
}

/** The stack file's text, checked. `file` only names it in messages; `passphrase` decrypts its secrets. */
export function validateStackText(text: string, file: string, passphrase?: string): Validation {
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
  const decrypt = decrypter(top as Record<string, unknown>, file, passphrase);
  if (typeof decrypt === "string") return { problems: [decrypt] };
  const values: Record<string, string> = {};
  const opaque = new Set<string>();
  const secret = new Set<string>();
  const problems: string[] = [];
  for (const [raw, value] of Object.entries(config as Record<string, unknown>)) {
    // Pulumi reads a key without a namespace as the project's own (Pulumi.yaml: name: modelshare).
    const key = raw.includes(":") ? raw : `${NAMESPACE}:${raw}`;
    if (!key.startsWith(`${NAMESPACE}:`)) continue; // another package's setting: not ours to judge
    if (value !== null && typeof value === "object" && !Array.isArray(value) && "secure" in value) {
      secret.add(key);
      if (!decrypt) {
        opaque.add(key);
        values[key] = "";
        continue;
      }
      try {
        values[key] = decrypt(String((value as { secure: unknown }).secure));
      } catch {
        problems.push(
          `${key}: its secure: value does not decrypt with this stack's passphrase; set it again: pulumi config set --secret ${key.slice(NAMESPACE.length + 1)}`,
        );
      }
      continue;
    }
    values[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  if (problems.length > 0) return { problems };
  try {
    const site = siteFromConfig(values, (k) => secret.has(k), { opaque: (k) => opaque.has(k) });
    const summary = [
      ...site.config.nodes.map((n) => `node ${n.name} (${n.host}): ${n.roles.join(", ")}`),
      `storage: ${site.config.storage.root} on ${site.config.nodes.find((n) => n.roles.includes("storage"))?.name}`,
      ...(opaque.size ? [`${opaque.size} secret(s) present, not decrypted here: ${[...opaque].sort().join(", ")}`] : []),
      ...(secret.size > opaque.size ? [`${secret.size} secret(s) decrypted and checked: ${[...secret].sort().join(", ")}`] : []),
    ];
    return { problems: [], summary };
  } catch (e) {
    if (e instanceof SiteConfigError) return { problems: e.problems };
    throw e;
  }
}

/**
 * How the stack file's secrets are read: a decrypter (a passphrase stack, its passphrase given),
 * undefined (no passphrase given, or another secrets provider: present only), or the problem
 * (a passphrase that does not open this stack).
 */
function decrypter(top: Record<string, unknown>, file: string, passphrase: string | undefined): ((v: string) => string) | string | undefined {
  const salt = top.encryptionsalt;
  if (passphrase === undefined || typeof salt !== "string" || (top.secretsprovider !== undefined && top.secretsprovider !== "passphrase")) return undefined;
  try {
    return passphraseDecrypter(salt, passphrase);
  } catch (e) {
    if (!(e instanceof BadPassphraseError)) throw e;
    return `${file}: the passphrase given (PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE) does not open this stack's secrets: ${e.message}; give the stack's own passphrase, or unset both to check the file without reading its secrets`;
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
  let passphrase: string | undefined;
  try {
    passphrase = passphraseFromEnv();
  } catch (e) {
    process.stderr.write(
      printableLines(`modelshare: cannot read PULUMI_CONFIG_PASSPHRASE_FILE (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\n`),
    );
    return 2;
  }
  const { problems, summary } = validateStackText(text, file, passphrase);
  if (problems.length > 0) {
    process.stdout.write(printableLines(`${file}: not valid; nothing would be changed on any node:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`));
    return 1;
  }
  process.stdout.write(printableLines(`${file}: valid\n${(summary ?? []).map((l) => `  ${l}`).join("\n")}\n`));
  return 0;
}

if (require.main === module) process.exit(validateMain(process.argv.slice(2)));
