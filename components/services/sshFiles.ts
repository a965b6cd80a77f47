import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  statfsSync,
  unlinkSync,
  writeSync,
  constants,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/**
 * The files the docker provider's `ssh` reads: the node's private key and a known_hosts file
 * that pins its host key. The provider runs the system ssh client, which takes a key only from
 * a file or an agent; the key is a Pulumi secret, so the program writes it, mode 0600, into a
 * folder only this user can enter, on a memory filesystem only (tmpfs or ramfs: never on a
 * disk, gone at reboot): $XDG_RUNTIME_DIR when it is one, else /dev/shm; with neither, the run
 * stops and names ssh-agent as the way out.
 *
 * How long they stay: as long as the stack has docker resources. The engine deletes removed
 * containers after the program has finished, through the provider's stored settings (these
 * paths), so the program cannot remove the key itself. Each node's files belong to a local
 * command (`<node>-docker-ssh-files`) the provider depends on: the engine deletes it after the
 * containers and the provider, and its delete removes the files (destroy included). State
 * keeps only these paths, never the key.
 */
export interface SshFiles {
  dir: string;
  /** Unset: ssh takes the key from ssh-agent. */
  key?: string;
  knownHosts: string;
}

const TMPFS = 0x01021994;
const RAMFS = 0x858458f6;
const inMemory = (path: string) => {
  try {
    const type = statfsSync(path).type;
    return type === TMPFS || type === RAMFS;
  } catch {
    return false;
  }
};

const stackName = (project: string, stack: string) => `${project}-${stack}`.replace(/[^A-Za-z0-9._-]/g, "_");
const uid = () => process.getuid?.() ?? 0;

/**
 * $XDG_RUNTIME_DIR/modelshare-ssh/<project>-<stack> when that is a tmpfs, else
 * <shm>/modelshare-ssh-<uid>/<project>-<stack> when /dev/shm is one; else the run stops.
 */
export function sshDir(project: string, stack: string, env: NodeJS.ProcessEnv = process.env, shm = "/dev/shm"): string {
  return sshPlace(project, stack, env, shm).dir;
}

/**
 * Where the files go, and whether the key is left to ssh-agent: with no memory filesystem but
 * SSH_AUTH_SOCK set, only known_hosts (not secret) is written, under os.tmpdir(), and ssh takes
 * the key from the agent.
 */
export function sshPlace(project: string, stack: string, env: NodeJS.ProcessEnv = process.env, shm = "/dev/shm"): { dir: string; agent: boolean } {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && inMemory(runtime)) return { dir: join(runtime, "modelshare-ssh", stackName(project, stack)), agent: false };
  if (inMemory(shm)) return { dir: join(shm, `modelshare-ssh-${uid()}`, stackName(project, stack)), agent: false };
  if (env.SSH_AUTH_SOCK) return { dir: join(tmpdir(), `modelshare-known-hosts-${uid()}`, stackName(project, stack)), agent: true };
  throw new Error(
    `modelshare: the docker provider's SSH key is written only to a memory filesystem, and neither XDG_RUNTIME_DIR (${runtime ? `${runtime} is not a tmpfs` : "unset"}) nor ${shm} is a tmpfs here; run where one is (a login session, or a mounted /dev/shm), or give the key to ssh-agent instead (ssh-add the node's key and run with SSH_AUTH_SOCK set: modelshare then writes no key).`,
  );
}

/** Where versions before this one wrote the key without XDG_RUNTIME_DIR: os.tmpdir(), often a disk. */
export const legacySshDir = (project: string, stack: string, tmp = tmpdir()) => join(tmp, `modelshare-ssh-${uid()}`, stackName(project, stack));

/**
 * The folder and its parent (ours too: in /dev/shm anyone could have made it first) are real
 * folders of this user that nobody else can enter: checked, not assumed.
 */
function privateDir(dir: string, secret: boolean): void {
  for (const d of [dirname(dir), dir]) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const st = lstatSync(d);
    if (!st.isDirectory() || st.uid !== uid() || (st.mode & 0o077) !== 0) {
      throw new Error(
        `modelshare: ${d} holds the docker provider's SSH keys, so it must be a real folder of uid ${uid()} with mode 0700; it is ${st.isSymbolicLink() ? "a symbolic link" : `uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}`}: remove it, then run again`,
      );
    }
  }
  if (secret && !inMemory(dir))
    throw new Error(`modelshare: ${dir} is not on a tmpfs, so the docker provider's SSH key would land on a disk; remove it, then run again`);
}

/** Written to a fresh file (never through a name that exists: O_EXCL|O_NOFOLLOW), then renamed into place. */
function writePrivate(path: string, content: string): void {
  const st = (() => {
    try {
      return lstatSync(path);
    } catch {
      return undefined;
    }
  })();
  if (st && !st.isFile())
    throw new Error(
      `modelshare: ${path} is ${st.isSymbolicLink() ? "a symbolic link" : "not a file"}, where modelshare writes the docker provider's SSH files; remove it, then run again`,
    );
  const tmp = `${path}.new`;
  try {
    unlinkSync(tmp);
  } catch {
    /* not there */
  }
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** `[host]:port` for a port other than 22, as ssh writes it in known_hosts. */
export const knownHostsName = (host: string, port: number) => (port === 22 ? host : `[${host}]:${port}`);

/** Writes the node's key and known_hosts; returns their paths. */
export function writeSshFiles(dir: string, node: { name: string; host: string; port: number; hostKey?: string }, privateKey: string | undefined): SshFiles {
  privateDir(dir, privateKey !== undefined);
  const key = privateKey === undefined ? undefined : join(dir, `${node.name}.key`);
  const knownHosts = join(dir, `${node.name}.known_hosts`);
  if (key && privateKey !== undefined) writePrivate(key, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`);
  writePrivate(knownHosts, node.hostKey ? `${knownHostsName(node.host, node.port)} ${node.hostKey.trim().split(/\s+/).slice(0, 2).join(" ")}\n` : "");
  return { dir, key, knownHosts };
}

/**
 * The delete of `<node>-docker-ssh-files` (run by the engine through /bin/sh after the node's
 * containers and provider are gone): the node's two files, then the stack's folder once empty.
 */
export function removeSshFilesCommand(files: SshFiles): string {
  const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  return `rm -f -- ${[files.key, files.knownHosts]
    .filter((f) => f !== undefined)
    .map(q)
    .join(" ")} && { rmdir -- ${q(files.dir)} 2>/dev/null || true; }`;
}

/**
 * Copies written by versions before this one under os.tmpdir() (a disk, as often as not):
 * removed, each named in what the run prints. Only the stack's own folder, only files.
 */
export function removeLegacySshFiles(dir: string, say: (message: string) => void): void {
  if (!existsSync(dir) || inMemory(dir)) return;
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid()) return;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (lstatSync(path).isDirectory()) continue;
    unlinkSync(path);
    say(`modelshare: removed ${path}, an SSH file an earlier version left on a disk (the key now stays in memory only)`);
  }
  try {
    rmdirSync(dir);
  } catch {
    /* not empty: left alone */
  }
}

/**
 * The provider's sshOpts: this key, and only this host key (the system's known_hosts could
 * hold another for the same name), never asking a question. A site that opted out of host
 * keys (insecureSkipHostKeyCheck) accepts any.
 */
export function sshOpts(files: SshFiles, pinned: boolean): string[] {
  return [
    ...(files.key ? ["-i", files.key] : []),
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    ...(pinned
      ? ["-o", `UserKnownHostsFile=${files.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
      : ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]),
  ];
}
