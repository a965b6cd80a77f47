import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";

/**
 * `npm run dev` (scripts/dev.sh) with a stand-in `pulumi` on PATH that records every call and
 * the backend settings it got, and behaves like the real CLI where it matters: `stack select`
 * fails for a stack that does not exist, `stack init` writes an encryptionsalt into the stack
 * file, and a passphrase stack without its salt cannot run.
 */
// ("$%{" stands for "${", which a template literal would take for its own.)
const FAKE = String.raw`#!/usr/bin/env bash
set -u
printf '%s | backend=%s passphrase=[%s]\n' "$*" "$PULUMI_BACKEND_URL" "$PULUMI_CONFIG_PASSPHRASE" >> "$FAKE_LOG"
made="$FAKE_STATE/dev-made"
case "$1 $%{2-}" in
  "version ") if [ -n "$%{FAKE_FAIL-}" ]; then echo "Downloading pulumi v3.265.0..." >&2; echo "pulumi: fetch failed" >&2; exit 1; fi; echo v3.265.0 ;;
  "stack select")
    if [ -n "$%{FAKE_SELECT_ERROR-}" ]; then echo "$FAKE_SELECT_ERROR" >&2; exit 255; fi
    [ -e "$made" ] || { echo "error: no stack named 'dev' found" >&2; exit 255; } ;;
  "stack init") touch "$made"; { echo "encryptionsalt: v1:FAKESALT=="; cat Pulumi.dev.yaml; } > x.tmp && mv x.tmp Pulumi.dev.yaml ;;
  "stack output")
    if [ "$%{3-}" = storageRoot ]; then echo "$FAKE_ROOT"; else echo '{"storageRoot": "'"$FAKE_ROOT"'"}'; fi ;;
  "up --stack"|"destroy --stack"|"preview --stack")
    grep -q '^encryptionsalt: v1:FAKESALT==$' Pulumi.dev.yaml || { echo "error: incorrect passphrase" >&2; exit 255; }
    [ "$1" != up ] || mkdir -p "$FAKE_ROOT/storage-models/models/checkpoints" ;;
  *) echo "fake pulumi: unexpected: $*" >&2; exit 3 ;;
esac
`.replaceAll("$%{", "${");

let repo: string;
let log: string;
let env: NodeJS.ProcessEnv;

const git = (...args: string[]) => spawnSync("git", ["-C", repo, ...args], { encoding: "utf8" }).stdout;
const dev = (action: string, extra: NodeJS.ProcessEnv = {}) =>
  spawnSync("bash", [join(repo, "scripts/dev.sh"), action], { encoding: "utf8", env: { ...env, ...extra }, cwd: repo });
const calls = () => readFileSync(log, "utf8").trim().split("\n");

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), "modelshare-devsh-"));
  mkdirSync(join(repo, "scripts"));
  copyFileSync("scripts/dev.sh", join(repo, "scripts/dev.sh"));
  copyFileSync("Pulumi.dev.yaml", join(repo, "Pulumi.dev.yaml"));
  writeFileSync(join(repo, ".gitignore"), ".pulumi-state/\nbin/\nnode_modules/\ncalls.log\n");
  mkdirSync(join(repo, "bin"));
  writeFileSync(join(repo, "bin/pulumi"), FAKE);
  chmodSync(join(repo, "bin/pulumi"), 0o755);
  // This project's npm wrapper, first on PATH as under `npm run`: a pulumi on PATH wins over it.
  mkdirSync(join(repo, "node_modules/.bin"), { recursive: true });
  writeFileSync(join(repo, "node_modules/.bin/pulumi"), '#!/bin/sh\necho wrapper >> "$FAKE_LOG"; exit 9\n');
  chmodSync(join(repo, "node_modules/.bin/pulumi"), 0o755);
  log = join(repo, "calls.log");
  writeFileSync(log, "");
  spawnSync("git", ["init", "-q", repo]);
  git("add", "-A");
  spawnSync("git", ["-C", repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]);
  const { PULUMI_CONFIG_PASSPHRASE: _unset, ...rest } = process.env;
  env = {
    ...rest,
    PATH: `${join(repo, "node_modules/.bin")}:${join(repo, "bin")}:${process.env.PATH}`,
    FAKE_LOG: log,
    FAKE_STATE: join(repo, ".pulumi-state"),
    FAKE_ROOT: join(repo, "home/modelshare-dev"),
  };
});

describe("npm run dev", () => {
  it("first run: a file backend in .pulumi-state, an empty passphrase, the stack made, the result shown; the work tree stays clean", () => {
    const r = dev("up");
    expect(r.status, r.stderr).toBe(0);
    expect(calls()).toEqual([
      `version | backend=file://${repo}/.pulumi-state passphrase=[]`,
      `stack select dev | backend=file://${repo}/.pulumi-state passphrase=[]`,
      `stack init dev --secrets-provider passphrase | backend=file://${repo}/.pulumi-state passphrase=[]`,
      `up --stack dev --yes | backend=file://${repo}/.pulumi-state passphrase=[]`,
      `stack output storageRoot --stack dev | backend=file://${repo}/.pulumi-state passphrase=[]`,
      `stack output --stack dev | backend=file://${repo}/.pulumi-state passphrase=[]`,
    ]);
    expect(r.stdout).toContain(
      `modelshare: the folders it made under ${repo}/home/modelshare-dev:\n  storage-models\n  storage-models/models\n  storage-models/models/checkpoints\n`,
    );
    expect(r.stdout).toContain(`"storageRoot": "${repo}/home/modelshare-dev"`);
    expect(git("status", "--porcelain")).toBe("");
    expect(readFileSync(join(repo, ".pulumi-state/dev.encryptionsalt"), "utf8")).toBe("encryptionsalt: v1:FAKESALT==\n");
  });

  it("later runs select the stack, give the CLI its salt back, and leave the work tree clean again", () => {
    expect(dev("up").status).toBe(0);
    writeFileSync(log, "");
    const r = dev("up");
    expect(r.status, r.stderr).toBe(0);
    expect(calls().map((c) => c.split(" | ")[0])).toEqual([
      "version",
      "stack select dev",
      "up --stack dev --yes",
      "stack output storageRoot --stack dev",
      "stack output --stack dev",
    ]);
    expect(git("status", "--porcelain")).toBe("");
    const d = dev("destroy");
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toContain(`Kept: ${repo}/home/modelshare-dev with every folder and file in it`);
    expect(git("status", "--porcelain")).toBe("");
  });

  it("a CLI that cannot be fetched: its own words reach the user, with what to do", () => {
    const r = dev("up", { FAKE_FAIL: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("modelshare: the Pulumi CLI could not be run; it said:\nDownloading pulumi v3.265.0...\npulumi: fetch failed\n");
    expect(r.stderr).toContain("Install the Pulumi CLI by hand");
    expect(calls()).toHaveLength(1);
  });

  it("any other stack select error is shown, not taken for a missing stack", () => {
    const r = dev("preview", { FAKE_SELECT_ERROR: "error: could not read the backend: permission denied" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("modelshare: pulumi stack select dev failed:\nerror: could not read the backend: permission denied");
    expect(calls().map((c) => c.split(" | ")[0])).toEqual(["version", "stack select dev"]);
  });

  it("uses the pulumi found on PATH, not the project's npm wrapper", () => {
    expect(dev("up").status).toBe(0);
    expect(readFileSync(log, "utf8")).not.toContain("wrapper");
  });
});
