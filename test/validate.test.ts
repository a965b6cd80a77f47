import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { closest } from "../components/stackConfig";
import { validateStackText } from "../ops/validate";
import { seedsSite, type RawSite } from "./fixtures/site";
import { problemsOf } from "./helpers/rejected";

/**
 * `npm run validate -- Pulumi.<site>.yaml` (issue 21, item 1): the stack file read directly, no
 * Pulumi CLI or backend. The README's example is valid; each kind of problem is named with its
 * key and the fix; a misspelt section is named with the one it most likely meant.
 */
const readme = readFileSync("README.md", "utf8");
const at = readme.indexOf("<!-- site-example -->\n```");
const EXAMPLE = readme.slice(readme.indexOf("\n", readme.indexOf("```", at)) + 1, readme.indexOf("\n```", readme.indexOf("```", at) + 3));
const problems = (text: string) => validateStackText(text, "Pulumi.x.yaml").problems;

describe("validate", () => {
  it("finds the README's example valid, its secrets present but not decrypted, and says what the site is", () => {
    expect(EXAMPLE).toContain("modelshare:nodes:");
    const r = validateStackText(EXAMPLE, "Pulumi.seeds.yaml");
    expect(r.problems).toEqual([]);
    expect(r.summary).toEqual([
      "node storage (192.168.0.6): storage, smb, nfs-server",
      "node gpu1 (192.168.0.21): worker",
      "node gpu2 (192.168.0.22): worker",
      "storage: /vol/service/cw on storage",
      "3 secret(s) present, not decrypted here: modelshare:smbPasswordArtist, modelshare:smbPasswordViewer, modelshare:sshKey",
    ]);
  });

  it("names a misspelt section with the one it most likely meant", () => {
    const found = problems(EXAMPLE.replace("modelshare:storage:", "modelshare:storge:"));
    expect(found).toContainEqual(expect.stringMatching(/^modelshare:storge: is not a modelshare setting; did you mean modelshare:storage\?/));
    expect(found).not.toContainEqual(expect.stringMatching(/^storage: /)); // not also "storage is missing"
    expect(closest("storge", ["nodes", "storage", "smb"])).toBe("storage");
    expect(closest("xyz", ["nodes", "storage", "smb"])).toBeUndefined();
  });

  it("reads a key without a namespace as modelshare's (Pulumi's project namespace)", () => {
    const r = validateStackText(EXAMPLE.replace("  modelshare:storage:", "  storage:"), "Pulumi.x.yaml");
    expect(r.problems).toEqual([]);
    expect(r.summary).toContain("storage: /vol/service/cw on storage");
  });

  it.each([
    [
      "a secret that is missing",
      (t: string) => t.replace(/ {2}modelshare:smbPasswordViewer:\n {4}secure: v1:…\n?/, ""),
      /^modelshare:smbPasswordViewer: missing; the SMB user viewer needs a password there: pulumi config set --secret smbPasswordViewer$/,
    ],
    [
      "a secret in plain text",
      (t: string) => t.replace(/modelshare:sshKey:\n {4}secure: v1:…[^\n]*/, "modelshare:sshKey: plain"),
      /^modelshare:sshKey: is stored in plain text; store the private key as a secret instead/,
    ],
    ["a bad value in a section", (t: string) => t.replace("root: /vol/service/cw", "root: relative/path"), /^storage\.root: /],
    [
      "a file that is not YAML",
      () => "config:\n  modelshare:nodes: [\n",
      /^Pulumi\.x\.yaml: is not valid YAML: .*; fix the file's indentation or quoting there$/,
    ],
    ["a file without config", () => "encryptionsalt: v1:abc\n", /^Pulumi\.x\.yaml: has no config: map/],
  ])("refuses %s, naming the key and the fix", (_what, edit, says) => {
    const found = problems(edit(EXAMPLE));
    expect(found.length, JSON.stringify(found)).toBeGreaterThan(0);
    expect(found).toContainEqual(expect.stringMatching(says));
  });
});

