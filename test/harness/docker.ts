import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { quote } from "../../components/shell/quote";
import { reveal, type Declared } from "./declare";

/**
 * The docker provider, as the harness runs it (the engine's pulumi-resource-docker cannot run
 * here). A provider is reached the way the real one reaches it: `ssh://user@host:port` with
 * its `sshOpts`, through the system ssh client (so the key file and the pinned known_hosts the
 * program wrote are what let it in), or `unix://` locally. A Container is made with the docker
 * CLI from exactly its declared inputs. Unlike commands, containers have state, as in the
 * engine: what was created, from which inputs, through which provider (see README.md).
 */
export const CONTAINER = "docker:index/container:Container";

export interface DockerProvider {
  host: string;
  sshOpts: string[];
}

interface Deployed {
  name: string;
  provider: DockerProvider;
  digest: string;
  resource: string;
}

/** The harness's state: containers it created, by URN (one per test process, like a stack). */
const deployed = new Map<string, Deployed>();

/** The provider resource a custom resource uses (`provider` is `urn::id`). */
export function providerResource(r: Declared, resources: Declared[]): Declared | undefined {
  if (!r.provider) return undefined;
  const urn = r.provider.slice(0, r.provider.lastIndexOf("::"));
  return resources.find((x) => x.urn === urn);
}

export function providerOf(r: Declared, resources: Declared[]): DockerProvider {
  const p = providerResource(r, resources);
  if (!p || p.type !== "pulumi:providers:docker") throw new Error(`${r.name}: no docker provider (the default provider would talk to this machine's docker)`);
  const inputs = reveal(p.inputs) as Record<string, string>;
  return { host: inputs.host, sshOpts: inputs.sshOpts ? (JSON.parse(inputs.sshOpts) as string[]) : [] };
}

