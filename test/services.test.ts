import { mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { planSite } from "../components/plan";
import { renderContainerCheck } from "../components/services/container";
import { renderDockerHost } from "../components/services/host";
import { UI_FOLDERS } from "../components/services/mapping";
import { COMFYUI_CATEGORIES } from "../components/storage/schema";
import { containerSpec, deviceRequests, SPEC_LABEL } from "../components/services/spec";
import { sshDir, sshOpts, writeSshFiles } from "../components/services/sshFiles";
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { declare, isSecretValue, reveal, type Declared } from "./harness/declare";
import { createArgs } from "./harness/docker";
import { runProgram } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";
import { COMFYUI_IMAGE as COMFY, flatConfig, HOST_KEY as KEY, PRIVATE_KEY, SECRET_MARKER, seedsWithComfyUI as seeds } from "./fixtures/site";

const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });
const problems = (mutate: (site: any) => void) => problemsOf(seeds, mutate);
const byName = (rs: Declared[], name: string) => {
  const r = rs.find((x) => x.name === name);
  if (!r) throw new Error(`no resource ${name} among ${rs.map((x) => x.name).join(", ")}`);
  return r;
};

describe("modelshare:services", () => {
  it("fills in the documented defaults", () => {
    const site = parse(seeds());
    expect(site.services.comfyui).toEqual({
      enabled: true,
      target: "nodes",
      image: COMFY,
      pull: "missing",
      nodes: [
        { name: "gpu1", gpus: "all" },
        { name: "gpu2", gpus: "none" },
      ],
      ports: [{ host: 8188, container: 8188, protocol: "tcp" }],
      bind: "127.0.0.1",
      allowFrom: [],
      env: {},
      modelsWritable: false,
      allowRootUser: false,
      paths: { models: "/models", outputs: "/outputs", inputs: "/inputs", workflows: "/workflows" },
    });
    expect(site.services.ollama).toMatchObject({ enabled: false, nodes: [], ports: [{ host: 11434, container: 11434 }] });
  });

  // prettier-ignore
  const rejected: Rejected[] = [
    ["a service on a node that does not exist", (s) => { s.services.comfyui.nodes = ["gpu9"]; }, "services.comfyui.nodes[0]", /no node is named "gpu9"/],
    ["a service on a node that is not a worker", (s) => { s.services.comfyui.nodes = ["storage"]; }, "services.comfyui.nodes[0]", /has no worker role/],
    ["a node listed twice", (s) => { s.services.comfyui.nodes = ["gpu1", "GPU1"]; }, "services.comfyui.nodes[1]", /lists gpu1 twice/],
    ["a worker without NFS", (s) => { s.nfs.enabled = false; }, "services.comfyui.nodes[0]", /nfs\.enabled is false, so it has no storage/],
    ["writable models over a read-only NFS store", (s) => { s.nfs.modelsReadOnly = true; s.services.comfyui.modelsWritable = true; }, "services.comfyui.modelsWritable", /nfs\.modelsReadOnly/],
    ["an enabled service without nodes", (s) => { s.services.comfyui.nodes = []; }, "services.comfyui.nodes", /is empty/],
    ["a UI without an image", (s) => { delete s.services.comfyui.image; }, "services.comfyui.image", /no default image for ComfyUI/],
    ["an image that is no image reference", (s) => { s.services.comfyui.image = "Comfy UI:latest"; }, "services.comfyui.image", /docker image reference/],
    ["an unmanaged owner without a user", (s) => { s.storage.owner = "unmanaged"; }, "services.comfyui.user", /storage\.owner is unmanaged/],
    ["a user that is not uid:gid", (s) => { s.services.comfyui.user = "ada"; }, "services.comfyui.user", /uid:gid in numbers/],
    ["root as the container's user without the opt-in", (s) => { s.services.comfyui.user = "0:0"; }, "services.comfyui.user", /root's uid or gid.*allowRootUser: true/],
    ["an output folder the layout does not make", (s) => { s.storage.outputs = ["Fooocus"]; }, "services.comfyui.enabled", /add "ComfyUI" to storage\.outputs/],
    ["a port used twice on one node", (s) => { s.services.forge = { enabled: true, image: "x/forge", nodes: ["gpu1"], ports: [{ host: 8188, container: 7860 }] }; }, "services.forge.ports[0].host", /tcp port 8188 on gpu1 is already services\.comfyui\.ports\[0\]'s/],
    ["a relative container path", (s) => { s.services.comfyui.paths = { models: "models" }; }, "services.comfyui.paths.models", /absolute path inside the container/],
    ["a system container path", (s) => { s.services.comfyui.paths = { outputs: "/etc/out" }; }, "services.comfyui.paths.outputs", /inside the image's system folder \/etc/],
    ["the container root", (s) => { s.services.comfyui.paths = { inputs: "/" }; }, "services.comfyui.paths.inputs", /the container's root folder/],
    ["two paths that overlap", (s) => { s.services.comfyui.paths = { models: "/data", outputs: "/data/out" }; }, "services.comfyui.paths.outputs", /overlaps paths\.models/],
    ["OLLAMA_MODELS in env", (s) => { s.services.ollama = { enabled: true, nodes: ["gpu1"], env: { OLLAMA_MODELS: "/x" } }; }, "services.ollama.env.OLLAMA_MODELS", /set by modelshare/],
    ["an env name that is not one", (s) => { s.services.comfyui.env = { "A-B": "1" }; }, "services.comfyui.env", /environment variable name/],
    ["gpus that are none of the forms", (s) => { s.services.comfyui.nodes = [{ name: "gpu1", gpus: "some" }]; }, "services.comfyui.nodes[0]", /node name, or \{name, gpus\}|all, none, a number/],
    ["an unknown pull policy", (s) => { s.services.comfyui.pull = "always"; }, "services.comfyui.pull", /missing or never/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problems(mutate), key, says);
  });

  it("accepts the common single box: the storage node is also the worker, without NFS", () => {
    const raw = seeds();
    raw.nodes = [{ name: "box", host: "192.168.0.6", hostKey: KEY, roles: ["storage", "worker"] }];
    raw.nfs.enabled = false;
    raw.services.comfyui.nodes = ["box"];
    const plan = planSite(parse(raw));
    const svc = plan.find((p) => p.kind === "service");
    expect(svc?.spec?.mounts[0].source).toBe("/vol/service/cw/storage-models/models/checkpoints");
    const docker = plan.find((p) => p.kind === "docker");
    expect(docker?.name).toBe("box-docker");
    expect(docker?.programs[0].text).not.toContain("\n  docker_after_mount "); // the storage node mounts nothing
    expect(docker?.after).toEqual(["box-layout", "box-links-storage-user/models-upload"]);
  });
});

describe("where each UI finds each category", () => {
  it("maps only ComfyUI's own category names, and never two categories of one site to one folder", () => {
    for (const [ui, table] of Object.entries(UI_FOLDERS)) {
      for (const category of Object.keys(table)) expect(COMFYUI_CATEGORIES, `${ui}: ${category}`).toContain(category);
      // Only aliases (which one site cannot both keep) may share a folder.
      const aliases = new Set(["clip|text_encoders", "controlnet|t2i_adapter", "diffusion_models|unet"]);
      const folders = Object.entries(table);
      folders.forEach(([a, fa], i) =>
        folders.slice(i + 1).forEach(([b, fb]) => {
          if (fa === fb) expect(aliases.has([a, b].sort().join("|")), `${ui}: ${a} and ${b} share ${fa}`).toBe(true);
        }),
      );
    }
  });

  it("ComfyUI gets each category at its own name, read-only, plus outputs, inputs (read-only) and workflows", () => {
    const site = parse(seeds());
    const spec = containerSpec("comfyui", site.services.comfyui, "all", site.storage, "/mnt/modelshare");
    const M = "/mnt/modelshare/storage-models/models";
    expect(spec.mounts).toEqual([
      ...site.storage.categories.map((c) => ({ type: "bind", source: `${M}/${c}`, target: `/models/${c}`, readOnly: true })),
      { type: "bind", source: "/mnt/modelshare/storage-user/output/ComfyUI", target: "/outputs", readOnly: false },
      { type: "bind", source: "/mnt/modelshare/storage-user/input", target: "/inputs", readOnly: true },
      { type: "bind", source: "/mnt/modelshare/storage-user/workflows", target: "/workflows", readOnly: false },
    ]);
    expect(spec).toMatchObject({
      name: "modelshare-comfyui",
      image: COMFY,
      local: false,
      user: "1000:1000",
      envs: [],
      restart: "unless-stopped",
      ports: [{ internal: 8188, external: 8188, protocol: "tcp", ip: "127.0.0.1" }],
      deviceRequests: [{ driver: "nvidia", count: -1, capabilities: ["gpu"] }],
    });
    expect(spec.labels.map((l) => l.label)).toEqual(["org.modelshare.service", SPEC_LABEL]);
  });

  it("Forge gets A1111's folders (embeddings beside models/), Fooocus its config.txt names; writable when asked", () => {
    const raw = seeds();
    raw.storage.categories = ["checkpoints", "diffusion_models", "loras", "embeddings", "text_encoders", "upscale_models", "audio_encoders"];
    const site = parse(raw);
    const forge = containerSpec(
      "forge",
      { ...site.services.forge, image: "x/forge", paths: { ...site.services.forge.paths, models: "/app/models" } },
      "none",
      site.storage,
      "/srv",
    );
    expect(forge.mounts.slice(0, -3).map((m) => [m.source.split("/").pop(), m.target, m.readOnly])).toEqual([
      ["checkpoints", "/app/models/Stable-diffusion/sd", true],
      ["diffusion_models", "/app/models/Stable-diffusion/unet", true],
      ["loras", "/app/models/Lora", true],
      ["embeddings", "/app/embeddings", true],
      ["text_encoders", "/app/models/text_encoder", true],
      ["upscale_models", "/app/models/ESRGAN", true],
    ]);
    const fooocus = containerSpec("fooocus", { ...site.services.fooocus, modelsWritable: true }, "none", site.storage, "/srv");
    expect(fooocus.mounts.slice(0, -3).map((m) => [m.target, m.readOnly])).toEqual([
      ["/models/checkpoints", false],
      ["/models/loras", false],
      ["/models/embeddings", false],
      ["/models/upscale_models", false],
    ]);
    expect(fooocus.mounts.at(-3)?.source).toBe("/srv/storage-user/output/Fooocus");
  });

  it("Ollama gets its one models folder and OLLAMA_MODELS pointing at it; env is sorted and kept", () => {
    const site = parse(seeds());
    const spec = containerSpec("ollama", { ...site.services.ollama, env: { OLLAMA_KEEP_ALIVE: "1h" } }, 2, site.storage, "/mnt/modelshare");
    expect(spec.image).toBe("ollama/ollama");
    expect(spec.mounts).toEqual([{ type: "bind", source: "/mnt/modelshare/storage-models/ollama", target: "/models", readOnly: true }]);
    expect(spec.envs).toEqual(["OLLAMA_KEEP_ALIVE=1h", "OLLAMA_MODELS=/models"]);
    expect(spec.deviceRequests).toEqual([{ driver: "nvidia", count: 2, capabilities: ["gpu"] }]);
  });

  it("GPUs: none asks for nothing, device ids ask for exactly those", () => {
    expect(deviceRequests("none")).toEqual([]);
    expect(deviceRequests(["0", "GPU-3a23c669"])).toEqual([{ driver: "nvidia", deviceIds: ["0", "GPU-3a23c669"], capabilities: ["gpu"] }]);
  });

  it("the spec digest changes with anything the container is made from", () => {
    const site = parse(seeds());
    const digest = (svc: typeof site.services.comfyui) => containerSpec("comfyui", svc, "none", site.storage, "/m").labels[1].value;
    const base = digest(site.services.comfyui);
    expect(digest(site.services.comfyui)).toBe(base);
    expect(digest({ ...site.services.comfyui, env: { A: "1" } })).not.toBe(base);
    expect(digest({ ...site.services.comfyui, modelsWritable: true })).not.toBe(base);
  });
});

describe("docker on a node: the program", () => {
  const site = parse(seeds());
  const plan = planSite(site);
  const gpu1 = plan.find((p) => p.kind === "docker" && p.node.name === "gpu1");

  it("installs docker.io, starts it after the NFS mount at boot, and checks the SSH user; shellcheck-clean", () => {
    expect(gpu1?.after).toEqual(["gpu1-nfs-mount"]);
    const text = gpu1?.programs[0].text ?? "";
    expect(text).toContain("\n  ensure_packages 'docker.io'\n  docker_after_mount 'mnt-modelshare.mount'\n  ensure_service 'docker'\n  docker_user 'root'\n");
    expect(text).not.toContain("\n  docker_image '"); // pull: missing
    expect(text).toContain("\n  docker_bind_source '/mnt/modelshare/storage-models/models/checkpoints'\n");
    expect(text).toContain("\n  docker_firewall '# modelshare: who may reach the service ports");
    expect(shellcheck([text])).toBe("");
  });

  it("the programs the check tool runs: docker per node, and each container", () => {
    const names = plan.flatMap((p) => p.programs.map((x) => x.name)).filter((n) => /docker|comfyui/.test(n));
    expect(names).toEqual(["gpu1-docker-converge", "gpu1-comfyui-container", "gpu2-docker-converge", "gpu2-comfyui-container"]);
  });

  /** A stand-in docker CLI on PATH that answers from files in `dir`. */
  function fakeDocker(answers: Record<string, string>): NodeJS.ProcessEnv {
    const dir = mkdtempSync(join(tmpdir(), "modelshare-docker-"));
    const cases = Object.entries(answers)
      .map(([k, v]) => `  ${JSON.stringify(k)}) printf '%s\\n' ${JSON.stringify(v)}; exit 0 ;;`)
      .join("\n");
    writeFileSync(join(dir, "docker"), `#!/bin/bash\ncase "$1 $2" in\n${cases}\n  *) exit 1 ;;\nesac\n`, { mode: 0o755 });
    return { ...process.env, PATH: `${dir}:${process.env.PATH}`, MODELSHARE_LOCK_WAIT: "5" };
  }

  it("an image declared pull: never that is not on the node stops the run, naming it and the way out", () => {
    const spec = containerSpec("comfyui", { ...site.services.comfyui, pull: "never" }, "none", site.storage, "/m");
    const text = renderDockerHost("root", [spec], site.storage, []);
    const program = text.replace(/\n {2}ensure_packages 'docker\.io'\n {2}ensure_service 'docker'\n/, "\n").replace("\n  docker_firewall '", "\n  : '");
    const r = runProgram(program, "converge", { env: fakeDocker({}) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`comfyui's image ${COMFY} is not on`);
    expect(r.stderr).toContain("services.comfyui.pull is never: build or load it there");
    expect(runProgram(program, "converge", { env: fakeDocker({ "image inspect": "sha256:abc" }) }).changed).toBe(0);
  });

  it("the SSH user must be root or in the docker group", () => {
    const text = renderDockerHost("nobody", [], site.storage, []).replace(/\n {2}ensure_packages 'docker\.io'\n {2}ensure_service 'docker'\n/, "\n");
    const r = runProgram(text, "converge", { env: fakeDocker({}) });
    expect(r.stderr).toContain("the docker provider connects as nobody, who is neither root nor in the docker group");
  });

  it("a container's check: missing, stopped, or made from another spec is drift; the declared one running is none", () => {
    const spec = containerSpec("comfyui", site.services.comfyui, "none", site.storage, "/m");
    const digest = spec.labels[1].value;
    const check = renderContainerCheck(spec, site.storage);
    expect(shellcheck([check])).toBe("");
    const drift = (answers: Record<string, string>) =>
      runProgram(check, "check", { env: fakeDocker(answers) })
        .stdout.split("\n")
        .filter((l) => l.startsWith("drift"));
    expect(drift({})).toEqual(["drift: container modelshare-comfyui is missing", "drift=1"]);
    expect(drift({ "inspect --type": `exited ${digest}` })).toEqual(["drift: container modelshare-comfyui is exited, not running", "drift=1"]);
    expect(drift({ "inspect --type": "running 0123456789abcdef" })).toEqual([
      `drift: container modelshare-comfyui was made from another spec (0123456789abcdef, declared ${digest})`,
      "drift=1",
    ]);
    expect(drift({ "inspect --type": `running ${digest}` })).toEqual(["drift=0"]);
  });
});

describe("the docker provider's SSH files", () => {
  it("the key 0600 and a known_hosts that pins the host key, in a 0700 folder of the user's runtime dir", () => {
    const runtime = mkdtempSync(join("/dev/shm", "modelshare-xdg-"));
    const dir = sshDir("modelshare", "prod", { XDG_RUNTIME_DIR: runtime });
    expect(dir).toBe(join(runtime, "modelshare-ssh", "modelshare-prod"));
    const files = writeSshFiles(dir, { name: "gpu2", host: "gpu2.lan", port: 2222, hostKey: `${KEY} root@gpu2` }, "KEY-TEXT");
    expect(readFileSync(files.key as string, "utf8")).toBe("KEY-TEXT\n");
    expect(statSync(files.key as string).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(files.knownHosts, "utf8")).toBe(`[gpu2.lan]:2222 ${KEY}\n`);
    expect(sshOpts(files, true)).toEqual([
      "-i",
      files.key,
      "-o",
      "BatchMode=yes",
      "-o",
      "ConnectTimeout=10",
      "-o",
      `UserKnownHostsFile=${files.knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "StrictHostKeyChecking=yes",
    ]);
    expect(sshOpts(files, false)).toContain("StrictHostKeyChecking=no");
  });

  it("refuses a folder someone else could enter or planted as a link", () => {
    const runtime = mkdtempSync(join("/dev/shm", "modelshare-xdg-"));
    mkdirSync(join(runtime, "modelshare", "p-s"), { recursive: true, mode: 0o755 });
    expect(() => writeSshFiles(join(runtime, "modelshare", "p-s"), { name: "n", host: "h", port: 22 }, "K")).toThrow(
      /must be a real folder of uid \d+ with mode 0700/,
    );
    const other = mkdtempSync(join("/dev/shm", "modelshare-xdg-"));
    symlinkSync(mkdtempSync(join(tmpdir(), "elsewhere-")), join(other, "modelshare"));
    expect(() => writeSshFiles(join(other, "modelshare", "p-s"), { name: "n", host: "h", port: 22 }, "K")).toThrow(/symbolic link/);
  });
});

describe("services under mocks", () => {
  const config = () => {
    return flatConfig(seeds(), { sshKey: PRIVATE_KEY });
  };

  it("per worker: docker, a provider reaching it over SSH once installed, each container after the mount; the key stays secret", async () => {
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join("/dev/shm", "modelshare-xdg-"));
    let services: unknown;
    const rs = await declare({ stack: "seeds", config: config(), secretKeys: ["modelshare:sshKey"] }, async () => {
      const site = new Site("site", loadSite());
      services = await new Promise((resolve) => (site.services as any).apply(resolve));
    });
    expect(services).toEqual({
      gpu1: { comfyui: { container: "modelshare-comfyui", url: "http://127.0.0.1:8188" } },
      gpu2: { comfyui: { container: "modelshare-comfyui", url: "http://127.0.0.1:8188" } },
    });
    const install = byName(rs, "gpu2-docker-converge");
    const provider = byName(rs, "gpu2-docker-provider");
    expect(provider.type).toBe("pulumi:providers:docker");
    expect(provider.dependencies).toContain(install.urn); // configured from the install's output
    expect(byName(rs, "gpu2-docker").dependencies).toContain(byName(rs, "gpu2-nfs-mount-converge").urn);
    const dir = join(process.env.XDG_RUNTIME_DIR, "modelshare-ssh", "modelshare-seeds");
    expect(provider.inputs.host).toBe("ssh://root@gpu2.lan:2222");
    // Provider config reaches the engine as text (a list as JSON), as for every provider.
    expect(JSON.parse(provider.inputs.sshOpts as string)).toEqual([
      "-i",
      `${dir}/gpu2.key`,
      "-o",
      "BatchMode=yes",
      "-o",
      "ConnectTimeout=10",
      "-o",
      `UserKnownHostsFile=${dir}/gpu2.known_hosts`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "StrictHostKeyChecking=yes",
    ]);
    expect(readFileSync(`${dir}/gpu2.key`, "utf8")).toBe(PRIVATE_KEY);

    const container = byName(rs, "gpu1-comfyui-container");
    expect(container.type).toBe("docker:index/container:Container");
    expect(container.provider).toContain(byName(rs, "gpu1-docker-provider").urn);
    expect(container.deleteBeforeReplace).toBe(true);
    const parent = byName(rs, "gpu1-comfyui");
    expect(parent.dependencies).toEqual(expect.arrayContaining([byName(rs, "gpu1-docker-converge").urn, byName(rs, "gpu1-nfs-mount-converge").urn]));
    const site = parse(seeds());
    const spec = containerSpec("comfyui", site.services.comfyui, "all", site.storage, "/mnt/modelshare");
    expect(container.inputs).toMatchObject({
      name: spec.name,
      image: COMFY,
      user: "1000:1000",
      mounts: spec.mounts,
      restart: "unless-stopped",
      mustRun: true,
      ports: spec.ports,
      deviceRequests: spec.deviceRequests,
      labels: spec.labels,
    });
    expect(byName(rs, "gpu2-comfyui-container").inputs.deviceRequests).toEqual([]);
    // The private key reaches the engine only as a secret, in the commands' connections.
    for (const r of rs) {
      for (const [k, v] of Object.entries(r.inputs)) {
        if (JSON.stringify(reveal(v)).includes(SECRET_MARKER)) expect(isSecretValue(v), `${r.name}.${k}`).toBe(true);
      }
    }
  });
});

describe("the converge harness's docker provider", () => {
  it("creates a container with the flags that carry each declared input: bind mounts, read-only, user, env, ports, restart, GPUs, labels", () => {
    const site = parse(seeds());
    const raw = containerSpec(
      "comfyui",
      { ...site.services.comfyui, env: { A: "1,2" }, ports: [{ host: 80, container: 8188, protocol: "tcp" }] },
      ["0", "1"],
      site.storage,
      "/m",
    );
    const spec = { ...raw, mounts: [{ type: "bind" as const, source: "/m/a,b", target: "/models/x", readOnly: true }, raw.mounts.at(-1)!] };
    expect(createArgs(spec)).toEqual([
      "create",
      "--name",
      "modelshare-comfyui",
      "--user",
      "1000:1000",
      "--env",
      "A=1,2",
      "--mount",
      'type=bind,"source=/m/a,b",target=/models/x,readonly',
      "--mount",
      "type=bind,source=/m/storage-user/workflows,target=/workflows",
      "--publish",
      "127.0.0.1:80:8188/tcp",
      "--restart",
      "unless-stopped",
      "--gpus",
      '"device=0,1",capabilities=gpu',
      "--label",
      "org.modelshare.service=comfyui",
      "--label",
      `org.modelshare.spec=${raw.labels[1].value}`,
      COMFY,
    ]);
  });
});