describe("npm run validate", () => {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-validate-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cli = (...args: string[]) => spawnSync(process.execPath, [require.resolve("tsx/cli"), "ops/validate.ts", ...args], { encoding: "utf8" });

  it("exits 0 on a valid file, 1 listing the problems once each, 2 on a file it cannot read or a bad call", () => {
    writeFileSync(join(dir, "Pulumi.good.yaml"), EXAMPLE);
    writeFileSync(join(dir, "Pulumi.bad.yaml"), EXAMPLE.replace("modelshare:storage:", "modelshare:storge:"));
    const good = cli(join(dir, "Pulumi.good.yaml"));
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/^Pulumi\.good\.yaml: valid\n {2}node storage \(192\.168\.0\.6\)/);
    const bad = cli(join(dir, "Pulumi.bad.yaml"));
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(
      /^Pulumi\.bad\.yaml: not valid; nothing would be changed on any node:\n {2}- modelshare:storge: is not a modelshare setting; did you mean modelshare:storage\?/,
    );
    expect(bad.stdout.match(/storge/g)?.length).toBe(1);
    expect(cli(join(dir, "Pulumi.none.yaml")).status).toBe(2);
    expect(cli().stderr).toContain("usage: npm run validate -- Pulumi.<site>.yaml");
  });
});

describe("the config's messages", () => {
  // Each a wrong config as people write them; the schema library's own words ("Invalid input",
  // "Unrecognized key", "Too small") name no fix, so none may reach a message.
  const cases: Array<[string, (r: RawSite) => void, string, RegExp]> = [
    ["a misspelt key in a section", (r) => (r.storage.rot = "/x"), "storage.rot", /^is not a setting; did you mean root\? \(known here: root, /],
    ["two letters swapped", (r) => (r.nodes[0].hots = "x"), "nodes[0].hots", /^is not a setting; did you mean host\?/],
    ["a misspelt service", (r) => (r.services = { comfyuii: { enabled: true } }), "services.comfyuii", /did you mean comfyui\?/],
    ["a key nothing resembles", (r) => (r.storage.zzzzzz = 1), "storage.zzzzzz", /^is not a setting \(known here: .*\); fix the spelling or remove it$/],
    [
      "a number written as a string",
      (r) => (r.storage.minFreeGB = "50"),
      "storage.minFreeGB",
      /^must be a number, not the string "50"; write it as docs\/config-reference\.md shows$/,
    ],
    ["yes for true", (r) => (r.nfs = { enabled: "yes" }), "nfs.enabled", /^must be true or false, not the string "yes"/],
    ["one category, not a list", (r) => (r.storage.categories = "checkpoints"), "storage.categories", /^must be a list, not the string "checkpoints"/],
    ["a value not among the choices", (r) => (r.storage.intake = "scan"), "storage.intake", /^must be one of "direct", "staging", not the string "scan"$/],
    ["a number below its range", (r) => (r.nodes[0].port = 0), "nodes[0].port", /^must be at least 1, not 0$/],
    ["a number above its range", (r) => (r.storage.minFreeGB = 1e9), "storage.minFreeGB", /^must be at most 1000000, not 1000000000$/],
    ["a required key left out", (r) => delete r.storage.root, "storage.root", /^is required; add it/],
    ["a rule's own words kept", (r) => (r.storage.modes = { models: 775 }), "storage.modes.models", /quoted octal string/],
  ];
  it.each(cases)("%s: named with its key and what to write", (_what, mutate, key, says) => {
    const found = problemsOf(seedsSite, mutate);
    const hit = found.find((p) => p.startsWith(`${key}: `));
    expect(hit, JSON.stringify(found)).toBeDefined();
    expect(hit!.slice(key.length + 2)).toMatch(says);
    for (const p of found) expect(p).not.toMatch(/Invalid input|Invalid option|Unrecognized key|Too (small|big)|expected \w+, received/);
  });
});
