import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/**
 * What the unit suite must leave as it found it (issue 21, item 8): every entry under /etc (its
 * kind, owner, mode, size, times and link target: a write, chmod, chown, new or removed name all
 * show), and the names directly in /tmp. Compared by the global setup before and after the run.
 */
export interface HostState {
  etc: Map<string, string>;
  tmp: Set<string>;
}

/** One line per entry under ROOT, keyed by its path; lstat only (a link is never followed). */
export function treeDigest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (path: string): void => {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return; // gone between readdir and lstat: the next snapshot shows it missing
    }
    const link = st.isSymbolicLink() ? ` -> ${readlinkSync(path)}` : "";
    out.set(path, `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.ctimeMs}${link}`);
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return; // not ours to read (a test run without root): its entry above still counts
    }
    for (const name of names) walk(join(path, name));
  };
  walk(root);
  return out;
}

export function hostState(etc = "/etc", tmp = "/tmp"): HostState {
  return { etc: treeDigest(etc), tmp: new Set(readdirSync(tmp)) };
}

/**
 * Names in /tmp that the suite's own steps make (mkdtemp prefixes of the tests, mktemp's
 * `tmp.*`, the known-hosts folder): only these count when they appear, so another job on a
 * busy machine writing its own files to /tmp cannot turn the run red.
 */
export const OURS = /^(modelshare-|tmp\.|elsewhere-)/;

/** What changed between two states, one line each ("/etc/x changed", "/tmp/y left behind"). */
export function hostChanges(before: HostState, after: HostState, ours = OURS): string[] {
  const lines: string[] = [];
  for (const [path, entry] of after.etc) {
    const was = before.etc.get(path);
    if (was === undefined) lines.push(`${path} was made`);
    else if (was !== entry) lines.push(`${path} changed (${was} -> ${entry})`);
  }
  for (const path of before.etc.keys()) if (!after.etc.has(path)) lines.push(`${path} was removed`);
  for (const name of after.tmp) if (!before.tmp.has(name) && ours.test(name)) lines.push(`/tmp/${name} left behind`);
  return lines;
}
