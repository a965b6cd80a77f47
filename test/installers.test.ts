import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { ENV_FILE, renderEnvFile, renderNodeEnv } from "../components/installers/env";
import { renderOllamaDropIn, renderOllamaInstaller } from "../components/installers/ollama";
import { planSite } from "../components/plan";
import { renderComfyUIInstaller } from "../components/installers/comfyui";
import { renderStorageLayout } from "../components/storage/layout";
import { runProgram, tempRoot } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";
import { SEEDS_ROOT, seedsSite } from "./fixtures/site";

/** The seeds' storage node and gpu1 over NFS, two categories and a project. */
function seeds(): any {
  return { ...seedsSite(), storage: { root: SEEDS_ROOT, categories: ["checkpoints", "loras"] }, nfs: { enabled: true }, projects: ["spring-campaign"] };
}
const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });

describe("the node environment file", () => {
  it("names the storage as each node sees it, one NAME=value a line", () => {
    const site = parse(seeds());
    expect(renderEnvFile(site.storage, "/mnt/modelshare")).toBe(
      [
        "# modelshare: the shared storage as this node sees it. Written by modelshare; edits are replaced.",
        "MODELSHARE_ROOT=/mnt/modelshare",
        "MODELSHARE_MODELS=/mnt/modelshare/storage-models/models",
        "MODELSHARE_MODELS_CHECKPOINTS=/mnt/modelshare/storage-models/models/checkpoints",
        "MODELSHARE_MODELS_LORAS=/mnt/modelshare/storage-models/models/loras",
        "OLLAMA_MODELS=/mnt/modelshare/storage-models/ollama",
        "MODELSHARE_OUTPUTS=/mnt/modelshare/storage-user/output",
        "MODELSHARE_INPUTS=/mnt/modelshare/storage-user/input",
        "MODELSHARE_WORKFLOWS=/mnt/modelshare/storage-user/workflows",
        "MODELSHARE_PROJECTS=/mnt/modelshare/projects",
        "MODELSHARE_MEDIA_CACHE=/mnt/modelshare/media_cache",
      ].join("\n"),
    );
  });

  it("names the shared custom_nodes folder (code) only with comfyui.sharedCustomNodes", () => {
    const raw = seeds();
    expect(renderEnvFile(parse(raw).storage, "/mnt/modelshare")).not.toContain("CUSTOM_NODES");
    raw.comfyui = { sharedCustomNodes: true };
    const plan = planSite(parse(raw)).filter((p) => p.kind === "env");
    expect(plan.map((p) => p.programs[0].text.includes("MODELSHARE_COMFYUI_CUSTOM_NODES="))).toEqual([true, true]);
    expect(renderEnvFile(parse(raw).storage, "/mnt/modelshare", true)).toContain(
      "\nMODELSHARE_COMFYUI_CUSTOM_NODES=/mnt/modelshare/storage-models/comfyui/custom_nodes\n",
    );
  });

  it("goes to the storage node (its root) and every NFS worker (its mount), not to a worker without the storage", () => {
    const plan = planSite(parse(seeds()));
    expect(plan.filter((p) => p.kind === "env").map((p) => [p.name, /\nMODELSHARE_ROOT=(\S+)\n/.exec(p.programs[0].text)?.[1]])).toEqual([
      ["storage-env", "/vol/service/cw"],
      ["gpu1-env", "/mnt/modelshare"],
    ]);
    const noNfs = seeds();
    noNfs.nfs.enabled = false;
    expect(
      planSite(parse(noNfs))
        .filter((p) => p.kind === "env")
        .map((p) => p.name),
    ).toEqual(["storage-env"]);
  });

  it("a path with a space is single-quoted, and a shell that sources the file reads it back", () => {
    const raw = seeds();
    raw.storage.root = "/srv/AI Daten";
    raw.nfs.enabled = false;
    const file = renderEnvFile(parse(raw).storage, "/srv/AI Daten");
    expect(file).toContain("\nMODELSHARE_ROOT='/srv/AI Daten'\n");
    const dir = mkdtempSync(join(tmpdir(), "modelshare-env-"));
    writeFileSync(join(dir, "env"), file);
    const r = spawnSync("bash", ["-c", `set -a; . ./env; printf '%s\\n' "$MODELSHARE_MODELS_LORAS"`], { encoding: "utf8", cwd: dir });
    expect(r.stdout).toBe("/srv/AI Daten/storage-models/models/loras\n");
  });

  it("the program: shellcheck-clean; run without root it writes the user's own file, once, and remove takes it away", () => {
    const site = parse(seeds());
    const program = renderNodeEnv(site.storage, "/vol/service/cw");
    expect(shellcheck([program])).toBe("");
    const config = mkdtempSync(join(tmpdir(), "modelshare-xdg-"));
    chmodSync(config, 0o777);
    // Not the suite's MODELSHARE_ENV_FILE (see test/helpers/globalSetup.ts): the user's own file is the point here.
    const env = { ...process.env, XDG_CONFIG_HOME: config, HOME: "/nonexistent", MODELSHARE_LOCK_WAIT: "5", MODELSHARE_ENV_FILE: "" };
    const first = runProgram(program, "converge", { user: "nobody", env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`note: not root, so the environment file is ${config}/modelshare/env (not ${ENV_FILE})`);
    expect(readFileSync(join(config, "modelshare/env"), "utf8")).toBe(`${renderEnvFile(site.storage, "/vol/service/cw")}\n`);
    expect(runProgram(program, "converge", { user: "nobody", env }).changed).toBe(0);
    const removed = runProgram(program, "remove", { user: "nobody", env });
    expect(removed.code, removed.stderr).toBe(0);
    expect(existsSync(join(config, "modelshare"))).toBe(false);
  });
});

describe("modelshare:projects", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["a project id with a slash", (s) => { s.projects = ["a/b"]; }, "projects[0]", /one folder name, without \//],
    ["a project id that is hidden", (s) => { s.projects = [".secret"]; }, "projects[0]", /hidden folder name/],
    ["two ids that differ only in case", (s) => { s.projects = ["Spring", "spring"]; }, "projects[1]", /same folder as projects\[0\]/],
    ["an id Windows cannot open", (s) => { s.projects = ["CON"]; }, "projects[0]", /device name Windows reserves/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problemsOf(seeds, mutate), key, says);
  });
});

