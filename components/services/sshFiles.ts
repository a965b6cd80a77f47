import { lstatSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/**
 * The files the docker provider's `ssh` reads: the node's private key and a known_hosts file
 * that pins its host key. The provider runs the system ssh client, which takes a key only from
 * a file or an agent; the key is a Pulumi secret, so the program writes it, mode 0600, into a
 * folder only this user can enter, in the user's runtime directory (a tmpfs that logout and
 * reboot clear). It stays there after the program ends: the engine deletes removed containers
 * after the program has finished, and `pulumi destroy --run-program` writes it again. State
 * keeps only these paths, never the key.
 */
export interface SshFiles {
  dir: string;
  key: string;
  knownHosts: string;
}

/** $XDG_RUNTIME_DIR/modelshare-ssh/<project>-<stack>, else <tmpdir>/modelshare-ssh-<uid>/<project>-<stack>. */
export function sshDir(project: string, stack: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, "modelshare-ssh") : join(tmpdir(), `modelshare-ssh-${process.getuid?.() ?? 0}`);
  return join(base, `${project}-${stack}`.replace(/[^A-Za-z0-9._-]/g, "_"));
}

/**
 * The folder and its parent (ours too: in /tmp anyone could have made it first) are real
 * folders of this user that nobody else can enter: checked, not assumed.
 */
function privateDir(dir: string): void {
  for (const d of [dirname(dir), dir]) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const st = lstatSync(d);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) {
      throw new Error(`modelshare: ${d} holds the docker provider's SSH keys, so it must be a real folder of uid ${process.getuid?.()} with mode 0700; it is ${st.isSymbolicLink() ? "a symbolic link" : `uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}`}: remove it, then run again`);
    }
  }
}

function writePrivate(path: string, content: string): void {
  const tmp = `${path}.new`;
  writeFileSync(tmp, content, { mode: 0o600, flag: "w" });
  renameSync(tmp, path);
}

/** `[host]:port` for a port other than 22, as ssh writes it in known_hosts. */
export const knownHostsName = (host: string, port: number) => (port === 22 ? host : `[${host}]:${port}`);

/** Writes the node's key and known_hosts; returns their paths. */
export function writeSshFiles(dir: string, node: { name: string; host: string; port: number; hostKey?: string }, privateKey: string): SshFiles {
  privateDir(dir);
  const key = join(dir, `${node.name}.key`);
  const knownHosts = join(dir, `${node.name}.known_hosts`);
  writePrivate(key, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`);
  writePrivate(knownHosts, node.hostKey ? `${knownHostsName(node.host, node.port)} ${node.hostKey.trim().split(/\s+/).slice(0, 2).join(" ")}\n` : "");
  return { dir, key, knownHosts };
}

/**
 * The provider's sshOpts: this key, and only this host key (the system's known_hosts could
 * hold another for the same name), never asking a question. A site that opted out of host
 * keys (insecureSkipHostKeyCheck) accepts any.
 */
export function sshOpts(files: SshFiles, pinned: boolean): string[] {
  return [
    "-i", files.key,
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
    ...(pinned
      ? ["-o", `UserKnownHostsFile=${files.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
      : ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]),
  ];
}
