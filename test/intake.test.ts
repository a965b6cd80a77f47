import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { comfyuiSection } from "../components/installers/comfyui";
import { renderIntake, renderIntakeConfig, renderIntakeUnits } from "../components/intake/program";
import { renderModels } from "../components/models/program";
import { planSite } from "../components/plan";
import { needsWideLinks, reachedFolders, renderSmbConf } from "../components/smb/conf";
import { renderStorageLayout } from "../components/storage/layout";
import { layoutDirs, linkFolders } from "../components/storage/paths";
import { renderSymlinkSet } from "../components/storage/symlinkSet";
import { exitCode, formatText, parse, stagingRow, type NodeCheck } from "../ops/check";
import { PRIVATE_KEY, seedsSite, SEEDS_ROOT, storageNode, type RawSite } from "./fixtures/site";
import { declare } from "./harness/declare";
import { loadSite } from "../components/loadSite";
import { Site } from "../components/site";
import { expectProblem, problemsOf } from "./helpers/rejected";
import { shellcheck } from "./helpers/shellcheck";

/**
 * `storage.intake: staging` (issue 20, item 2): its rules, the layout it asks for (the store the
 * intake account's, staging and rejected folders the owner's, the upload links into staging),
 * what the other concerns do differently, the intake's program and check's staging rows. The
 * intake tool itself runs for real in intake.run.test.ts; the whole chain over SMB in the lab.
 */
const staging = (more: RawSite = {}): RawSite => {
  const raw = seedsSite();
  raw.storage.intake = "staging";
  return { ...raw, ...more };
};
const site = (raw: RawSite = staging()) => parseSite(raw, { homedir: "/home/ada" });
const U = `${SEEDS_ROOT}/storage-user`;
const STORE = `${SEEDS_ROOT}/storage-models/models`;

