import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "ssh2";
import { dial, exec, type Exec } from "../../ops/ssh";
import { stackConfig } from "./stack";

/** What `lab/lab.sh up` records about the running nodes. */
export interface LabNode {
  name: string;
  address: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostKey: string;
}

export const labDir = () => process.env.MODELSHARE_LAB_DIR ?? join(homedir(), ".cache/modelshare-lab");

export function labNodes(): LabNode[] {
  return (JSON.parse(readFileSync(join(labDir(), "nodes.json"), "utf8")) as { nodes: LabNode[] }).nodes;
}

/**
 * Pulumi.lab.yaml with what the lab made filled in, as `pulumi config set` would: each node's
 * hostKey (matched by address) and each node's SSH key as a secret. `edit` may change the
 * parsed sections before they are serialised (e.g. add a category); `extra` adds secret keys
 * (`modelshare:<key>` -> value, e.g. SMB passwords).
 */
export function labStack(edit: (sections: Record<string, any>) => void = () => {}, extra: Record<string, string> = {}) {
  const nodes = labNodes();
  const secrets: Record<string, string> = {};
  const { config } = stackConfig("Pulumi.lab.yaml");
  const sections = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, JSON.parse(v)]));
  for (const node of sections["modelshare:nodes"] as Array<Record<string, any>>) {
    const lab = nodes.find((n) => n.address === node.host);
    if (!lab) continue; // a node the lab did not boot (tests use one on purpose)
    node.hostKey = lab.hostKey;
    secrets[`modelshare:${node.sshKey}`] = readFileSync(lab.privateKeyPath, "utf8");
  }
  // The lab's stores hold stand-ins (a few bytes named .safetensors), which the catalog would
  // rightly call invalid; the catalog's own lab tests turn it on.
  sections["modelshare:catalog"] = { enabled: false };
  edit(sections);
  Object.assign(secrets, extra);
  const flat = Object.fromEntries(Object.entries(sections).map(([k, v]) => [k, JSON.stringify(v)]));
  return { config: { ...flat, ...secrets }, secretKeys: Object.keys(secrets) };
}

/** Runs `lab/lab.sh` (e.g. `link node1 down`); throws with its stderr on failure. */
export function lab(...args: string[]): string {
  // A node rebooted or cut off keeps no connection of ours half-open (one that would hang).
  if (["reboot", "link", "down"].includes(args[0])) closeNodeConnections(args[0] === "down" ? undefined : args[1]);
  const r = spawnSync("bash", ["lab/lab.sh", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`lab.sh ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/**
 * One SSH connection per node for the tests' own commands, kept open: under emulation a
 * handshake costs the node a second or more of CPU, and the suite runs hundreds of commands.
 * (The programs themselves still get a connection each, as the provider gives them.)
 */
const connections = new Map<string, Promise<Client>>();

function connection(n: LabNode): Promise<Client> {
  let c = connections.get(n.name);
  if (!c) {
    c = dial({ host: n.address, port: n.port, user: n.user, privateKey: readFileSync(n.privateKeyPath, "utf8"), hostKey: n.hostKey, dialErrorLimit: 3 }).then(
      ({ client }) => {
        const forget = () => connections.get(n.name) === c && connections.delete(n.name);
        client.on("close", forget);
        client.on("error", forget);
        return client;
      },
    );
    connections.set(n.name, c);
    c.catch(() => connections.delete(n.name));
  }
  return c;
}

/** Closes the kept connections (a file's afterAll; a reboot or a cut link closes them too). */
export function closeNodeConnections(name?: string): void {
  for (const [node, c] of [...connections]) {
    if (name !== undefined && node !== name) continue;
    connections.delete(node);
    c.then((client) => client.end()).catch(() => {});
  }
}

/** Runs a shell command on a lab node over SSH; resolves with its output, rejects on non-zero. */
export async function onNode(name: string, command: string, stdin?: Buffer | string): Promise<string> {
  const n = labNodes().find((x) => x.name === name);
  if (!n) throw new Error(`no lab node ${name}`);
  let r: Exec;
  try {
    r = await exec(await connection(n), command, { stdin });
  } catch (e) {
    // A kept connection the node dropped: the channel never opened, so the command never
    // started, and one fresh connection runs it. Any other failure is the test's to see.
    if (!/not connected|no response from server|channel open failure/i.test((e as Error).message)) throw e;
    closeNodeConnections(name);
    r = await exec(await connection(n), command, { stdin });
  }
  if (r.code === -1 && r.stderr === "the SSH connection closed") throw new Error(`${name}: ${command}: the SSH connection closed`);
  if (r.code !== 0) throw new Error(`${name}: ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The image the lab's service containers run: the lab has no registry, so `pull: never`. */
export const LAB_IMAGE = "modelshare-lab/busybox:1";

/** A busybox rootfs as a tar (what `docker import` takes): busybox-static and a link per applet. */
export function labImageTar(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-rootfs-"));
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  const applets = spawnSync("/bin/busybox", ["--list"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((a) => a && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", join(dir, "bin", a));
  mkdirSync(join(dir, "tmp"), { mode: 0o1777 });
  return spawnSync("tar", ["-C", dir, "-c", "."], { maxBuffer: 64 << 20 }).stdout;
}

/** Imports the image on a node whose docker runs; its command idles until stopped. */
export const importLabImage = (node: string, tar: Buffer) =>
  onNode(node, `docker import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh", "-c", "trap exit TERM; while :; do sleep 1; done"]' - ${LAB_IMAGE}`, tar);
