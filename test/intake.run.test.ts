import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decoy, OWNER } from "./helpers/attack";
import { sh, tempRoot, treeDigest } from "./helpers/run";

// The intake (components/intake/intake.py) for real, as root, on temp trees laid out as the
// storage layout lays them out: staging and rejected folders of the owner (1000, 0775), store
// folders of the intake account (64055, 0755, no account needed), the tool beside catalog.py in
// a folder of root's. Files get their mtimes set into the past instead of waiting.

const INTAKE = { uid: 64055, gid: 64055 } as const;
// The service's python3: the steps run it as the owner and the intake, who cannot reach a
// python installed under /root.
const PY = "/usr/bin/python3";
const NOW = Math.floor(Date.now() / 1000);
const OLD = NOW - 7200; // settled and older than the grace
const RECENT = NOW - 60; // settled (stable: 1 s) but younger than the grace (600 s)

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

// ---- fixtures --------------------------------------------------------------------------------

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2 };

/** A safetensors file: u64 header length, JSON header, tensor data in order (filled with `fill`). */
function safetensors(tensors: Record<string, { dtype: string; shape: number[] }>, fill = 0): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    header[name] = { ...t, data_offsets: [at, at + n] };
    at += n;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(at, fill)]);
}

const GOOD = safetensors({ "w.weight": { dtype: "F32", shape: [2, 3] }, "w.bias": { dtype: "F16", shape: [3] } });
const OTHER = safetensors({ "w.weight": { dtype: "F32", shape: [2, 3] }, "w.bias": { dtype: "F16", shape: [3] } }, 7);
const TRUNCATED = GOOD.subarray(0, GOOD.length - 5);

/** Every temp folder made here, removed at the end (links and FIFOs inside removed, never followed). */
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

// A folder anyone may write, so a pickle that did get unpickled (as the owner or the intake)
// would leave its marker.
const markerDir = mkdtempSync(join(tmpdir(), "modelshare-intake-marker-"));
temps.push(markerDir);
chmodSync(markerDir, 0o1777);
const MARKER = join(markerDir, "pwned");

/** pickle.dumps of an object whose __reduce__ is os.system("touch MARKER"). */
function maliciousPickle(): Buffer {
  const code = `import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, (${JSON.stringify(`touch ${MARKER}`)},))
sys.stdout.buffer.write(pickle.dumps(Evil(), protocol=4))`;
  const r = spawnSync("python3", ["-I", "-c", code]);
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return r.stdout;
}

// ---- the tree and the tool -------------------------------------------------------------------

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A storage tree with one category, `checkpoints`, and the tool installed as root's. */
function site() {
  const root = tempRoot();
  temps.push(dirname(root));
  const dirs = { staging: join(root, "staging/checkpoints"), store: join(root, "store/checkpoints"), rejected: join(root, "rejected/checkpoints") };
  const lib = join(root, "lib");
  for (const d of [lib, ...Object.values(dirs)]) mkdirSync(d, { recursive: true, mode: 0o755 });
  for (const d of [dirs.staging, dirs.rejected]) {
    chownSync(d, OWNER.uid, OWNER.gid);
    chmodSync(d, 0o775);
  }
  chownSync(dirs.store, INTAKE.uid, INTAKE.gid);
  for (const f of ["components/intake/intake.py", "components/catalog/catalog.py"]) {
    const to = join(lib, f.split("/").pop()!);
    copyFileSync(f, to);
    chmodSync(to, 0o644);
  }
  const tool = join(lib, "intake.py");
  const config = join(root, "intake.json");
  const conf = {
    owner: [OWNER.uid, OWNER.gid],
    intake: [INTAKE.uid, INTAKE.gid],
    stable_seconds: 1,
    grace_seconds: 600,
    categories: [{ name: "checkpoints", ...dirs }],
  };
  writeFileSync(config, JSON.stringify(conf), { mode: 0o600 });
  // Root's lock for runs of this config (named after its path), removed at the end.
  const lock = `/run/modelshare-intake.${sha(Buffer.from(config)).slice(0, 16)}.lock`;
  temps.push(lock, lock.replace(/\.lock$/, ".held"));
  const py = (args: string[], ids?: { uid: number; gid: number }, input?: Buffer) => {
    const as = ids ? ["setpriv", `--reuid=${ids.uid}`, `--regid=${ids.gid}`, "--clear-groups", "--"] : [];
    const argv = [...as, PY, "-I", tool, ...args];
    // A FIFO opened by mistake would block: the timeout fails the test instead of hanging it.
    return spawnSync(argv[0], argv.slice(1), { input: input ?? Buffer.alloc(0), timeout: 30_000 });
  };
  return {
    ...dirs,
    root,
    tool,
    config,
    lock,
    py,
    run: (): Ran => {
      const r = py(["run", config]);
      return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    },
    /** An upload, as the owner leaves it in staging. */
    put: (name: string | Buffer, data: Buffer, mtime = OLD) => {
      const p = typeof name === "string" ? join(dirs.staging, name) : Buffer.concat([Buffer.from(dirs.staging + "/"), name]);
      writeFileSync(p, data);
      chownSync(p, OWNER.uid, OWNER.gid);
      utimesSync(p, mtime, mtime);
      return p;
    },
  };
}