describe("storage.intake", () => {
  it("is direct by default, and direct changes nothing: links lead into the store, no intake item", () => {
    const s = site(seedsSite());
    expect(s.storage.intake).toBe("direct");
    expect(linkFolders(s.storage)[0].links[0].link).toBe("../../storage-models/models/checkpoints");
    expect(planSite(s).some((i) => i.kind === "intake")).toBe(false);
    expect(layoutDirs(s.storage).some((d) => d.path.includes("models-staging"))).toBe(false);
  });

  it.each([
    ["an unmanaged owner (no second account without root)", (r: RawSite) => (r.storage.owner = "unmanaged"), "storage.intake", /managed storage.owner/],
    ["the catalog off (the intake judges with its tool)", (r: RawSite) => (r.catalog = { enabled: false }), "catalog.enabled", /storage.intake is staging/],
    ["a links folder that is the staging area", (r: RawSite) => (r.storage.links = ["storage-user/models-staging"]), "storage.links[0]", /intake's folder/],
    [
      "a service that writes the store",
      (r: RawSite) => {
        r.nfs = { enabled: true, modelsReadOnly: false };
        r.services = { comfyui: { enabled: true, image: "x/comfyui:1", nodes: ["gpu1"], modelsWritable: true } };
      },
      "services.comfyui.modelsWritable",
      /only the intake writes the model store/,
    ],
    ["a value that is not a mode", (r: RawSite) => (r.storage.intake = "scan"), "storage.intake", /direct|staging/],
  ])("refuses %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problemsOf(staging, mutate), key, says);
  });

  it("gives the store's folders to the intake (0755) and the owner a staging and a rejected folder per category", () => {
    const s = site().storage;
    const dirs = layoutDirs(s);
    expect(dirs.find((d) => d.path === `${STORE}/checkpoints`)).toEqual({ path: `${STORE}/checkpoints`, mode: "0755", holder: "intake" });
    expect(dirs.find((d) => d.path === `${U}/models-staging/loras`)).toEqual({ path: `${U}/models-staging/loras`, mode: "0775", holder: "owner" });
    expect(dirs.find((d) => d.path === `${U}/models-rejected/loras`)).toMatchObject({ holder: "owner" });
    expect(dirs.find((d) => d.path === `${U}/models-staging`)).toMatchObject({ holder: "root", mode: "0755" });
    // The upload links lead into staging; a real folder found there is merged into staging too.
    const set = linkFolders(s)[0];
    expect(set.links.find((l) => l.name === "loras")?.link).toBe("../models-staging/loras");
    expect(renderSymlinkSet(s, set)).toContain(`ensure_link '${U}/models-upload/loras' '../models-staging/loras' '${U}/models-staging/loras'`);
  });

  it("makes the account before the tree, and takes the store's folders last, each with its staging folder for the refusal", () => {
    const program = renderStorageLayout(site().storage);
    const account = program.indexOf("\n  ensure_intake_account\n");
    const tree = program.indexOf("\n  ensure_tree ");
    const dirs = program.indexOf("\n  ensure_intake_dirs ");
    expect(account).toBeGreaterThan(0);
    expect(tree).toBeGreaterThan(account);
    expect(dirs).toBeGreaterThan(tree);
    expect(program).toContain(`'${STORE}/loras' '00755' '${U}/models-staging/loras'`);
    expect(program.slice(tree, dirs)).not.toContain(`'${STORE}/loras'`);
    expect(renderStorageLayout(site(seedsSite()).storage)).not.toContain("ensure_intake");
  });

  it("needs no wide links when the share holds both the upload links and staging", () => {
    const raw = staging();
    raw.smb = { enabled: true, path: "storage-user", hostsAllow: ["192.168.0.0/24"], users: [{ name: "ada", passwordKey: "smbPasswordAda" }] };
    const direct = seedsSite();
    direct.smb = raw.smb;
    const s = site(raw);
    const d = site(direct);
    expect(needsWideLinks(d.smb, d.storage)).toBe(true);
    expect(needsWideLinks(s.smb, s.storage)).toBe(false);
    expect(renderSmbConf(s.smb, s.storage)).toContain("wide links = no");
    expect(reachedFolders(s.smb, s.storage)).toContain(`${U}/models-rejected/loras`);
  });

  it("fetches declared models as the intake, and points ComfyUI's downloads and migrations at staging", () => {
    const s = site().storage;
    const models = renderModels([{ category: "loras", file: "a.safetensors", url: "https://x/a", sha256: "a".repeat(64) }], s);
    expect(models).toMatch(/converge_privileged\(\) \{\n {2}models_use_intake\n/);
    expect(models).toMatch(/report_privileged\(\) \{\n {2}models_use_intake\n/);
    expect(comfyuiSection(s, "/mnt/m")).toMatchObject({ base_path: "/mnt/m/storage-models/models", download_model_base: "/mnt/m/storage-user/models-staging" });
    expect(comfyuiSection(s, "/mnt/m")).not.toHaveProperty("is_default");
    expect(comfyuiSection(site(seedsSite()).storage, "/mnt/m")).toMatchObject({ is_default: true, download_model_base: "/mnt/m/storage-models/models" });
  });
});

describe("the intake's item and program", () => {
  it("is planned on the storage node after its layout and the catalog, with the folders as outputs", () => {
    const plan = planSite(site());
    const item = plan.find((i) => i.kind === "intake")!;
    expect(item).toMatchObject({ name: "storage-intake", type: "modelshare:intake:UploadIntake", node: { name: "storage" } });
    expect(item.after).toEqual(expect.arrayContaining(["storage-layout", "storage-catalog"]));
    expect(plan.findIndex((i) => i.name === "storage-catalog")).toBeLessThan(plan.indexOf(item));
    expect(item.outputs).toEqual({ staging: `${U}/models-staging`, rejected: `${U}/models-rejected` });
    expect(item.programs[0].removes).toBe(true);
  });

  it("writes a config naming each category's three folders, the owner, and the intake's ids to fill in on the node", () => {
    const text = renderIntakeConfig(site().storage, site().catalog);
    const filled = JSON.parse(text.replace("@intake_uid@", "999").replace("@intake_gid@", "998"));
    expect(filled).toMatchObject({ owner: [1000, 1000], intake: [999, 998], stable_seconds: 60, grace_seconds: 3600 });
    expect(filled.categories).toContainEqual({
      name: "loras",
      staging: `${U}/models-staging/loras`,
      store: `${STORE}/loras`,
      rejected: `${U}/models-rejected/loras`,
    });
  });

  it("runs its service as root (it only orchestrates) every half minute, idle I/O", () => {
    const { service, timer } = renderIntakeUnits();
    expect(service).toContain("ExecStart=/usr/bin/python3 -I /usr/local/lib/modelshare/intake.py run /etc/modelshare/intake.json");
    expect(service).not.toMatch(/^User=/m);
    expect(service).toContain("IOSchedulingClass=idle");
    expect(timer).toContain("OnUnitInactiveSec=30s");
  });

  it("is shellcheck-clean, and removes only its own files", () => {
    const s = site();
    const program = renderIntake(s.storage, s.catalog);
    // SC2016: the tool's Python text, quoted whole, holds backticks and `$` in its comments.
    expect(shellcheck([program], ["--exclude=SC2016"])).toBe("");
    expect(shellcheck([renderStorageLayout(s.storage)])).toBe("");
    expect(program).toMatch(/remove_privileged\(\) \{\n {2}intake_remove\n/);
    expect(program).toContain(`intake_report '60' 'checkpoints' '${U}/models-staging/checkpoints' '${STORE}/checkpoints'`);
  });
});

describe("the intake stack output", () => {
  it("names the staging and rejected folders with staging, and is absent with direct", async () => {
    const outputOf = async (intake: string) => {
      let out: unknown = "not declared";
      const config = {
        "modelshare:nodes": JSON.stringify([{ ...storageNode(), sshKey: "sshKey" }]),
        "modelshare:storage": JSON.stringify({ root: "/srv/m", intake }),
        "modelshare:sshKey": PRIVATE_KEY,
      };
      await declare({ stack: "intake", config, secretKeys: ["modelshare:sshKey"] }, async () => {
        const s = new Site("site", loadSite());
        out = s.intake ? await new Promise((resolve) => s.intake!.apply(resolve)) : undefined;
      });
      return out;
    };
    expect(await outputOf("staging")).toEqual({ staging: "/srv/m/storage-user/models-staging", rejected: "/srv/m/storage-user/models-rejected" });
    expect(await outputOf("direct")).toBeUndefined();
  });
});

describe("check's staging rows", () => {
  const F = "0123456789abcdef0123456789abcdef";
  const run = (lines: string[]) => ({ code: 0, stdout: [...lines.map((l) => `${F} ${l}`), `${F} drift=0`].join("\n") + "\n", stderr: "" });

  it("reads each row, the path unescaped, and makes held and stuck uploads exit 1 (waiting does not)", () => {
    expect(stagingRow("report: staging held 12 loras/a\\x20b.safetensors the store already has it")).toEqual({
      path: "loras/a b.safetensors",
      status: "held",
      size: 12,
      reason: "the store already has it",
    });
    expect(stagingRow("report: staging gone 12 x y")).toBeUndefined();
    const node = (lines: string[]): NodeCheck[] => {
      const c = parse("storage-intake", run(lines), F);
      if (typeof c === "string") throw new Error(c);
      return [{ node: "storage", host: "10.0.0.6", components: [c], sessions: 1, ms: 1 }];
    };
    const waiting = node(["report: staging waiting 5 loras/new.safetensors settled"]);
    expect(exitCode(waiting)).toBe(0);
    expect(formatText(waiting)).toContain("uploads in staging on storage: 1 (1 waiting for the intake)");
    const held = node(["report: staging waiting 5 loras/new.safetensors settled", "report: staging held 7 vae/v.pt the store already has this name"]);
    expect(exitCode(held)).toBe(1);
    expect(formatText(held)).toContain("  HELD vae/v.pt: the store already has this name");
    expect(formatText(held, "site")).toMatch(/\nwhat to do:\n {2}- an upload HELD or STUCK in staging: its line says what to do\n$/);
    expect(formatText(waiting)).not.toContain("what to do:");
    expect(exitCode(node(["report: staging stuck 7 vae/v.pt see the journal"]))).toBe(1);
  });
});
