import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { stackMessage, stackProblem } from "../ops/stackErrors";

/**
 * How check, repair, warm and dedupe say why a stack could not be opened (issue 21, item 4):
 * no CLI, no such stack and secrets that cannot be decrypted each get their own sentence and
 * fix; `check --json` answers in JSON on every path, errors and usage included.
 */
describe("opening a stack", () => {
  it.each([
    ["pulumi: fetch failed", "no-cli", /the Pulumi CLI could not be run \(pulumi: fetch failed\)[\s\S]*npm run validate -- Pulumi\.site\.yaml/],
    ["spawn pulumi ENOENT", "no-cli", /the Pulumi CLI could not be run/],
    ["error: no stack named 'site' found", "no-stack", /^there is no stack site in the current backend [\s\S]*pulumi stack ls/],
    [
      "error: getting stack configuration: incorrect passphrase",
      "cannot-decrypt",
      /^the secrets of stack site cannot be decrypted [\s\S]*PULUMI_CONFIG_PASSPHRASE/,
    ],
    [
      'error: constructing secrets manager of type "passphrase": passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE',
      "cannot-decrypt",
      /cannot be decrypted/,
    ],
    ["error: something else", "other", /^could not open the stack site through the Pulumi CLI \(error: something else\)/],
  ])("%s: %s", (said, kind, message) => {
    expect(stackProblem(said)).toBe(kind);
    expect(stackMessage("site", said)).toMatch(message);
  });
});

describe("npm run check -- --json", () => {
  // Without a pulumi command on PATH: the CLI is missing, and nothing reaches the network.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, PULUMI_HOME: "/nonexistent" };
  const check = (...args: string[]) => spawnSync(process.execPath, [require.resolve("tsx/cli"), "ops/cli.ts", "check", ...args], { encoding: "utf8", env });

  it("answers in JSON when the stack cannot be opened, and on a bad call; the exit codes are in the usage", () => {
    const none = check("site", "--json");
    expect(none.status).toBe(2);
    const out = JSON.parse(none.stdout);
    expect(out).toMatchObject({ exitCode: 2, error: expect.stringMatching(/^the Pulumi CLI could not be run/) });
    const usage = check("--json");
    expect(usage.status).toBe(2);
    expect(JSON.parse(usage.stdout).error).toMatch(/^usage: npm run check[\s\S]*exit status: 0 /);
    const text = check("site");
    expect(text.stdout).toBe("");
    expect(text.stderr).toMatch(/^modelshare: the Pulumi CLI could not be run/);
  });
});
