import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { renderWarm, warmDir } from "../components/cache/warm";
import type { Storage } from "../components/config";
import { renderProgram, shellLib } from "../components/shell/script";
import { call } from "../components/shell/quote";
import { newFrame } from "../ops/check";
import { finish, formatSummary, newWarmNode, takeLine, warmExitCode, warmNode } from "../ops/warm";
import { asOwner, decoy, metaDigest, OWNER } from "./helpers/attack";
import { localSite, localStorage, runProgram, sh, tempRoot } from "./helpers/run";

/**
 * The warm program run for real on this machine (as root, as on a worker) against a local tree
 * standing in for the worker's mount: it reads every file of the chosen categories, as the
 * storage owner, and changes nothing (content, owner, mode, mtime, atime of what the owner
 * owns; no new file); a link the owner planted is never followed out of the store, a file
 * swapped for a link is refused by O_NOFOLLOW; an empty or missing category is said, not an
 * error; a mount point that is not an NFS mount is refused before any read.
 */
let root: string;
let s: Storage;

const dir = (c: string) => warmDir(s, root, c);
const program = (categories: string[], more: { mounts?: string[]; cache?: boolean } = {}) =>
  renderWarm({ storage: s, base: root, categories, mounts: more.mounts ?? [], cache: more.cache ?? true });

/** Runs a warm as npm run warm does (`bash -s check FRAME`) and reads it with the CLI's parser. */
function warm(text: string) {
  const frame = newFrame();
  const r = runProgram(text, "check", { frame });
  const n = newWarmNode("here");
  for (const l of r.stdout.split("\n")) takeLine(n, l, frame);
  finish(n, r, frame);
  const framed = r.stdout.split("\n").filter((l) => l.startsWith(`${frame} `));
  const warmed = framed.flatMap((l) => /^\S+ report: warmed (\d+) 1 (.+)$/.exec(l)?.slice(1, 3) ?? []).filter((_, i) => i % 2 === 1);
  return { r, n, warmed: warmed.sort() };
}

/** mtime and atime (ns) and ctime of every entry under the root, links not followed. */
function times(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    const st = lstatSync(p, { bigint: true });
    out[p] = `${st.mtimeNs} ${st.atimeNs} ${st.ctimeNs}`;
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(d);
  return out;
}

beforeEach(() => {
  root = tempRoot();
  s = localStorage({ root, owner: OWNER, categories: ["checkpoints", "loras", "vae"] });
  mkdirSync(root, { mode: 0o755 });
  chownSync(root, OWNER.uid, OWNER.gid);
  asOwner(`mkdir -p '${dir("checkpoints")}/sdxl' '${dir("loras")}'`);
});

describe("warm: a read and nothing else", () => {
  it("reads every file of the chosen categories, as the owner, and changes nothing", () => {
    asOwner(
      `head -c 20000000 /dev/urandom >'${dir("checkpoints")}/sdxl/base.safetensors' && printf x >'${dir("checkpoints")}/a b.ckpt' && : >'${dir("checkpoints")}/empty' && printf lora >'${dir("loras")}/l.safetensors'`,
    );
    const meta = metaDigest(root);
    // atime before mtime: a plain read would move it (relatime); the owner's read uses O_NOATIME.
    // Set after metaDigest, whose own reads (as root) move it.
    const old = new Date("2020-01-01T00:00:00Z");
    for (const f of ["sdxl/base.safetensors", "a b.ckpt", "empty"]) utimesSync(join(dir("checkpoints"), f), old, new Date());
    const before = times(root);
    const { r, n, warmed } = warm(program(["checkpoints"]));
    expect(r.code, r.stderr).toBe(0);
    expect(warmed).toEqual([`${dir("checkpoints")}/a b.ckpt`, `${dir("checkpoints")}/empty`, `${dir("checkpoints")}/sdxl/base.safetensors`]);
    expect(n).toMatchObject({ planned: { files: 3, bytes: 20_000_001 }, files: 3, bytes: 20_000_001, failedFiles: 0, done: true, notes: [] });
    expect(n.error).toBeUndefined();
    // No byte, owner, mode, time or name changed, and no file was added (no loras read either).
    expect(times(root)).toEqual(before);
    expect(metaDigest(root)).toEqual(meta);
  });

  it("reads as the owner, never as root: a root-only file in a category cannot be read, and says why", () => {
    writeFileSync(join(dir("loras"), "root-only.safetensors"), "secret", { mode: 0o600 });
    asOwner(`printf ok >'${dir("loras")}/ok.safetensors'`);
    const { r, n, warmed } = warm(program(["loras"]));
    expect(r.code).toBe(0);
    expect(warmed).toEqual([`${dir("loras")}/ok.safetensors`]);
    expect(n.failedFiles).toBe(1);
    expect(n.notes).toEqual([`could not read ${dir("loras")}/root-only.safetensors: Permission denied`]);
  });

  it("never follows a link the owner planted out of the store (a root-only file, /etc/shadow, a folder, a FIFO)", () => {
    const d = decoy();
    const before = d.digest();
    const loras = dir("loras");
    asOwner(
      [
        `ln -s '${d.secret}/shadow' '${loras}/stolen.safetensors'`,
        `ln -s /etc/shadow '${loras}/shadow.safetensors'`,
        `ln -s '${d.open}' '${loras}/folder'`,
        `mkfifo '${loras}/fifo.safetensors'`,
        `printf real >'${loras}/real.safetensors'`,
        // The category folder itself a link out of the store: not entered at all.
        `ln -s '${d.open}' '${dir("vae")}'`,
      ].join(" && "),
    );
    const { r, n, warmed } = warm(program(["loras", "vae"]));
    expect(r.code, r.stderr).toBe(0);
    expect(warmed).toEqual([`${loras}/real.safetensors`]);
    expect(n).toMatchObject({ planned: { files: 1, bytes: 4 }, files: 1, failedFiles: 0 });
    expect(n.notes).toEqual([`3 link(s) in ${loras} not followed`, `no folder ${dir("vae")}: nothing to warm there`]);
    expect(d.digest()).toEqual(before);
  });

  it("counts a planted name that holds a fake line once, under its escaped name", () => {
    asOwner(`printf 12 >'${dir("loras")}'/$'x\nreport: warmed 999999 1 fake'`);
    const { n, warmed } = warm(program(["loras"]));
    expect(n).toMatchObject({ files: 1, bytes: 2, planned: { files: 1, bytes: 2 } });
    expect(warmed).toEqual([`${dir("loras")}/x\\nreport: warmed 999999 1 fake`]);
  });

  it("opens each file with O_NOFOLLOW: a file swapped for a link after it was listed is refused", () => {
    const d = decoy();
    chmodSync(join(d.open, "00-system.sh"), 0o644);
    asOwner(`ln -s '${d.open}/00-system.sh' '${dir("loras")}/swapped.safetensors'`);
    // warm_file as warm_categories calls it, on a name that is a link by the time it opens it.
    const text = renderProgram({
      title: "warm_file on a link",
      libs: [shellLib(join(__dirname, "../components/cache"), "warm")],
      storage: { root, owner: OWNER },
      converge: {},
      report: { owner: [call("warm_file", `${dir("loras")}/swapped.safetensors`)] },
    });
    const { n, warmed } = warm(text);
    expect(warmed).toEqual([]);
    expect(n.failedFiles).toBe(1);
    expect(n.notes).toEqual([`could not read ${dir("loras")}/swapped.safetensors: Too many levels of symbolic links`]);
  });

  it("says an empty category holds nothing and a missing one is not there; neither is an error", () => {
    const { r, n } = warm(program(["loras", "vae"]));
    expect(r.code).toBe(0);
    expect(n).toMatchObject({ planned: { files: 0, bytes: 0 }, files: 0, done: true, notes: [`no folder ${dir("vae")}: nothing to warm there`] });
    expect(n.error).toBeUndefined();
    expect(statSync(root).isDirectory()).toBe(true);
    expect(readdirSync(join(dir("loras")))).toEqual([]);
  });
});

