import { spawn } from "node:child_process";
import { Client, type ConnectConfig } from "ssh2";

/**
 * SSH the way @pulumi/command's provider does it: the host key pinned (`hostKey`), each dial
 * bounded by `perDialTimeout`, up to `dialErrorLimit` dials, commands with stdin and SSH env
 * requests. The check tool runs its programs through it, and the lab's converge harness too.
 */
export interface Connection {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey?: string;
  perDialTimeout?: number;
  dialErrorLimit?: number;
}

/** Opens one SSH connection as the provider does: pinned host key, per-dial timeout, retries. */
export async function dial(c: Connection): Promise<{ client: Client; dials: number }> {
  const limit = c.dialErrorLimit ?? 10;
  let lastError: Error | undefined;
  let attempt = 0;
  while (attempt < Math.max(1, limit)) {
    attempt += 1;
    try {
      return { client: await connectOnce(c), dials: attempt };
    } catch (e) {
      lastError = e as Error;
      if (/host key/i.test(lastError.message)) break; // a wrong key never gets better
    }
  }
  // The count and the per-dial bound say how long the run waited, in words a reader can check.
  const dials = attempt === 1 ? "1 dial" : `${attempt} dials`;
  throw new Error(`could not connect to ${c.user}@${c.host}:${c.port} (${dials} of at most ${perDial(c)} s): ${lastError?.message}`);
}

const perDial = (c: Connection) => c.perDialTimeout ?? 15;

function connectOnce(c: Connection): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyRefused = false;
    const config: ConnectConfig = {
      host: c.host,
      port: c.port,
      username: c.user,
      privateKey: c.privateKey,
      readyTimeout: perDial(c) * 1000,
      hostVerifier: (key: Buffer) => {
        if (!c.hostKey) return true;
        const ok = key.toString("base64") === c.hostKey.split(" ")[1];
        hostKeyRefused = !ok;
        return ok;
      },
    };
    client.once("ready", () => resolve(client));
    // `on`, not `once`: a dial that timed out on a socket that was open goes on to emit "lost
    // before handshake" as the socket closes, and an unheard error event ends the process.
    let failed = false;
    client.on("error", (e) => {
      if (failed) return;
      failed = true;
      client.end();
      reject(hostKeyRefused ? new Error(`the host key of ${c.host} is not the pinned hostKey`) : e);
    });
    client.connect(config);
  });
}

export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

/** What a command gets: env requests, stdin; onStdout sees its output as it comes (npm run warm's progress). */
export interface ExecIo {
  env?: Record<string, string>;
  stdin?: string | Buffer;
  onStdout?: (chunk: Buffer) => void;
}

/** One command on an open connection, as the provider runs it: env requests, stdin, exit code. */
export function exec(client: Client, command: string, io: ExecIo = {}): Promise<Exec> {
  return new Promise((resolve, reject) => {
    // The connection's listeners go when the command ends: a connection that runs many
    // commands (check's, one per component) does not collect one pair per command.
    const onError = (e: Error) => (release(), reject(e));
    const onClose = () => (release(), resolve({ code: -1, stdout: "", stderr: "the SSH connection closed" }));
    const release = () => {
      client.off("error", onError);
      client.off("close", onClose);
    };
    // `environment` travels as SSH env requests, which sshd drops unless AcceptEnv allows them.
    client.exec(command, { env: io.env }, (err, stream) => {
      if (err) return onError(err);
      // Decoded once at the end: a character split between two chunks stays whole.
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let code = -1;
      stream.on("data", (d: Buffer) => (stdout.push(d), io.onStdout?.(d)));
      stream.stderr.on("data", (d: Buffer) => stderr.push(d));
      stream.on("exit", (c: number | null) => (code = c ?? -1));
      stream.on("close", () => {
        release();
        resolve({ code, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
      });
      stream.end(io.stdin ?? "");
    });
    client.once("error", onError);
    client.once("close", onClose);
  });
}

/** The local counterpart of exec, as local.Command runs a command: `/bin/sh -c` by default. */
export function execLocal(command: string, io: ExecIo & { interpreter?: string[] } = {}): Promise<Exec> {
  const [cmd, ...args] = io.interpreter ?? ["/bin/sh", "-c"];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args, command], { env: { ...process.env, ...(io.env ?? {}) } });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => (stdout.push(d), io.onStdout?.(d)));
    child.stderr.on("data", (d: Buffer) => stderr.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") }));
    // A command that exits without reading its stdin is not an error (its exit code says how it went).
    child.stdin.on("error", () => {});
    child.stdin.end(io.stdin ?? "");
  });
}
