import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSite, type Site, type Storage } from "../../components/config";
import { asCommand } from "../../components/shell/script";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** The N of the closing `changed=N` line, or NaN if the script did not get there. */
  changed: number;
}

/** Runs a rendered script the way a node does: `sh -c "bash -c '<script>'"`. */
export function runScript(script: string, opts: { user?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const argv = opts.user ? ["runuser", "-u", opts.user, "--", "sh", "-c", asCommand(script)] : ["sh", "-c", asCommand(script)];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", env: opts.env ?? process.env, timeout: 120_000 });
  const last = /changed=(\d+)\s*$/.exec(r.stdout ?? "");
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", changed: last ? Number(last[1]) : NaN };
}

/** A fresh temp folder whose child `cw` is free to become a storage root. */
export function tempRoot(): string {
  return join(mkdtempSync(join(tmpdir(), "modelshare-test-")), "cw");
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
      else if (st.isDirectory()) { out[r] = "dir"; walk(r); }
      else out[r] = createHash("sha256").update(readFileSync(join(dir, r))).digest("hex");
    }
  };
  walk("");
  return out;
}