/** Runs `docker ARGS` through the provider's connection; resolves with its exit and output. */
export function dockerCli(p: DockerProvider, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let argv: string[];
  if (p.host.startsWith("unix://")) {
    argv = ["docker", "-H", p.host, ...args];
  } else {
    const url = new URL(p.host);
    if (url.protocol !== "ssh:") throw new Error(`the harness reaches docker over ssh:// or unix:// only, not ${p.host}`);
    // As docker's own ssh helper: ssh [opts] -l user -p port -- host COMMAND; the remote shell
    // parses the command, so every word is quoted.
    argv = [
      "ssh",
      ...p.sshOpts,
      "-l",
      url.username,
      "-p",
      url.port || "22",
      "--",
      url.hostname.replace(/^\[|\]$/g, ""),
      ["docker", ...args].map(quote).join(" "),
    ];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

// docker's --mount and --gpus take CSV: a field holding a comma or quote is quoted.
const csv = (fields: string[]) => fields.map((f) => (/[",]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f)).join(",");

/** `docker create` arguments for a Container's inputs: the same semantics as the provider's API call. */
export function createArgs(inputs: Record<string, any>): string[] {
  const args = ["create", "--name", inputs.name];
  if (inputs.user) args.push("--user", inputs.user);
  for (const e of inputs.envs ?? []) args.push("--env", e);
  for (const m of inputs.mounts ?? []) {
    if (m.type !== "bind") throw new Error(`the harness makes bind mounts only, not ${m.type}`);
    // A bind mount's source must exist: docker refuses it otherwise (never makes it, unlike -v).
    args.push("--mount", csv([`type=bind`, `source=${m.source}`, `target=${m.target}`, ...(m.readOnly ? ["readonly"] : [])]));
  }
  for (const p of inputs.ports ?? []) args.push("--publish", `${p.ip ? `${p.ip}:` : ""}${p.external ?? ""}:${p.internal}/${p.protocol ?? "tcp"}`);
  if (inputs.restart) args.push("--restart", inputs.restart);
  for (const d of inputs.deviceRequests ?? []) {
    const which = d.deviceIds?.length ? `device=${d.deviceIds.join(",")}` : d.count === -1 ? "all" : `count=${d.count}`;
    args.push("--gpus", d.driver === "nvidia" ? csv([which, ...(d.capabilities?.length ? [`capabilities=${d.capabilities.join(",")}`] : [])]) : which);
  }
  for (const l of inputs.labels ?? []) args.push("--label", `${l.label}=${l.value}`);
  args.push(inputs.image, ...(inputs.command ?? []));
  return args;
}

const digestOf = (r: Declared, p: DockerProvider) =>
  createHash("sha256")
    .update(JSON.stringify([reveal(r.inputs), p]))
    .digest("hex");

async function remove(d: Deployed, docker = dockerCli): Promise<void> {
  const r = await docker(d.provider, ["rm", "--force", d.name]);
  if (r.code !== 0 && !/No such container/.test(r.stderr)) throw new Error(`${d.resource}: docker rm ${d.name}: ${r.stderr.trim()}`);
}

/**
 * Converges one Container: unchanged inputs and running: nothing; changed inputs: replaced,
 * delete first (deleteBeforeReplace, as the name is fixed); otherwise created and started.
 * As with mustRun, a container that does not keep running fails the step.
 */
export async function convergeContainer(
  r: Declared,
  resources: Declared[],
): Promise<{ changed: number; stdout: string; stderr: string; code: number; dials: number }> {
  const provider = providerOf(r, resources);
  // Each docker CLI call is one ssh session (the provider's Go client keeps one connection).
  let dials = 0;
  const docker = (p: DockerProvider, args: string[]) => {
    dials += p.host.startsWith("unix://") ? 0 : 1;
    return dockerCli(p, args);
  };
  const inputs = reveal(r.inputs) as Record<string, any>;
  const digest = digestOf(r, provider);
  const before = deployed.get(r.urn);
  if (before?.digest === digest) {
    const state = await docker(provider, ["inspect", "--type", "container", "--format", "{{.State.Running}}", inputs.name]);
    if (state.stdout.trim() === "true") return { changed: 0, stdout: "changed=0\n", stderr: "", code: 0, dials };
  }
  const lines: string[] = [];
  if (before) {
    await remove(before, docker);
    deployed.delete(r.urn);
    lines.push(`changed: removed ${before.name} (replaced)`);
  }
  const created = await docker(provider, createArgs(inputs));
  if (created.code !== 0) return { changed: NaN, stdout: lines.join("\n"), stderr: created.stderr, code: created.code, dials };
  deployed.set(r.urn, { name: inputs.name, provider, digest, resource: r.name });
  const started = await docker(provider, ["start", inputs.name]);
  if (started.code !== 0) return { changed: NaN, stdout: lines.join("\n"), stderr: started.stderr, code: started.code, dials };
  await new Promise((ok) => setTimeout(ok, 1000));
  const state = await docker(provider, ["inspect", "--type", "container", "--format", "{{.State.Running}}", inputs.name]);
  if (state.stdout.trim() !== "true") {
    const logs = await docker(provider, ["logs", "--tail", "5", inputs.name]);
    return { changed: NaN, stdout: lines.join("\n"), stderr: `container ${inputs.name} exited after it started: ${logs.stdout}${logs.stderr}`, code: 1, dials };
  }
  lines.push(`changed: created and started ${inputs.name}`);
  return { changed: lines.length, stdout: `${lines.join("\n")}\nchanged=${lines.length}\n`, stderr: "", code: 0, dials };
}

/** Destroy (or a resource gone from the program): removed through the provider it was made with. */
export async function deleteContainer(urn: string): Promise<boolean> {
  const d = deployed.get(urn);
  if (!d) return false;
  await remove(d);
  deployed.delete(urn);
  return true;
}

/** Containers the harness made that the program no longer declares, as the engine deletes them after an update. */
export const orphans = (resources: Declared[]): string[] => [...deployed.keys()].filter((urn) => !resources.some((r) => r.urn === urn));
export const deployedName = (urn: string) => deployed.get(urn)?.resource ?? urn;
