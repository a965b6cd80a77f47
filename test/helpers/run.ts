import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSite, type Site, type Storage } from "../../components/config";
import { commandFor, type Verb } from "../../components/shell/script";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** The N of the closing `changed=N` line, or NaN if the script did not get there. */
  changed: number;
}

export interface RunOptions {
  /** Run as this user (runuser) instead of root. */
  user?: string;
  env?: NodeJS.ProcessEnv;
  /** The login shell that parses the command (sh by default; the node's sshd uses the user's). */
  shell?: string;
  /** A reader's frame (`bash -s <verb> <frame>`, as `npm run check` runs it): every line then starts with it. */
  frame?: string;
  /** A command the login shell's argv is appended to (e.g. one that enters a namespace first). */
  wrap?: readonly string[];
}

/** Runs a rendered program the way a node does: `<login shell> -c "bash -s <verb>"`, program on stdin. */
export function runProgram(program: string, verb: Verb = "converge", opts: RunOptions = {}): Run {
  const login = [opts.shell ?? "sh", "-c", commandFor(verb, opts.frame)];
  const argv = [...(opts.wrap ?? []), ...(opts.user ? ["runuser", "-u", opts.user, "--", ...login] : login)];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", input: program, env: opts.env ?? process.env, timeout: 120_000 });
  const last = /changed=(\d+)\s*$/.exec(r.stdout ?? "");
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", changed: last ? Number(last[1]) : NaN };
}

/** Runs a shell command line (bash), as root or as `user`; returns what it printed, throws on failure. */
export function sh(command: string, user?: string): string {
  const argv = user ? ["runuser", "-u", user, "--", "bash", "-c", command] : ["bash", "-c", command];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${command}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A fresh temp folder whose child `cw` is free to become a storage root. The temp folder is
 * 0755, like the system folder a real root sits in, so the storage owner can reach the root.
 */
export function tempRoot(): string {
  const base = mkdtempSync(join(tmpdir(), "modelshare-test-"));
  chmodSync(base, 0o755);
  return join(base, "cw");
}

/** A validated one-node local site; `storage` overrides the storage section. */
export function localSite(storage: Record<string, unknown>): Site {
  return parseSite({ nodes: [{ name: "here", host: "localhost", roles: ["storage"] }], storage: { minFreeGB: 0, ...storage } }, { homedir: "/nonexistent" });
}

export const localStorage = (storage: Record<string, unknown>): Storage => localSite(storage).storage;

/**
 * Every entry under `dir` (links not followed): files by sha256, links by their text, folders
 * as "dir". Two equal digests mean no byte and no link changed.
 */
export function treeDigest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      if (st.isSymbolicLink()) out[r] = `link:${readlinkSync(join(dir, r))}`;
      else if (st.isDirectory()) {
        out[r] = "dir";
        walk(r);
      } else
        out[r] = createHash("sha256")
          .update(readFileSync(join(dir, r)))
          .digest("hex");
    }
  };
  walk("");
  return out;
}
