import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The storage owner the attacker holds: uid/gid 1000, the default owner. */
export const OWNER = { uid: 1000, gid: 1000 } as const;

// --pdeathsig: a racer outlives nothing. Detached in its own group, it once kept looping for an
// hour (most of a core) after its vitest was killed mid-race.
const asOwnerArgv = (command: string) => [
  "setpriv",
  `--reuid=${OWNER.uid}`,
  `--regid=${OWNER.gid}`,
  "--clear-groups",
  "--pdeathsig",
  "SIGKILL",
  "--",
  "bash",
  "-c",
  command,
];

/** Runs a command as the owner uid only (what an SMB user, a container or a custom node holds). */
export function asOwner(command: string): string {
  const [cmd, ...args] = asOwnerArgv(command);
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: "/", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`as the owner: ${command}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Starts a command as the owner in the background (a racing attacker); stop it with `stop`. */
export function asOwnerInBackground(command: string): { stop: () => Promise<void> } {
  const [cmd, ...args] = asOwnerArgv(command);
  const child: ChildProcess = spawn(cmd, args, { cwd: "/", stdio: "ignore", detached: true });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    stop: async () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
      await exited;
    },
  };
}

/**
 * A tree outside the storage root that only root may touch: a 0700 folder with a 0600 file,
 * and a 0755 folder (like /etc/profile.d). `digest` records owner, mode and bytes of
 * everything in it: equal digests before and after mean nothing outside the root changed.
 */
export function decoy(): { dir: string; secret: string; open: string; digest: () => Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-decoy-"));
  chmodSync(dir, 0o755);
  const secret = join(dir, "root-only");
  const open = join(dir, "profile.d");
  mkdirSync(secret, { mode: 0o700 });
  writeFileSync(join(secret, "shadow"), "root:$6$secret\n", { mode: 0o600 });
  mkdirSync(open, { mode: 0o755 });
  writeFileSync(join(open, "00-system.sh"), "export SYSTEM=1\n", { mode: 0o644 });
  return { dir, secret, open, digest: () => metaDigest(dir) };
}

/** Every entry under (and including) `dir`, links not followed: owner, mode, and bytes or link text. */
export function metaDigest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string, rel: string) => {
    const st = lstatSync(path);
    const meta = `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
    if (st.isSymbolicLink()) out[rel] = `${meta} link:${readlinkSync(path)}`;
    else if (st.isDirectory()) {
      out[rel] = `${meta} dir`;
      for (const name of readdirSync(path)) walk(join(path, name), `${rel}/${name}`);
    } else out[rel] = `${meta} ${createHash("sha256").update(readFileSync(path)).digest("hex")}`;
  };
  walk(dir, ".");
  return out;
}