describe("Ollama pointed at the shared folder", () => {
  it("a drop-in with its [Service] header, OLLAMA_MODELS where this node sees the folder (a % doubled for systemd)", () => {
    expect(renderOllamaDropIn("/mnt/modelshare/storage-models/ollama")).toBe(
      '# modelshare: Ollama keeps its models in the shared folder\n[Service]\nEnvironment="OLLAMA_MODELS=/mnt/modelshare/storage-models/ollama"',
    );
    expect(renderOllamaDropIn("/srv/100%/ollama")).toContain("OLLAMA_MODELS=/srv/100%%/ollama");
  });

  it("planned on the storage node (local folder) and on NFS workers (under the mount); the program is shellcheck-clean and moves models as the ollama user", () => {
    const raw = seeds();
    raw.nodes[0].roles.push("worker");
    raw.ollama = { nodes: ["storage", "gpu1"] };
    const site = parse(raw);
    const plan = planSite(site).filter((p) => p.kind === "ollama");
    expect(plan.map((p) => [p.name, p.outputs.modelsDir])).toEqual([
      ["storage-ollama", "/vol/service/cw/storage-models/ollama"],
      ["gpu1-ollama", "/mnt/modelshare/storage-models/ollama"],
    ]);
    const program = renderOllamaInstaller(site.storage, "/mnt/modelshare");
    // Every check, the dry comparison included, before the drop-in is written or Ollama stopped.
    expect(program).toContain(
      [
        "  ollama_service",
        "  ollama_group '1000'",
        "  ollama_access '/mnt/modelshare/storage-models/ollama' '1000'",
        "  ollama_precheck '/mnt/modelshare/storage-models/ollama'",
        "  ollama_drop_in '# modelshare: Ollama keeps its models in the shared folder",
      ].join("\n"),
    );
    expect(program).toContain("  ollama_migrate '/mnt/modelshare/storage-models/ollama'\n  ollama_live\n");
    expect(program).toContain('run_as "$(id -u ollama)" "$(id -g ollama)" init ollama_merge "$ollama_old" "$1"');
    expect(program).not.toMatch(/chmod -R|chmod .*-R/);
    expect(shellcheck([program])).toBe("");
  });

  // prettier-ignore
  const rejected: Rejected[] = [
    ["an unknown node", (s) => { s.ollama = { nodes: ["gpu9"] }; }, "ollama.nodes[0]", /no node is named "gpu9"/],
    ["a node listed twice", (s) => { s.ollama = { nodes: ["gpu1", "GPU1"] }; }, "ollama.nodes[1]", /lists gpu1 twice/],
    ["a worker without NFS", (s) => { s.nfs.enabled = false; s.ollama = { nodes: ["gpu1"] }; }, "ollama.nodes[0]", /does not see the storage/],
    ["an unmanaged owner", (s) => { s.storage.owner = "unmanaged"; s.ollama = { nodes: ["storage"] }; }, "ollama.nodes", /owner's group/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problemsOf(seeds, mutate), key, says);
  });
});