describe("warm: the mounts and the cache", () => {
  it("refuses a mount point that is not mounted, before reading anything", () => {
    asOwner(`printf x >'${dir("loras")}/l.safetensors'`);
    const { r, n, warmed } = warm(program(["loras"], { mounts: [root] }));
    expect(r.code).toBe(1);
    expect(warmed).toEqual([]);
    expect(n.error).toBe(`${root} is not mounted: converge this worker first (pulumi up), then warm it.`);
  });

  it("refuses a mount that is not NFS", () => {
    const fs = sh("findmnt -n -o FSTYPE /").trim();
    const { n } = warm(program(["loras"], { mounts: ["/"] }));
    expect(n.error).toBe(`/ is mounted as ${fs}, not over NFS: converge this worker first (pulumi up), then warm it.`);
  });

  it("says once that without nfs.cache a warm only fills the page cache, and still reads", () => {
    asOwner(`printf x >'${dir("loras")}/l.safetensors' && printf y >'${dir("checkpoints")}/c.ckpt'`);
    const { n } = warm(program(["loras", "checkpoints"], { cache: false }));
    expect(n.files).toBe(2);
    expect(n.notes).toEqual([
      "nfs.cache is off: this warm only fills the page cache, which the kernel drops under memory pressure; turn nfs.cache on to keep the models on this node's disk.",
    ]);
  });
});

describe("warm: the CLI's side of one node, run here", () => {
  it("streams the program's lines into progress, notes and the node's summary", async () => {
    asOwner(`head -c 3000000 /dev/urandom >'${dir("loras")}/l.safetensors' && ln -s /etc/shadow '${dir("loras")}/s.safetensors'`);
    writeFileSync(join(dir("loras"), "root-only.safetensors"), "secret", { mode: 0o600 });
    const said: string[] = [];
    const node = localSite({ root }).nodes[0];
    const n = await warmNode(
      { node, program: program(["loras", "vae"], { cache: false }) },
      { config: localSite({ root }), sshKeys: {}, smbPasswords: {} },
      (l) => said.push(l),
    );
    expect(said).toEqual([
      "here: nfs.cache is off: this warm only fills the page cache, which the kernel drops under memory pressure; turn nfs.cache on to keep the models on this node's disk.",
      `here: 1 link(s) in ${dir("loras")} not followed`,
      `here: no folder ${dir("vae")}: nothing to warm there`,
      expect.stringMatching(/^here: 2 files, 3\.0 MB to read$/),
      // Progress, and why a file could not be read, in the order the files were read.
      ...said.slice(4, -1),
      "here: 1/2 files, 3.0 MB of 3.0 MB, 1 unreadable: done",
    ]);
    expect(said.slice(4, -1)).toContain(`here: could not read ${dir("loras")}/root-only.safetensors: Permission denied`);
    expect(
      said
        .slice(4, -1)
        .filter((l) => !l.includes("could not read"))
        .every((l) => /^here: 1\/2 files, /.test(l)),
    ).toBe(true);
    expect(n).toMatchObject({ files: 1, bytes: 3_000_000, failedFiles: 1, done: true });
    expect(warmExitCode([n])).toBe(1);
    expect(formatSummary([n], n.ms)).toMatch(/^ {2}here: FAILED: 1 file\(s\) could not be read \(1 files, 3\.0 MB in /m);
  });
});
