import { createDecipheriv, pbkdf2Sync } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * Pulumi's passphrase secrets provider, decrypt side only, so that `npm run validate` can check
 * what a stack's `secure:` values hold without the CLI. The stack file's `encryptionsalt` is
 * `v1:<salt>:<"pulumi" encrypted>`; each value `v1:<nonce>:<ciphertext and tag>`: AES-256-GCM
 * under a key PBKDF2-SHA256 derives from the passphrase and salt (1,000,000 rounds), as the CLI
 * does (pkg/secrets/passphrase; test/passphrase.test.ts checks it against the CLI's own values).
 */
const ROUNDS = 1_000_000;
const TAG_BYTES = 16;

export class BadPassphraseError extends Error {}

/** A decrypter for the stack file whose `encryptionsalt` is STATE, or BadPassphraseError. */
export function passphraseDecrypter(state: string, passphrase: string): (value: string) => string {
  const parts = state.split(":");
  if (parts.length !== 5 || parts[0] !== "v1") throw new BadPassphraseError("its encryptionsalt is not of the form v1:<salt>:v1:<nonce>:<data>");
  const key = pbkdf2Sync(passphrase, Buffer.from(parts[1], "base64"), ROUNDS, 32, "sha256");
  const decrypt = (value: string): string => {
    const [version, nonce, data, ...rest] = value.split(":");
    if (version !== "v1" || nonce === undefined || data === undefined || rest.length > 0) throw new Error("not of the form v1:<nonce>:<data>");
    const bytes = Buffer.from(data, "base64");
    if (bytes.length < TAG_BYTES) throw new Error("too short to hold its tag");
    const d = createDecipheriv("aes-256-gcm", key, Buffer.from(nonce, "base64"));
    d.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([d.update(bytes.subarray(0, bytes.length - TAG_BYTES)), d.final()]).toString("utf8");
  };
  let check: string | undefined;
  try {
    check = decrypt(parts.slice(2).join(":"));
  } catch {
    // a wrong passphrase fails GCM's tag
  }
  if (check !== "pulumi") throw new BadPassphraseError("the passphrase does not decrypt it");
  return decrypt;
}

/**
 * The passphrase as the CLI takes it: PULUMI_CONFIG_PASSPHRASE when set (even empty), else the
 * file PULUMI_CONFIG_PASSPHRASE_FILE names, without the spaces and newlines around it.
 */
export function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.PULUMI_CONFIG_PASSPHRASE !== undefined) return env.PULUMI_CONFIG_PASSPHRASE;
  if (env.PULUMI_CONFIG_PASSPHRASE_FILE) return readFileSync(env.PULUMI_CONFIG_PASSPHRASE_FILE, "utf8").trim();
  return undefined;
}