describe("ComfyUIInstaller, run for real on a fake checkout", () => {
  const ADMIN_YAML = [
    "# the admin's own paths, with a comment to keep",
    "a111:",
    "    base_path: /opt/sd-webui/",
    "    checkpoints: models/Stable-diffusion  # their checkpoints",
    "",
  ].join("\n");

  function checkout(): { root: string; path: string; site: ReturnType<typeof parse> } {
    const root = tempRoot();
    const raw = {
      nodes: [{ name: "here", host: "localhost", roles: ["storage", "worker"] }],
      storage: { root, minFreeGB: 0, categories: ["checkpoints", "loras", "text_encoders"] },
      comfyui: { installs: [{ node: "here", path: `${root}-comfy`, python: "/usr/bin/python3" }] },
    };
    const site = parseSite(raw, { homedir: "/nonexistent" });
    expect(runProgram(renderStorageLayout(site.storage)).code).toBe(0);
    const path = `${root}-comfy`;
    for (const d of ["models/checkpoints", "models/loras", "models/clip", "models/text_encoders", "custom_nodes", "utils"])
      mkdirSync(join(path, d), { recursive: true });
    const files = ["main.py", "folder_paths.py", "utils/extra_config.py", "models/checkpoints/put_checkpoints_here", "models/loras/put_loras_here"];
    for (const f of files) writeFileSync(join(path, f), "");
    writeFileSync(join(path, "models/checkpoints/sd15.safetensors"), Buffer.alloc(200_000, 7));
    writeFileSync(join(path, "models/clip/t5.safetensors"), "t5-bytes");
    writeFileSync(join(path, "extra_model_paths.yaml"), ADMIN_YAML);
    return { root, path, site };
  }
  const program = (site: ReturnType<typeof parse>) => renderComfyUIInstaller(site.storage, site.storage.root, site.comfyui.installs[0]);
  const yaml = (file: string) =>
    spawnSync("/usr/bin/python3", ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", file], { encoding: "utf8" });

  it("adds its section beside the admin's (comments kept), moves the models into the store (placeholders stay for git); a second run changes nothing", () => {
    const { root, path, site } = checkout();
    const first = runProgram(program(site));
    expect(first.code, first.stderr).toBe(0);
    const text = readFileSync(join(path, "extra_model_paths.yaml"), "utf8");
    expect(text).toContain("# the admin's own paths, with a comment to keep");
    expect(text).toContain("# their checkpoints");
    expect(JSON.parse(yaml(join(path, "extra_model_paths.yaml")).stdout)).toEqual({
      a111: { base_path: "/opt/sd-webui/", checkpoints: "models/Stable-diffusion" },
      modelshare: {
        base_path: `${root}/storage-models/models`,
        is_default: true,
        download_model_base: `${root}/storage-models/models`,
        checkpoints: "checkpoints",
        loras: "loras",
        text_encoders: "text_encoders",
      },
    });
    expect(readFileSync(join(path, "extra_model_paths.yaml.modelshare-backup"), "utf8")).toBe(ADMIN_YAML);
    expect(readFileSync(join(root, "storage-models/models/checkpoints/sd15.safetensors"))).toEqual(Buffer.alloc(200_000, 7));
    expect(readFileSync(join(root, "storage-models/models/text_encoders/t5.safetensors"), "utf8")).toBe("t5-bytes"); // from models/clip, its alias
    expect(readdirSync(join(path, "models/checkpoints"))).toEqual(["put_checkpoints_here"]);
    expect(readdirSync(join(path, "models/clip"))).toEqual([]);
    expect(lstatSync(join(path, "models")).isSymbolicLink()).toBe(false);
    // A checkout of root's: root handed the models over, the storage owner moved them; the
    // checkout's folders and placeholders stay root's.
    expect(first.stdout).toContain(`changed: handed the models in ${path}/models/checkpoints to 1000:1000, who moves them`);
    for (const f of ["checkpoints/sd15.safetensors", "text_encoders/t5.safetensors"]) expect(lstatSync(join(root, "storage-models/models", f)).uid).toBe(1000);
    for (const f of ["models/checkpoints", "models/checkpoints/put_checkpoints_here", "models/clip"]) expect(lstatSync(join(path, f)).uid).toBe(0);
    expect(existsSync(join(path, "models/checkpoints/.modelshare-handover"))).toBe(false);
    const second = runProgram(program(site));
    expect(second.changed, second.stdout).toBe(0);
  });

  it("custom_nodes (code) is named only with comfyui.sharedCustomNodes, and only while root alone can write it and every folder above it", () => {
    const { root, path, site } = checkout();
    const shared = () => renderComfyUIInstaller(site.storage, site.storage.root, site.comfyui.installs[0], true);
    const nodes = join(root, "storage-models/comfyui/custom_nodes");
    // The skeleton: the root and the folders above the leaves root's, 0755; custom_nodes too.
    for (const d of [root, join(root, "storage-models"), join(root, "storage-models/comfyui"), nodes])
      spawnSync("bash", ["-c", `chown 0:0 '${d}' && chmod 0755 '${d}'`]);
    expect(runProgram(program(site)).code).toBe(0);
    expect(JSON.parse(yaml(join(path, "extra_model_paths.yaml")).stdout).modelshare.custom_nodes).toBeUndefined();
    const on = runProgram(shared());
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(yaml(join(path, "extra_model_paths.yaml")).stdout).modelshare.custom_nodes).toBe(nodes);
    // The owner (every SMB user) could write it: refused before anything changes.
    spawnSync("bash", ["-c", `chown 1000:1000 '${nodes}'`]);
    writeFileSync(join(path, "extra_model_paths.yaml"), ADMIN_YAML);
    const r = runProgram(shared());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`modelshare: ${nodes} is `);
    expect(r.stderr).toContain(` 755, so others than root can change what is in ${nodes}, code every ComfyUI that names it would import`);
    expect(readFileSync(join(path, "extra_model_paths.yaml"), "utf8")).toBe(ADMIN_YAML);
  });

  it("every check (checkout, unit, custom_nodes) comes before anything changes; the models move as the program decides, not through comfyui_as", () => {
    const { site } = checkout();
    const text = renderComfyUIInstaller(site.storage, "/mnt/modelshare", { ...site.comfyui.installs[0], service: "comfyui.service" }, true);
    const steps = text
      .slice(text.indexOf("converge_privileged() {"), text.indexOf("converge_owner() {"))
      .split("\n")
      .map((l) => l.trim().split(" ")[0])
      .filter((w) => w.startsWith("comfyui_"));
    expect(steps).toEqual(["comfyui_checkout", "comfyui_unit", "comfyui_code_dir", "comfyui_as", "comfyui_migrate", "comfyui_output"]);
    expect(shellcheck([text])).toBe("");
  });

  it("the switch needs a managed owner (only then is custom_nodes root's)", () => {
    const raw = seeds();
    raw.storage.owner = "unmanaged";
    raw.comfyui = { sharedCustomNodes: true };
    expectProblem(
      problemsOf(
        () => raw,
        () => undefined,
      ),
      "comfyui.sharedCustomNodes",
      /needs storage\.owner as \{uid, gid\}/,
    );
  });

  it("with PyYAML alone (no ruamel.yaml) the section is written too, and the run says the comments are gone and where the copy is", () => {
    const { path, site } = checkout();
    // A Python that has PyYAML and nothing else: a venv without the system's packages.
    const venv = mkdtempSync(join(tmpdir(), "modelshare-venv-"));
    expect(spawnSync("/usr/bin/python3", ["-m", "venv", "--without-pip", venv]).status).toBe(0);
    mkdirSync(join(venv, "only"));
    symlinkSync("/usr/lib/python3/dist-packages/yaml", join(venv, "only/yaml"));
    const install = { ...site.comfyui.installs[0], python: join(venv, "bin/python") };
    const r = runProgram(renderComfyUIInstaller(site.storage, site.storage.root, install), "converge", {
      env: { ...process.env, PYTHONPATH: join(venv, "only") },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `note: PyYAML does not keep comments: the comments in ${path}/extra_model_paths.yaml are gone (a copy of the file is beside it)`,
    );
    expect(JSON.parse(yaml(join(path, "extra_model_paths.yaml")).stdout).a111).toEqual({ base_path: "/opt/sd-webui/", checkpoints: "models/Stable-diffusion" });
    expect(readFileSync(join(path, "extra_model_paths.yaml.modelshare-backup"), "utf8")).toBe(ADMIN_YAML);
  });

  it("a checkout whose loader predates is_default (no utils/extra_config.py) gets the section without it, and is told why", () => {
    const { path, site } = checkout();
    rmSync(join(path, "utils/extra_config.py"));
    const r = runProgram(program(site));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`note: ${path} predates ComfyUI's is_default (it has no utils/extra_config.py)`);
    const section = JSON.parse(yaml(join(path, "extra_model_paths.yaml")).stdout).modelshare;
    expect(section.is_default).toBeUndefined();
    expect(section.download_model_base).toBe(section.base_path);
    expect(runProgram(program(site)).changed).toBe(0);
  });

  it("invalid YAML of the admin's stops the run with the parser's words and is left as it was", () => {
    const { path, site } = checkout();
    writeFileSync(join(path, "extra_model_paths.yaml"), "a111:\n  base_path: [unclosed\n");
    const r = runProgram(program(site));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/extra_model_paths\.yaml is not valid YAML, so modelshare leaves it as it is: /);
    expect(readFileSync(join(path, "extra_model_paths.yaml"), "utf8")).toBe("a111:\n  base_path: [unclosed\n");
  });

  it("a model whose name holds other content in the store stops the run listing it, nothing moved", () => {
    const { root, path, site } = checkout();
    writeFileSync(join(root, "storage-models/models/checkpoints/sd15.safetensors"), "other");
    const r = runProgram(program(site));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("these names hold different content:\n  sd15.safetensors\n");
    expect(existsSync(join(path, "models/checkpoints/sd15.safetensors"))).toBe(true);
  });

  it("destroy removes only modelshare's section; the check variant reports a section removed by hand", () => {
    const { path, site } = checkout();
    expect(runProgram(program(site)).code).toBe(0);
    writeFileSync(join(path, "extra_model_paths.yaml"), ADMIN_YAML);
    const check = runProgram(program(site), "check");
    expect(check.stdout).toContain(`drift: ${path}/extra_model_paths.yaml lacks modelshare's section as the config gives it`);
    expect(runProgram(program(site)).code).toBe(0);
    expect(runProgram(program(site), "remove").code).toBe(0);
    expect(JSON.parse(yaml(join(path, "extra_model_paths.yaml")).stdout)).toEqual({
      a111: { base_path: "/opt/sd-webui/", checkpoints: "models/Stable-diffusion" },
    });
    expect(shellcheck([program(site)])).toBe("");
  });
});