/** Runs a shell command as the owner; its exit code and stderr (the attempt may fail). */
function tryAsOwner(command: string): { code: number | null; stderr: string } {
  const r = spawnSync("setpriv", [`--reuid=${OWNER.uid}`, `--regid=${OWNER.gid}`, "--clear-groups", "--", "bash", "-c", command], {
    encoding: "utf8",
    cwd: "/",
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr };
}

const names = (dir: string) => readdirSync(dir).sort();

// ---- the tests -------------------------------------------------------------------------------

describe("intake.py run, as root, on a real tree", () => {
  it("stores a valid upload as the intake's own copy (0644, same bytes, the upload's date) and removes it from staging; a second run changes nothing", () => {
    const t = site();
    const staged = t.put("good.safetensors", GOOD);
    const stagedIno = statSync(staged).ino;
    const r = t.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`stored checkpoints/good.safetensors ${sha(GOOD)}\n`);
    const stored = join(t.store, "good.safetensors");
    expect(readFileSync(stored).equals(GOOD)).toBe(true);
    const st = statSync(stored);
    expect({ uid: st.uid, gid: st.gid, mode: st.mode, mtime: st.mtimeMs / 1000 }).toEqual({ uid: INTAKE.uid, gid: INTAKE.gid, mode: 0o100644, mtime: OLD });
    expect(st.ino).not.toBe(stagedIno); // a copy, not the owner's inode linked in
    expect(names(t.staging)).toEqual([]);
    expect(names(t.store)).toEqual(["good.safetensors"]); // no part left behind
    const before = treeDigest(t.root);
    const again = t.run();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe("");
    expect(treeDigest(t.root)).toEqual(before);
  });

  it("leaves the store's copy out of the owner's reach: writing it or into the store fails", () => {
    const t = site();
    t.put("good.safetensors", GOOD);
    expect(t.run().code).toBe(0);
    const stored = join(t.store, "good.safetensors");
    for (const attempt of [`echo x >> ${stored}`, `: > ${t.store}/planted.safetensors`, `rm -f ${stored}`]) {
      const r = tryAsOwner(attempt);
      expect(r.code, attempt).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied/);
    }
    expect(readFileSync(stored).equals(GOOD)).toBe(true);
    expect(names(t.store)).toEqual(["good.safetensors"]);
  });

  it("moves a truncated upload older than the grace to rejected with a reason file the owner can read; a younger one waits in staging", () => {
    const t = site();
    t.put("cut.safetensors", TRUNCATED);
    t.put("pausing.safetensors", TRUNCATED, RECENT);
    const r = t.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rejected checkpoints\/cut\.safetensors incomplete: .*truncated.*\(moved to the rejected folder as cut\.safetensors\)$/m);
    expect(r.stdout).toMatch(/^wait checkpoints\/pausing\.safetensors incomplete: /m);
    expect(names(t.store)).toEqual([]);
    expect(names(t.staging)).toEqual(["pausing.safetensors"]);
    expect(names(t.rejected)).toEqual(["cut.safetensors", "cut.safetensors.reason.txt"]);
    expect(readFileSync(join(t.rejected, "cut.safetensors")).equals(TRUNCATED)).toBe(true);
    const reason = tryAsOwner(`cat ${t.rejected}/cut.safetensors.reason.txt`);
    expect(reason.code).toBe(0);
    const text = readFileSync(join(t.rejected, "cut.safetensors.reason.txt"), "utf8");
    expect(text).toContain('The file "cut.safetensors", uploaded to the checkpoints folder');
    expect(text).toMatch(/incomplete: the tensors need \d+ data bytes but the file has \d+ \(truncated\?\)/);
    expect(text).toContain("Nothing was copied into the model store; fix the file and upload it again.");
    expect(statSync(join(t.rejected, "cut.safetensors.reason.txt"))).toMatchObject({ uid: OWNER.uid, mode: 0o100644 });
  });

  it("rejects a pickle whose reduce calls os.system as dangerous and never runs it", () => {
    const t = site();
    const evil = maliciousPickle();
    t.put("evil.ckpt", evil);
    const r = t.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rejected checkpoints\/evil\.ckpt dangerous: imports code outside the allowlist: posix\.system\./m);
    expect(existsSync(MARKER)).toBe(false);
    expect(names(t.store)).toEqual([]);
    expect(names(t.rejected)).toEqual(["evil.ckpt", "evil.ckpt.reason.txt"]);
    expect(readFileSync(join(t.rejected, "evil.ckpt.reason.txt"), "utf8")).toContain("dangerous: imports code outside the allowlist");
  });

  it("never replaces a store file: other content holds the upload in staging (not copied again until it changes), the same content removes it", () => {
    const t = site();
    for (const [name, data] of [
      ["held.safetensors", OTHER],
      ["same.safetensors", GOOD],
      ["bigger.safetensors", Buffer.concat([OTHER, OTHER])],
    ] as const) {
      writeFileSync(join(t.store, name), data);
      chownSync(join(t.store, name), INTAKE.uid, INTAKE.gid);
      t.put(name, GOOD);
    }
    const before = treeDigest(t.store);
    const r = t.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `held checkpoints/held.safetensors ${sha(GOOD)} the store already has held.safetensors with other content; rename the upload or remove the store's file\n`,
    );
    expect(r.stdout).toContain(`same checkpoints/same.safetensors ${sha(GOOD)}\n`);
    // Another size: held without a copy (no SHA-256), so a big upload is not copied every run.
    expect(r.stdout).toContain(
      "held checkpoints/bigger.safetensors the store already has bigger.safetensors with other content; rename the upload or remove the store's file\n",
    );
    expect(treeDigest(t.store)).toEqual(before);
    expect(names(t.staging)).toEqual(["bigger.safetensors", "held.safetensors"]);
    expect(readFileSync(join(t.staging, "held.safetensors")).equals(GOOD)).toBe(true);
    expect(names(t.rejected)).toEqual([]);
    // Held uploads are remembered (root's, beside the lock): the next run copies neither again,
    // until one of them changes.
    const again = t.run();
    expect(again.stdout).not.toContain("held checkpoints/");
    t.put("held.safetensors", GOOD, OLD - 60);
    const changed = t.run();
    expect(changed.stdout).toContain(`held checkpoints/held.safetensors ${sha(GOOD)} `);
    expect(changed.stdout).not.toContain("bigger.safetensors");
    expect(treeDigest(t.store)).toEqual(before);
  });

  it("never replaces a rejected file: the second upload of a name goes to NAME.1 with its own reason file", () => {
    const t = site();
    for (const [name, text] of [
      ["bad.safetensors", "the first upload"],
      ["bad.safetensors.reason.txt", "the first reason"],
    ]) {
      writeFileSync(join(t.rejected, name), text);
      chownSync(join(t.rejected, name), OWNER.uid, OWNER.gid);
    }
    t.put("bad.safetensors", TRUNCATED);
    const r = t.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("(moved to the rejected folder as bad.safetensors.1)");
    expect(names(t.rejected)).toEqual(["bad.safetensors", "bad.safetensors.1", "bad.safetensors.1.reason.txt", "bad.safetensors.reason.txt"]);
    expect(readFileSync(join(t.rejected, "bad.safetensors"), "utf8")).toBe("the first upload");
    expect(readFileSync(join(t.rejected, "bad.safetensors.reason.txt"), "utf8")).toBe("the first reason");
    expect(readFileSync(join(t.rejected, "bad.safetensors.1")).equals(TRUNCATED)).toBe(true);
    expect(readFileSync(join(t.rejected, "bad.safetensors.1.reason.txt"), "utf8")).toContain('It was moved here as "bad.safetensors.1".');
    expect(names(t.staging)).toEqual([]);
  });

  it("never follows a link nor opens a FIFO in staging: the run finishes and nothing of theirs reaches the store", () => {
    const t = site();
    const d = decoy();
    temps.push(d.dir);
    const before = d.digest();
    // A valid model the owner may read, outside the staging folder: following the link would store it.
    const outside = join(t.root, "outside.safetensors");
    writeFileSync(outside, GOOD, { mode: 0o644 });
    utimesSync(outside, OLD, OLD);
    symlinkSync(outside, join(t.staging, "linked.safetensors"));
    symlinkSync(join(d.secret, "shadow"), join(t.staging, "shadow.safetensors"));
    sh(`mkfifo ${t.staging}/pipe.safetensors && chown -h ${OWNER.uid}:${OWNER.gid} ${t.staging}/* && touch -h -d @${OLD} ${t.staging}/*`);
    const r = t.run();
    expect(r.code, r.stderr).toBe(0); // null when it blocked until the timeout
    expect(r.stdout).toBe("");
    expect(names(t.store)).toEqual([]);
    expect(names(t.rejected)).toEqual([]);
    expect(lstatSync(join(t.staging, "linked.safetensors")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(t.staging, "shadow.safetensors")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(t.staging, "pipe.safetensors")).isFIFO()).toBe(true);
    expect(d.digest()).toEqual(before);
  });

  it("calls an upload that changed between its listing and its copy changed, and stores nothing", () => {
    const t = site();
    const staged = t.put("moving.safetensors", GOOD);
    const listing = t.py(["list", t.staging, "1", "600"], OWNER);
    expect(listing.status, listing.stderr.toString()).toBe(0);
    const item = JSON.parse(listing.stdout.toString());
    expect(item).toMatchObject({ name: Buffer.from("moving.safetensors").toString("hex"), size: GOOD.length, status: "ok" });
    // Nanoseconds since 1970 are past a double's exact integers: read them as text.
    const mtimeNs = BigInt(/"mtime_ns": (\d+)/.exec(listing.stdout.toString())![1]);
    expect(mtimeNs).toBe(BigInt(OLD) * 1_000_000_000n);
    const ids = [item.dev, item.ino, item.size, mtimeNs].map(String);
    const receive = (bytes: Buffer) => {
      const r = t.py(["receive", t.store, item.name, String(item.size), String(mtimeNs)], INTAKE, bytes);
      expect(r.status, r.stderr.toString()).toBe(0);
      return JSON.parse(r.stdout.toString());
    };
    // The upload is rewritten after it was listed: other bytes, another mtime.
    writeFileSync(staged, OTHER);
    utimesSync(staged, OLD + 60, OLD + 60);
    const send = t.py(["send", t.staging, item.name, ...ids], OWNER);
    expect(send.status).toBe(3);
    expect(send.stdout.length).toBe(0);
    expect(receive(send.stdout)).toMatchObject({ result: "changed", sha256: null });
    // A wrong MTIME_NS alone is enough, even for a file whose bytes are the same.
    writeFileSync(staged, GOOD);
    utimesSync(staged, OLD, OLD);
    const wrong = t.py(["send", t.staging, item.name, ...ids.slice(0, 3), String(mtimeNs + 1n)], OWNER);
    expect(wrong.status).toBe(3);
    expect(receive(wrong.stdout)).toMatchObject({ result: "changed" });
    // More bytes than listed: the receiver keeps nothing either.
    expect(receive(Buffer.concat([GOOD, Buffer.from([0])]))).toMatchObject({ result: "changed" });
    expect(names(t.store)).toEqual([]);
    // Settling a "stored" result for a file that changed since its listing leaves it in staging.
    utimesSync(staged, OLD + 120, OLD + 120);
    const settle = t.py(["settle", t.staging, t.rejected, item.name, ...ids, "stored", ""], OWNER);
    expect(settle.status, settle.stderr.toString()).toBe(0);
    expect(JSON.parse(settle.stdout.toString())).toMatchObject({ action: "kept" });
    expect(names(t.staging)).toEqual(["moving.safetensors"]);
  });

  it("judges the intake's own copy, whatever the owner's side said: bytes that are not a whole model never get a name in the store", () => {
    const t = site();
    const name = Buffer.from("lied.safetensors").toString("hex");
    // A part a crashed run left: the next receive removes it.
    const stale = join(t.store, ".modelshare-intake-0123456789abcdef.part");
    writeFileSync(stale, "left by a crash");
    chownSync(stale, INTAKE.uid, INTAKE.gid);
    const r = t.py(["receive", t.store, name, String(TRUNCATED.length), String(BigInt(OLD) * 1_000_000_000n)], INTAKE, TRUNCATED);
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ result: "rejected", reason: expect.stringMatching(/^incomplete: /), sha256: null });
    expect(names(t.store)).toEqual([]);
  });

  it("never overlaps a run of the same config: one that finds root's lock taken does nothing", () => {
    const t = site();
    expect(t.run().stdout).toBe("");
    expect(statSync(t.lock)).toMatchObject({ uid: 0, mode: 0o100600 }); // /run is root's: no one else can hold it
    t.put("good.safetensors", GOOD);
    // flock(1) holds the lock while the run inside it starts: that run must find it taken.
    const busy = sh(`flock ${t.lock} ${PY} -I ${t.tool} run ${t.config}`);
    expect(busy).toBe("busy: another run is still going; this one does nothing\n");
    expect(names(t.staging)).toEqual(["good.safetensors"]);
    expect(names(t.store)).toEqual([]);
    expect(t.run().stdout).toBe(`stored checkpoints/good.safetensors ${sha(GOOD)}\n`);
  });

  it("takes the owner's listing apart strictly: a line with a bad name, number, status or shape is skipped", () => {
    const t = site();
    const ok = { name: Buffer.from("ok.safetensors").toString("hex"), dev: 1, ino: 2, size: 3, mtime_ns: 4, status: "ok", reason: "" };
    const hex = (s: string) => Buffer.from(s).toString("hex");
    const lies = [
      { ...ok, name: hex("a/b") },
      { ...ok, name: hex("..") },
      { ...ok, name: hex(".hidden") },
      { ...ok, name: hex("x".repeat(256)) },
      { ...ok, name: "" },
      { ...ok, name: hex("ok2").toUpperCase() },
      { ...ok, name: "61 62" },
      { ...ok, name: hex("a\0b") },
      { ...ok, size: -1 },
      { ...ok, ino: true },
      { ...ok, mtime_ns: 1.5 },
      { ...ok, status: "stored" },
      { ...ok, reason: 7 },
      { ...ok, extra: 1 },
      ok, // the second time: a duplicate
    ].map((o) => JSON.stringify(o));
    const input = [JSON.stringify(ok), ...lies, "not json", "[".repeat(100_000)].join("\n");
    const code = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("intake", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
items, bad = m.parse_listing(sys.stdin.buffer.read())
print(json.dumps({"names": [i["name"].hex() for i in items], "bad": bad}))`;
    const r = spawnSync(PY, ["-I", "-c", code, t.tool], { input, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ names: [ok.name], bad: lies.length + 2 });
  });

  it("surveys every staging folder in one owner's step, and takes its lines apart strictly (folder index, missing folders)", () => {
    const t = site();
    t.put("good.safetensors", GOOD);
    const gone = join(t.root, "staging/absent");
    const survey = t.py(["survey", "1", "600", t.staging, gone], OWNER);
    expect(survey.status, survey.stderr.toString()).toBe(0);
    const lines = survey.stdout
      .toString()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toEqual([
      expect.objectContaining({ folder: 0, name: Buffer.from("good.safetensors").toString("hex"), status: "ok" }),
      { folder: 1, missing: true, error: "No such file or directory" },
    ]);
    const ok = { ...lines[0] };
    const input = [
      JSON.stringify(ok),
      JSON.stringify({ ...ok, folder: 2 }), // no such folder
      JSON.stringify({ ...ok, folder: -1 }),
      JSON.stringify({ ...ok, folder: undefined }),
      JSON.stringify({ ...ok, folder: 1, size: -1 }),
      JSON.stringify({ folder: 1, missing: "yes", error: "" }),
      JSON.stringify([1, 2]),
    ].join("\n");
    const code = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("intake", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
listed, bad = m.parse_survey(sys.stdin.buffer.read(), 2)
print(json.dumps({"counts": [len(x["items"]) for x in listed], "missing": [x["missing"] for x in listed], "bad": bad}))`;
    const r = spawnSync(PY, ["-I", "-c", code, t.tool], { input, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ counts: [1, 0], missing: [null, null], bad: 6 });
    // A run says which staging folder is missing and goes on with the others.
    const conf = JSON.parse(readFileSync(t.config, "utf8"));
    conf.categories.push({ name: "loras", staging: gone, store: t.store, rejected: t.rejected });
    writeFileSync(t.config, JSON.stringify(conf));
    const run = t.run();
    expect(run.stdout).toContain(`missing loras: the staging folder ${gone} is missing`);
    expect(run.stdout).toContain("stored checkpoints/good.safetensors");
  });

  it("carries a name that is not UTF-8 intact from staging into the store", () => {
    const t = site();
    const name = Buffer.concat([Buffer.from("caf"), Buffer.from([0xff]), Buffer.from(" x.safetensors")]);
    t.put(name, GOOD);
    const r = t.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`stored checkpoints/caf\\xff\\x20x.safetensors ${sha(GOOD)}\n`);
    const stored = readdirSync(t.store, { encoding: "buffer" });
    expect(stored.map((n) => n.toString("hex"))).toEqual([name.toString("hex")]);
    expect(readFileSync(Buffer.concat([Buffer.from(t.store + "/"), name])).equals(GOOD)).toBe(true);
    expect(readdirSync(t.staging)).toEqual([]);
  });
});
