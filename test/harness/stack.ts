import { readFileSync } from "node:fs";
import { parse } from "yaml";

/**
 * Reads a Pulumi.<stack>.yaml into the flat config map the engine hands a program:
 * `modelshare:key` -> string, objects as JSON. `secure:` values cannot be decrypted here, so
 * each must be given in `secrets` (and is then marked secret, as the engine would).
 */
export function stackConfig(file: string, secrets: Record<string, string> = {}): { config: Record<string, string>; secretKeys: string[] } {
  const doc = parse(readFileSync(file, "utf8")) as { config?: Record<string, unknown> };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (typeof value === "object" && value !== null && "secure" in value) {
      if (!(key in secrets)) throw new Error(`${file}: ${key} is a secret; pass its value`);
      continue;
    }
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  for (const [key, value] of Object.entries(secrets)) {
    config[key] = value;
    secretKeys.push(key);
  }
  return { config, secretKeys };
}
