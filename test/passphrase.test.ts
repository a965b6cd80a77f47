import { createCipheriv, pbkdf2Sync, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BadPassphraseError, passphraseDecrypter, passphraseFromEnv } from "../ops/passphrase";
import { validateStackText } from "../ops/validate";
import { PRIVATE_KEY } from "./fixtures/site";

/**
 * `npm run validate` reading a passphrase stack's secrets (issue 21, item 1: "its content is
 * checked where it can be decrypted"). The decrypter is checked against values the Pulumi CLI
 * made (its own test state in pkg/secrets/passphrase/manager_test.go, passphrase "password"; a
 * state and secret from a public project's tests, passphrase "foo"), then used on a stack file.
 */
const CLI_STATE = "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ==";
const OTHER_STATE = "v1:LAQ7P6sT/+w=:v1:WejwuMb5G4TZsR/r:xZvrv45hbT2QRrHCkQrepVv3xQfMjw==";

/** Encrypts as the CLI does (a fresh 12-byte nonce, AES-256-GCM, the tag appended): only for the test's stack file. */
function encrypt(key: Buffer, plain: string): string {
  const nonce = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  const data = Buffer.concat([c.update(plain, "utf8"), c.final(), c.getAuthTag()]);
  return `v1:${nonce.toString("base64")}:${data.toString("base64")}`;
}

describe("the passphrase decrypter", () => {
  it("opens what the Pulumi CLI encrypted, and refuses a wrong passphrase or a malformed state", () => {
    expect(passphraseDecrypter(OTHER_STATE, "foo")("v1:6rgJQkU0YY5NFozT:HN1XFZSfr2YW1Pi1QtMfUJjad4w=")).toBe("test");
    expect(() => passphraseDecrypter(CLI_STATE, "password")).not.toThrow();
    expect(() => passphraseDecrypter(CLI_STATE, "password123")).toThrow(BadPassphraseError);
    expect(() => passphraseDecrypter("fozI5u6B030=:v1:F+6ZduL:PGMF", "password")).toThrow(/not of the form/);
  });

  it("takes the passphrase as the CLI does: the variable when set (even empty), else the file's text trimmed", () => {
    expect(passphraseFromEnv({ PULUMI_CONFIG_PASSPHRASE: "", PULUMI_CONFIG_PASSPHRASE_FILE: "/nonexistent" })).toBe("");
    const file = join(mkdtempSync(join(tmpdir(), "modelshare-passphrase-")), "phrase");
    writeFileSync(file, "  correct horse\n");
    expect(passphraseFromEnv({ PULUMI_CONFIG_PASSPHRASE_FILE: file })).toBe("correct horse");
    expect(passphraseFromEnv({})).toBeUndefined();
  });
});

describe("validate, with the stack's passphrase", () => {
  // A stack file as `pulumi config set --secret` leaves it: the CLI's salt line, each secret's
  // ciphertext under the key the CLI derives from "password" and that salt.
  const k = pbkdf2Sync("password", Buffer.from(CLI_STATE.split(":")[1], "base64"), 1_000_000, 32, "sha256");
  const stack = (ssh: string, extra = "") => `encryptionsalt: ${CLI_STATE}
config:
  modelshare:nodes:
    - { name: storage, host: 192.168.0.6, roles: [storage], insecureSkipHostKeyCheck: true }
  modelshare:storage:
    root: /srv/models
  modelshare:sshKey:
    secure: ${ssh}
${extra}`;

  it("checks what a secret holds: a real key passes, and the summary says the secrets were read", () => {
    const r = validateStackText(stack(encrypt(k, PRIVATE_KEY)), "Pulumi.site.yaml", "password");
    expect(r.problems).toEqual([]);
    expect(r.summary).toContain("1 secret(s) decrypted and checked: modelshare:sshKey");
  });

  it("names a secret that holds no private key, one that does not decrypt, and a passphrase that opens nothing; never prints a secret", () => {
    const notAKey = validateStackText(stack(encrypt(k, "hunter2-not-a-key")), "Pulumi.site.yaml", "password");
    expect(notAKey.problems).toEqual([expect.stringMatching(/^modelshare:sshKey: does not hold a private key/)]);
    expect(notAKey.problems.join("\n")).not.toContain("hunter2");

    const [v, nonce, data] = encrypt(k, PRIVATE_KEY).split(":");
    const bytes = Buffer.from(data, "base64");
    bytes[10] ^= 1; // one bit of the ciphertext: GCM's tag no longer matches
    const tampered = `${v}:${nonce}:${bytes.toString("base64")}`;
    expect(validateStackText(stack(tampered), "Pulumi.site.yaml", "password").problems).toEqual([
      "modelshare:sshKey: its secure: value does not decrypt with this stack's passphrase; set it again: pulumi config set --secret sshKey",
    ]);

    const wrong = validateStackText(stack(encrypt(k, PRIVATE_KEY)), "Pulumi.site.yaml", "password123");
    expect(wrong.problems).toEqual([expect.stringMatching(/^Pulumi\.site\.yaml: the passphrase given .* does not open this stack's secrets/)]);
  });

  it("without a passphrase, or with another secrets provider, counts the secrets present and reads none", () => {
    for (const [text, passphrase] of [
      [stack(encrypt(k, "hunter2-not-a-key")), undefined],
      [`secretsprovider: awskms://alias/x\n${stack(encrypt(k, "hunter2-not-a-key"))}`, "password"],
    ] as const) {
      const r = validateStackText(text, "Pulumi.site.yaml", passphrase);
      expect(r.problems).toEqual([]);
      expect(r.summary).toContain("1 secret(s) present, not decrypted here: modelshare:sshKey");
    }
  });
});
