import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// The store's catalog tool (components/catalog/catalog.py), run for real on trees built here:
// its judge of model files, their SHA-256, its incremental index and its framed report.
// Every fixture is made in the test: safetensors and GGUF by the writers below, pickles by
// python3's pickle module or by hand, opcode by opcode.

const TOOL = "components/catalog/catalog.py";
const NOW = 1_800_000_000; // passed as --now, so "settled" never depends on the clock
const OLD = NOW - 3600;

interface Entry {
  path: string;
  size: number;
  format: string;
  status: string;
  reason: string;
  globals?: string[];
  sha256: string | null;
  changed_from: string | null;
  changed_at: number | null;
}

interface Judged {
  code: number | null;
  stdout: string;
  stderr: string;
  lines: string[];
  entries: Map<string, Entry>;
  summary: Record<string, number>;
  readBytes: number;
  hashedFiles: number;
}

/** Runs the tool as the caller will (`python3 -I`), by path, by -c or on stdin. */
function catalog(dir: string, extra: string[] = [], how: "path" | "-c" | "stdin" = "path"): Judged {
  const source = readFileSync(TOOL, "utf8");
  const head = how === "path" ? [TOOL] : how === "-c" ? ["-c", source] : ["-"];
  const r = spawnSync("python3", ["-I", ...head, "--now", String(NOW), ...extra, dir], {
    encoding: "utf8",
    input: how === "stdin" ? source : "",
    timeout: 30_000, // a blocking FIFO open fails the test instead of hanging it
  });
  const lines = (r.stdout ?? "").split("\n").filter((l) => l !== "");
  const entries = new Map<string, Entry>();
  let summary: Record<string, number> = {};
  let readBytes = -1;
  let hashedFiles = -1;
  for (const line of lines) {
    const o = JSON.parse(line);
    if (o.summary) [summary, readBytes, hashedFiles] = [o.summary, o.read_bytes, o.hashed_files];
    else entries.set(o.path, o as Entry);
  }
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", lines, entries, summary, readBytes, hashedFiles };
}

/** Every temp folder a test made, removed at the end (a FIFO or link inside is removed, never followed). */
const temps: string[] = [];
const temp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** A fresh category folder holding `files`, all settled an hour before NOW. */
function tree(files: Record<string, Buffer>): string {
  const dir = join(temp("modelshare-catalog-"), "models");
  mkdirSync(dir);
  for (const [rel, data] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, data);
    utimesSync(p, OLD, OLD);
  }
  return dir;
}

/** The one entry a one-file tree yields. */
function judgeOne(name: string, data: Buffer, extra: string[] = []): Entry {
  const r = catalog(tree({ [name]: data }), extra);
  expect(r.code, r.stderr).toBe(0);
  const e = r.entries.get(name);
  if (!e) throw new Error(`no entry for ${name} in:\n${r.stdout}`);
  return e;
}

/** The SHA-256 node computes, to check the tool's against. */
const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** What a python3 snippet writes to stdout, as bytes. */
function py(code: string, input: Buffer = Buffer.alloc(0)): Buffer {
  const r = spawnSync("python3", ["-I", "-c", code], { input, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return r.stdout;
}

// ---- safetensors ---------------------------------------------------------------------------

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, I64: 8, U8: 1 };

/** A safetensors file: u64 header length, JSON header, zeroed tensor data in order. */
function safetensors(tensors: Record<string, { dtype: string; shape: number[] }>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    header[name] = { ...t, data_offsets: [at, at + n] };
    at += n;
  }
  return withHeader(Buffer.from(JSON.stringify(header)), at);
}

function withHeader(json: Buffer, dataBytes: number, declared: bigint = BigInt(json.length)): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declared);
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

const TWO_TENSORS = safetensors({ "w.weight": { dtype: "F32", shape: [2, 3] }, "w.bias": { dtype: "F16", shape: [3] } });

// ---- GGUF ----------------------------------------------------------------------------------

class Bytes {
  private parts: Buffer[] = [];
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return this.add(b);
  }
  u64(n: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return this.add(b);
  }
  str(s: string): this {
    return this.u64(Buffer.byteLength(s)).add(Buffer.from(s));
  }
  add(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  get length(): number {
    return this.parts.reduce((a, b) => a + b.length, 0);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const GGUF_STRING = 8;
const GGUF_ARRAY = 9;
const GGUF_U32 = 4;
const GGML_F32 = 0;
const GGML_Q4_0 = 2; // blocks of 32 values in 18 bytes

/**
 * A GGUF v3 file: a string, an array of strings and a u32 in its metadata, two F32 tensors
 * (4x2 and 8: 32 bytes each) and one Q4_0 tensor of 64 values (2 blocks: 36 bytes), each at an
 * offset aligned to 32 from a data section aligned to 32. `qType` replaces Q4_0's type id.
 */
function gguf(qType = GGML_Q4_0): Buffer {
  const tensors: [string, number[], number, number][] = [
    ["a", [4, 2], GGML_F32, 32],
    ["b", [8], GGML_F32, 32],
    ["q", [64], qType, 36],
  ];
  const h = new Bytes().add(Buffer.from("GGUF")).u32(3).u64(tensors.length).u64(3);
  h.str("general.architecture").u32(GGUF_STRING).str("llama");
  h.str("tokenizer.ggml.tokens").u32(GGUF_ARRAY).u32(GGUF_STRING).u64(3).str("<s>").str("</s>").str("hello");
  h.str("llama.context_length").u32(GGUF_U32).u32(4096);
  let offset = 0;
  let end = 0;
  for (const [name, dims, type, bytes] of tensors) {
    h.str(name).u32(dims.length);
    for (const d of dims) h.u64(d);
    h.u32(type).u64(offset);
    end = offset + bytes;
    offset += Math.ceil(bytes / 32) * 32;
  }
  const pad = (32 - (h.length % 32)) % 32;
  return Buffer.concat([h.done(), Buffer.alloc(pad + end)]);
}

// ---- pickles -------------------------------------------------------------------------------

/** Pickle opcodes, to write the pickles torch would make without having torch. */
const op = {
  proto: (v: number) => Buffer.from([0x80, v]),
  global: (module: string, name: string) => Buffer.from(`c${module}\n${name}\n`),
  str: (s: string) => Buffer.concat([Buffer.from([0x8c, s.length]), Buffer.from(s)]), // SHORT_BINUNICODE
  memoize: Buffer.from([0x94]),
  binget: (i: number) => Buffer.from([0x68, i]),
  stackGlobal: Buffer.from([0x93]),
  emptyTuple: Buffer.from(")"),
  emptyDict: Buffer.from("}"),
  reduce: Buffer.from("R"),
  pop: Buffer.from("0"),
  mark: Buffer.from("("),
  popMark: Buffer.from("1"),
  none: Buffer.from("N"),
  stop: Buffer.from("."),
};

/**
 * The globals a torch checkpoint's data pickle imports: collections.OrderedDict by GLOBAL (and
 * called), torch._utils._rebuild_tensor_v2 by STACK_GLOBAL from two strings, and
 * torch._utils._rebuild_parameter by STACK_GLOBAL whose module string comes back by BINGET.
 */
const TORCH_STYLE = Buffer.concat([
  op.proto(2),
  op.global("collections", "OrderedDict"),
  op.emptyTuple,
  op.reduce,
  op.str("torch._utils"),
  op.memoize,
  op.str("_rebuild_tensor_v2"),
  op.memoize,
  op.stackGlobal,
  op.pop,
  op.binget(0),
  op.str("_rebuild_parameter"),
  op.stackGlobal,
  op.pop,
  op.global("torch", "FloatStorage"),
  op.pop,
  op.stop,
]);
const TORCH_GLOBALS = ["collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2"];

const markerDir = temp("modelshare-catalog-marker-");
const MARKER = join(markerDir, "pwned");

/** pickle.dumps of an object whose __reduce__ is os.system("touch MARKER"). */
function maliciousPickle(protocol: number): Buffer {
  return py(
    `import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, (${JSON.stringify(`touch ${MARKER}`)},))
sys.stdout.buffer.write(pickle.dumps(Evil(), protocol=${protocol}))`,
  );
}

/** A zip the way torch.save writes one: archive/data.pkl (stored or deflated), archive/version. */
function torchZip(dataPkl: Buffer, deflate = false): Buffer {
  return py(
    `import io, sys, zipfile
data = sys.stdin.buffer.read()
out = io.BytesIO()
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if ${deflate ? "True" : "False"} else zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", data)
    z.writestr("archive/version", "3\\n")
    z.writestr("archive/data/0", bytes(24))
sys.stdout.buffer.write(out.getvalue())`,
    dataPkl,
  );
}

const PLAIN_PICKLE = py(`import pickle, sys; sys.stdout.buffer.write(pickle.dumps({"step": 3, "lr": [0.1] * 40}))`);

describe("catalog.py on safetensors, run for real", () => {
  it("accepts a whole file whose tensors tile the data exactly", () => {
    expect(judgeOne("m.safetensors", TWO_TENSORS)).toEqual({
      path: "m.safetensors",
      size: TWO_TENSORS.length,
      format: "safetensors",
      status: "ok",
      reason: "",
      sha256: sha(TWO_TENSORS),
      changed_from: null,
      changed_at: null,
    });
  });

  it("calls a file cut short incomplete, whether in its data or in its header", () => {
    expect(judgeOne("m.safetensors", TWO_TENSORS.subarray(0, TWO_TENSORS.length - 5)).status).toBe("incomplete");
    const json = Buffer.from('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}');
    const lying = withHeader(json, 8, BigInt(json.length + 1000));
    expect(judgeOne("m.safetensors", lying)).toMatchObject({ status: "incomplete", reason: expect.stringContaining("ends before it") });
  });

  it("calls a header length over 100 MB invalid even in a 1 KiB file: no reader takes it, so no more upload can mend it", () => {
    const absurd = withHeader(Buffer.from("{}"), 1014, 200n << 20n);
    expect(absurd.length).toBe(1024);
    expect(judgeOne("m.safetensors", absurd)).toMatchObject({ status: "invalid", reason: expect.stringContaining("100 MB") });
  });

  it("calls bytes after the last tensor invalid", () => {
    const e = judgeOne("m.sft", Buffer.concat([TWO_TENSORS, Buffer.alloc(4)]));
    expect(e).toMatchObject({ format: "safetensors", status: "invalid", reason: "4 trailing bytes after the last tensor." });
  });

  it("calls a tensor whose data_offsets disagree with its dtype and shape invalid", () => {
    const json = Buffer.from('{"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}');
    expect(judgeOne("m.safetensors", withHeader(json, 20))).toMatchObject({ status: "invalid", reason: expect.stringContaining("needs 24 bytes") });
    const unknownDtype = Buffer.from('{"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}');
    expect(judgeOne("m.safetensors", withHeader(unknownDtype, 4)).status).toBe("invalid");
  });
});

describe("catalog.py on GGUF, run for real", () => {
  const file = gguf();

  it("accepts a whole GGUF v3 file with string and array metadata and F32 and Q4_0 tensors", () => {
    expect(judgeOne("m.gguf", file)).toMatchObject({ format: "gguf", status: "ok", reason: "" });
  });

  it("judges a tensor of a type it does not know by its offset alone, and says so", () => {
    expect(judgeOne("m.gguf", gguf(99))).toMatchObject({ status: "ok", reason: "unknown tensor type 99 (only its offset was checked)." });
  });

  it("calls it incomplete when cut by one byte in its tensor data (the Q4_0 tensor's last block) or in its header", () => {
    expect(judgeOne("m.gguf", file.subarray(0, file.length - 1)).status).toBe("incomplete");
    expect(judgeOne("m.gguf", file.subarray(0, 60)).status).toBe("incomplete");
  });

  it("calls a safetensors file renamed .gguf invalid (bad magic), and version 1 invalid", () => {
    expect(judgeOne("m.gguf", TWO_TENSORS)).toMatchObject({ status: "invalid", reason: expect.stringContaining("bad magic") });
    const v1 = Buffer.from(file);
    v1.writeUInt32LE(1, 4);
    expect(judgeOne("m.gguf", v1)).toMatchObject({ status: "invalid", reason: "GGUF version 1 is an unsupported old version." });
  });
});

describe("catalog.py on pickles, never unpickling them", () => {
  it("calls os.system in a pickle dangerous, by STACK_GLOBAL (protocol 4) and by GLOBAL (protocol 2), and never runs it", () => {
    for (const protocol of [4, 2]) {
      const e = judgeOne("evil.pt", maliciousPickle(protocol));
      expect(e.status, `protocol ${protocol}`).toBe("dangerous");
      expect(e.format).toBe("pickle");
      expect(e.globals).toEqual(["posix.system"]);
      expect(e.reason).toContain("posix.system");
    }
    expect(existsSync(MARKER)).toBe(false);
  });

  it("accepts a torch-style pickle and lists its globals, resolving STACK_GLOBAL through the memo", () => {
    expect(judgeOne("model.pth", TORCH_STYLE)).toMatchObject({ format: "pickle", status: "ok", globals: TORCH_GLOBALS });
  });

  it("resolves STACK_GLOBAL from the stack the unpickler has, not the last strings written", () => {
    // "os" and "system" are memoized and popped; "collections", "OrderedDict" are the last
    // strings written, also popped; the BINGETs put os and system back for STACK_GLOBAL.
    const hidden = Buffer.concat([
      op.proto(4),
      ...[op.str("os"), op.memoize, op.str("system"), op.memoize, op.pop, op.pop],
      ...[op.str("collections"), op.str("OrderedDict"), op.pop, op.pop],
      ...[op.binget(0), op.binget(1), op.stackGlobal, op.stop],
    ]);
    expect(judgeOne("m.pt", hidden)).toMatchObject({ status: "dangerous", globals: ["os.system"] });
    // POP_MARK drops everything down to the MARK, harmless names included.
    const marked = Buffer.concat([
      op.proto(4),
      ...[op.str("os"), op.str("system"), op.mark, op.str("collections"), op.str("OrderedDict"), op.popMark],
      ...[op.stackGlobal, op.stop],
    ]);
    expect(judgeOne("m.pt", marked)).toMatchObject({ status: "dangerous", globals: ["os.system"] });
    // Names that are not strings at all cannot be judged, so they count as dangerous.
    const opaque = Buffer.concat([op.proto(4), op.emptyDict, op.emptyDict, op.stackGlobal, op.stop]);
    expect(judgeOne("m.pt", opaque)).toMatchObject({ status: "dangerous", globals: ["?unresolved"] });
  });

  it("looks inside torch zips: a stored data.pkl of tensors is ok, a deflated one running os.system is dangerous", () => {
    expect(judgeOne("model.ckpt", torchZip(TORCH_STYLE))).toMatchObject({ format: "torch-zip", status: "ok", globals: TORCH_GLOBALS });
    const evil = judgeOne("model.bin", torchZip(maliciousPickle(2), true));
    expect(evil).toMatchObject({ format: "torch-zip", status: "dangerous", globals: ["posix.system"] });
    expect(existsSync(MARKER)).toBe(false);
  });

  it("scans every pickle of torch's legacy format and stops at its raw storage bytes", () => {
    const head = py(`import pickle, sys
w = sys.stdout.buffer.write
w(pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2))
w(pickle.dumps(1001, protocol=2))
w(pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))`);
    const keys = py(`import pickle, sys; sys.stdout.buffer.write(pickle.dumps(["0"], protocol=2))`);
    // The storage's raw bytes: its element count, 640 = 0x280, begins like a protocol 2 pickle.
    const raw = Buffer.alloc(8 + 640 * 4);
    raw.writeBigInt64LE(640n);
    expect([...raw.subarray(0, 2)]).toEqual([0x80, 0x02]);
    const legacy = Buffer.concat([head, TORCH_STYLE, keys, raw]);
    expect(judgeOne("legacy.pt", legacy)).toMatchObject({ format: "pickle", status: "ok", globals: TORCH_GLOBALS });
    // The data pickle is the fourth: an os.system there is found too.
    const evil = Buffer.concat([head, maliciousPickle(2), keys, raw]);
    expect(judgeOne("legacy.pt", evil)).toMatchObject({ status: "dangerous", globals: ["posix.system"] });
  });

  it("calls a pickle cut mid-stream incomplete", () => {
    expect(judgeOne("m.pt", PLAIN_PICKLE)).toMatchObject({ status: "ok", globals: [] });
    const cut = PLAIN_PICKLE.subarray(0, Math.floor(PLAIN_PICKLE.length / 2));
    expect(judgeOne("m.pt", cut)).toMatchObject({ status: "incomplete", reason: expect.stringContaining("cut off") });
  });

  it("calls a .bin that is neither pickle nor zip unknown", () => {
    expect(judgeOne("vocab.bin", Buffer.from("\x00\x01 plain bytes"))).toMatchObject({ format: "unknown", status: "unknown", reason: "not a pickle or zip." });
  });
});

describe("catalog.py walking a category folder", () => {
  it("names the extension of a file it does not check", () => {
    expect(judgeOne("README.md", Buffer.from("# hi\n"))).toMatchObject({
      format: "unknown",
      status: "unknown",
      reason: "not a model format modelshare checks (.md).",
    });
  });

  it("leaves a file modified within --stable-seconds of --now alone", () => {
    const dir = tree({ "fresh.safetensors": TWO_TENSORS });
    utimesSync(join(dir, "fresh.safetensors"), NOW - 10, NOW - 10);
    expect(catalog(dir).entries.get("fresh.safetensors")).toMatchObject({ status: "unstable" });
    expect(catalog(dir, ["--stable-seconds", "5"]).entries.get("fresh.safetensors")).toMatchObject({ status: "ok" });
  });

  it("never follows a symlink, to a file or to a folder, and never opens a FIFO", () => {
    const outside = tree({ "target.safetensors": TWO_TENSORS, "elsewhere/inside.safetensors": TWO_TENSORS });
    const fifoOutside = join(outside, "pipe");
    spawnSync("mkfifo", [fifoOutside]);
    const dir = tree({ "real.safetensors": TWO_TENSORS });
    symlinkSync(join(outside, "target.safetensors"), join(dir, "link.safetensors"));
    symlinkSync(fifoOutside, join(dir, "pipe-link.pt"));
    symlinkSync(join(outside, "elsewhere"), join(dir, "linked-folder"));
    expect(spawnSync("mkfifo", [join(dir, "upload.pt")]).status).toBe(0);
    const r = catalog(dir);
    expect(r.code, r.stderr).toBe(0);
    expect([...r.entries.keys()]).toEqual(["link.safetensors", "linked-folder", "pipe-link.pt", "real.safetensors", "upload.pt"]);
    for (const link of ["link.safetensors", "pipe-link.pt", "linked-folder"]) {
      expect(r.entries.get(link), link).toMatchObject({ format: "unknown", status: "skipped", reason: "a symbolic link (not followed), never opened." });
    }
    expect(r.entries.get("upload.pt")).toMatchObject({ status: "skipped", reason: "a FIFO, never opened." });
    expect(r.entries.get("real.safetensors")?.status).toBe("ok");
  });

  it("prints a file name with a newline and bytes that are not UTF-8 on one line, and the name survives", () => {
    const dir = tree({});
    const name = Buffer.concat([Buffer.from("odd\nname"), Buffer.from([0xff, 0xc3]), Buffer.from(".safetensors")]);
    const p = Buffer.concat([Buffer.from(dir + "/"), name]);
    writeFileSync(p, TWO_TENSORS);
    utimesSync(p, OLD, OLD);
    const r = catalog(dir);
    expect(r.lines).toHaveLength(2);
    expect(r.lines[0]).toContain('"path": "odd\\nname\\udcff\\udcc3.safetensors"');
    expect(JSON.parse(r.lines[0])).toMatchObject({ path: "odd\nname\udcff\udcc3.safetensors", status: "ok" });
  });

  it("walks subfolders in path order, counts every status, and runs the same by path, by -c and from stdin", () => {
    const dir = tree({
      "sdxl/base.safetensors": TWO_TENSORS,
      "sdxl/base.safetensors.part": TWO_TENSORS,
      "llm/q.gguf": gguf(),
      "llm.gguf": gguf(), // sorts before llm/…: "." is below "/"
      "llm/cut.gguf": gguf().subarray(0, 100),
      "old/model.ckpt": torchZip(TORCH_STYLE),
      "old/evil.pt": maliciousPickle(4),
      "bad.safetensors": Buffer.concat([TWO_TENSORS, Buffer.alloc(1)]),
      "fresh.gguf": gguf(),
    });
    utimesSync(join(dir, "fresh.gguf"), NOW, NOW);
    symlinkSync("/etc/passwd", join(dir, "sdxl/passwd.safetensors"));
    const r = catalog(dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines.slice(0, -1).map((l) => JSON.parse(l).path)).toEqual([
      "bad.safetensors",
      "fresh.gguf",
      "llm.gguf",
      "llm/cut.gguf",
      "llm/q.gguf",
      "old/evil.pt",
      "old/model.ckpt",
      "sdxl/base.safetensors",
      "sdxl/base.safetensors.part",
      "sdxl/passwd.safetensors",
    ]);
    expect(r.summary).toEqual({ ok: 4, incomplete: 1, invalid: 1, dangerous: 1, unstable: 1, unknown: 1, skipped: 1 });
    expect(catalog(dir, [], "-c").stdout).toBe(r.stdout);
    expect(catalog(dir, [], "stdin").stdout).toBe(r.stdout);
    expect(existsSync(MARKER)).toBe(false);
  });

  it("refuses, with exit 2 and one sentence, a DIR that is a symlink, a file or missing, and bad arguments", () => {
    const dir = tree({ "a.safetensors": TWO_TENSORS });
    const link = join(dir, "..", "link");
    symlinkSync(dir, link);
    for (const args of [[link], [join(dir, "a.safetensors")], [join(dir, "missing")]]) {
      const r = catalog(args[0]);
      expect([r.code, r.stdout], args[0]).toEqual([2, ""]);
      expect(r.stderr.trim().split("\n"), args[0]).toHaveLength(1);
    }
    expect(catalog(dir, ["--stable-seconds", "soon"]).code).toBe(2);
  });
});

// ---- hashes, the index and the framed report --------------------------------------------

interface IndexEntry {
  dev: number;
  ino: number;
  size: number;
  mtime_ns: number;
  sha256: string;
  format: string;
  status: string;
  reason: string;
  globals: string[] | null;
  since: number;
  changed_from: string | null;
  changed_at: number | null;
}

/** The entries of the index the tool wrote. */
function readIndex(file: string): Record<string, IndexEntry> {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  expect(doc).toMatchObject({ format: "modelshare-catalog-index", version: 1 });
  return doc.entries;
}

/** A category folder and an index file beside it (in a folder of its own, as the store has it). */
function indexed(files: Record<string, Buffer>): { dir: string; index: string } {
  const dir = tree(files);
  const folder = join(dir, "..", "index");
  mkdirSync(folder);
  return { dir, index: join(folder, "catalog.json") };
}

/** Rewrites a file with `data` and a new mtime (still settled before NOW). */
function rewrite(p: string, data: Buffer, mtime = OLD + 60) {
  writeFileSync(p, data);
  utimesSync(p, mtime, mtime);
}

/** The tool's framed report, raw: its stdout as bytes, split into lines. */
function framed(dir: string, extra: string[] = []): { code: number | null; lines: Buffer[]; stderr: string } {
  const r = spawnSync("python3", ["-I", TOOL, "--now", String(NOW), ...extra, dir], { timeout: 30_000 });
  const lines: Buffer[] = [];
  let at = 0;
  for (let nl = r.stdout.indexOf(10); nl >= 0; at = nl + 1, nl = r.stdout.indexOf(10, at)) lines.push(r.stdout.subarray(at, nl));
  expect(at, "the output ends with a newline").toBe(r.stdout.length);
  return { code: r.status, lines, stderr: r.stderr.toString() };
}

/** Bash's escape_line (components/shell/prelude.sh, sourced) of the bytes `name`. */
function bashEscape(name: Buffer): Buffer {
  const hex = [...name].map((b) => "\\x" + b.toString(16).padStart(2, "0")).join("");
  const script = 'source components/shell/prelude.sh; printf -v name %b "$1"; escape_line "$name"; printf %s "$escaped"';
  const r = spawnSync("bash", ["-c", script, "_", hex]);
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout;
}

describe("catalog.py hashing every file it judges", () => {
  it("gives each judged file node's SHA-256 of its bytes, read from the file it judged, and counts what it read", () => {
    const files: Record<string, Buffer> = {
      "m.safetensors": TWO_TENSORS,
      "cut.gguf": gguf().subarray(0, 100),
      "evil.pt": maliciousPickle(4),
      "README.md": Buffer.from("# hi\n"),
      "empty.pt": Buffer.alloc(0),
    };
    const dir = tree(files);
    symlinkSync(join(dir, "m.safetensors"), join(dir, "link.safetensors"));
    const r = catalog(dir);
    expect(r.code, r.stderr).toBe(0);
    for (const [name, data] of Object.entries(files)) expect(r.entries.get(name)?.sha256, name).toBe(sha(data));
    expect(r.entries.get("cut.gguf")?.status).toBe("incomplete");
    expect(r.entries.get("evil.pt")?.status).toBe("dangerous");
    expect(r.entries.get("link.safetensors")).toMatchObject({ status: "skipped", sha256: null });
    // Every byte of every file was read at least once (the hash), some twice (the judging).
    const total = Object.values(files).reduce((a, b) => a + b.length, 0);
    expect(r.readBytes).toBeGreaterThanOrEqual(total);
    expect(r.readBytes).toBeLessThanOrEqual(2 * total);
    expect(r.hashedFiles).toBe(5);
    expect(existsSync(MARKER)).toBe(false);
  });

  it("counts what zipfile reads of a torch zip too, beyond the bytes the hash reads", () => {
    const zip = torchZip(TORCH_STYLE);
    const r = catalog(tree({ "model.ckpt": zip }));
    expect(r.entries.get("model.ckpt")).toMatchObject({ status: "ok", sha256: sha(zip) });
    expect(r.hashedFiles).toBe(1);
    expect(r.readBytes).toBeGreaterThan(zip.length + TORCH_STYLE.length);
  });

  it("gives the same file in two category folders the same hash", () => {
    const dir = tree({ "sdxl/a.safetensors": TWO_TENSORS, "flux/copy.safetensors": TWO_TENSORS, "flux/other.gguf": gguf() });
    const r = catalog(dir);
    expect(r.entries.get("sdxl/a.safetensors")?.sha256).toBe(sha(TWO_TENSORS));
    expect(r.entries.get("flux/copy.safetensors")?.sha256).toBe(r.entries.get("sdxl/a.safetensors")?.sha256);
    expect(r.entries.get("flux/other.gguf")?.sha256).toBe(sha(gguf()));
  });

  it("gives a file still being written (modified within --stable-seconds) no hash and no index entry, and forgets its old one", () => {
    const { dir, index } = indexed({ "grow.gguf": gguf(), "done.gguf": gguf() });
    expect(catalog(dir, ["--index", index]).code).toBe(0);
    expect(Object.keys(readIndex(index))).toEqual(["done.gguf", "grow.gguf"]);
    rewrite(join(dir, "grow.gguf"), Buffer.concat([gguf(), Buffer.alloc(64)]), NOW - 5);
    const r = catalog(dir, ["--index", index]);
    expect(r.entries.get("grow.gguf")).toMatchObject({ status: "unstable", sha256: null, changed_from: null });
    expect(Object.keys(readIndex(index))).toEqual(["done.gguf"]);
  });

  it("writes nothing anywhere without --index", () => {
    const dir = tree({ "m.safetensors": TWO_TENSORS });
    const parent = join(dir, "..");
    const before = spawnSync("ls", ["-aR", parent], { encoding: "utf8" }).stdout;
    expect(catalog(dir).entries.get("m.safetensors")?.sha256).toBe(sha(TWO_TENSORS));
    expect(spawnSync("ls", ["-aR", parent], { encoding: "utf8" }).stdout).toBe(before);
  });
});

describe("catalog.py --index", () => {
  const files = { "m.safetensors": TWO_TENSORS, "llm/q.gguf": gguf(), "old/model.ckpt": torchZip(TORCH_STYLE), "bad.pt": maliciousPickle(2) };

  it("records every hashed file by path, with its identity, verdict and hash, in a 0600 file", () => {
    const { dir, index } = indexed(files);
    const r = catalog(dir, ["--index", index]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const entries = readIndex(index);
    expect(Object.keys(entries).sort()).toEqual(["bad.pt", "llm/q.gguf", "m.safetensors", "old/model.ckpt"]);
    const st = statSync(join(dir, "old/model.ckpt"), { bigint: true });
    expect(entries["old/model.ckpt"]).toEqual({
      dev: Number(st.dev),
      ino: Number(st.ino),
      size: Number(st.size),
      mtime_ns: Number(st.mtimeNs),
      sha256: sha(files["old/model.ckpt"]),
      format: "torch-zip",
      status: "ok",
      reason: "",
      globals: TORCH_GLOBALS,
      since: NOW,
      changed_from: null,
      changed_at: null,
    });
    expect(entries["bad.pt"]).toMatchObject({ status: "dangerous", globals: ["posix.system"], sha256: sha(files["bad.pt"]) });
    expect(statSync(index).mode & 0o777).toBe(0o600);
    expect(existsSync(MARKER)).toBe(false);
  });

  it("reads 0 bytes on a second run over an unchanged tree, and reports the same rows", () => {
    const { dir, index } = indexed(files);
    const first = catalog(dir, ["--index", index]);
    expect(first.readBytes).toBeGreaterThan(0);
    const second = catalog(dir, ["--index", index]);
    expect([second.readBytes, second.hashedFiles]).toEqual([0, 0]);
    expect(second.lines.slice(0, -1)).toEqual(first.lines.slice(0, -1));
    expect(second.summary).toEqual(first.summary);
    const closing = framed(dir, ["--index", index, "--frame", ""]).lines.at(-1)?.toString();
    expect(closing).toBe(`report: catalog 0 0 ${dir}`);
  });

  it("marks a file rewritten with other content changed from its old hash, and keeps that on later runs", () => {
    const { dir, index } = indexed(files);
    catalog(dir, ["--index", index]);
    const other = safetensors({ "w.weight": { dtype: "F32", shape: [3, 2] }, "w.bias": { dtype: "F16", shape: [3] } });
    other.write("X", 20); // same size, other bytes
    rewrite(join(dir, "m.safetensors"), other);
    const r = catalog(dir, ["--index", index, "--now", String(NOW + 100)]);
    expect(r.hashedFiles).toBe(1);
    expect(r.entries.get("m.safetensors")).toMatchObject({ sha256: sha(other), changed_from: sha(TWO_TENSORS), changed_at: NOW + 100 });
    expect(readIndex(index)["m.safetensors"]).toMatchObject({ sha256: sha(other), since: NOW + 100, changed_from: sha(TWO_TENSORS), changed_at: NOW + 100 });
    expect(readIndex(index)["llm/q.gguf"]).toMatchObject({ since: NOW, changed_from: null });
    // Reused on the next run (nothing read), it keeps its change.
    const later = catalog(dir, ["--index", index, "--now", String(NOW + 200)]);
    expect(later.readBytes).toBe(0);
    expect(later.entries.get("m.safetensors")).toMatchObject({ changed_from: sha(TWO_TENSORS), changed_at: NOW + 100 });
    expect(readIndex(index)["m.safetensors"]).toMatchObject({ since: NOW + 100, changed_from: sha(TWO_TENSORS) });
  });

  it("reads a file rewritten with the same content again, but keeps its since and marks no change", () => {
    const { dir, index } = indexed(files);
    catalog(dir, ["--index", index]);
    rewrite(join(dir, "llm/q.gguf"), gguf());
    const r = catalog(dir, ["--index", index, "--now", String(NOW + 100)]);
    expect([r.hashedFiles, r.readBytes >= gguf().length]).toEqual([1, true]);
    expect(r.entries.get("llm/q.gguf")).toMatchObject({ sha256: sha(gguf()), changed_from: null, changed_at: null });
    expect(readIndex(index)["llm/q.gguf"]).toMatchObject({ since: NOW, changed_from: null, mtime_ns: (OLD + 60) * 1e9 });
  });

  it("drops the entry of a file no longer there", () => {
    const { dir, index } = indexed(files);
    catalog(dir, ["--index", index]);
    unlinkSync(join(dir, "bad.pt"));
    const r = catalog(dir, ["--index", index]);
    expect(r.entries.has("bad.pt")).toBe(false);
    expect(Object.keys(readIndex(index)).sort()).toEqual(["llm/q.gguf", "m.safetensors", "old/model.ckpt"]);
  });

  it("ignores a symlink planted as the index, says so in one line, never touches its target and puts a regular file there", () => {
    const { dir, index } = indexed(files);
    const victim = join(temp("modelshare-catalog-victim-"), "victim.json");
    const forged = { format: "modelshare-catalog-index", version: 1, rules: 1, entries: {} };
    writeFileSync(victim, JSON.stringify(forged));
    const victimBefore = readFileSync(victim);
    symlinkSync(victim, index);
    const r = catalog(dir, ["--index", index]);
    expect(r.code).toBe(0);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/index .* is a symbolic link: ignored, a new one replaces it\.$/)]);
    expect(readFileSync(victim)).toEqual(victimBefore);
    expect(lstatSync(index).isFile()).toBe(true);
    expect(Object.keys(readIndex(index))).toHaveLength(4);
  });

  it("ignores an index that does not parse or is not a file, starting afresh, and replaces it", () => {
    const { dir, index } = indexed(files);
    catalog(dir, ["--index", index]);
    const good = readFileSync(index);
    writeFileSync(index, good.subarray(0, good.length - 10));
    const r = catalog(dir, ["--index", index]);
    expect(r.stderr).toMatch(/is not a catalog index \(.*\): ignored, a new one replaces it\.\n$/);
    expect(r.hashedFiles).toBe(4);
    expect(readFileSync(index)).toEqual(good);
    // A FIFO there is never opened for reading (that would block), only replaced.
    unlinkSync(index);
    expect(spawnSync("mkfifo", [index]).status).toBe(0);
    const f = catalog(dir, ["--index", index]);
    expect(f.stderr).toMatch(/is a FIFO: ignored/);
    expect(readFileSync(index)).toEqual(good);
  });

  it("refuses, with exit 2 and a line naming it, an index folder that is a symlink", () => {
    const { dir, index } = indexed(files);
    const linked = join(dir, "..", "linked-index");
    symlinkSync(join(dir, "..", "index"), linked);
    const r = catalog(dir, ["--index", join(linked, "catalog.json")]);
    expect([r.code, r.stdout]).toEqual([2, ""]);
    // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR (or ELOOP): either way, named.
    expect(r.stderr).toMatch(
      new RegExp(`^catalog\\.py: the index's folder ${linked} is not a directory that can be opened without following a link \\([^)]+\\)\\.\\n$`),
    );
    expect(existsSync(index)).toBe(false);
  });

  it("with --no-write reuses the index but leaves it byte for byte as it was", () => {
    const { dir, index } = indexed(files);
    catalog(dir, ["--index", index]);
    const before = readFileSync(index);
    const mtime = statSync(index).mtimeMs;
    writeFileSync(join(dir, "new.gguf"), gguf());
    utimesSync(join(dir, "new.gguf"), OLD, OLD);
    unlinkSync(join(dir, "bad.pt"));
    const r = catalog(dir, ["--index", index, "--no-write"]);
    expect(r.code, r.stderr).toBe(0);
    expect([r.hashedFiles, r.entries.get("new.gguf")?.sha256]).toEqual([1, sha(gguf())]);
    expect(readFileSync(index)).toEqual(before);
    expect(statSync(index).mtimeMs).toBe(mtime);
    expect(spawnSync("ls", ["-a", join(index, "..")], { encoding: "utf8" }).stdout).toBe(".\n..\ncatalog.json\n");
  });

  it("never waits for the index's lock (whoever holds the owner's uid could hold it forever): it reuses the index and writes nothing", () => {
    const { dir, index } = indexed(files);
    catalog(dir, ["--index", index]);
    const before = readFileSync(index);
    writeFileSync(join(dir, "new.gguf"), gguf());
    utimesSync(join(dir, "new.gguf"), OLD, OLD);
    // flock(1) holds an exclusive lock on the folder while the catalog runs (the run's
    // spawnSync timeout fails the test if it waited).
    const held = spawnSync("flock", ["-x", join(index, ".."), "python3", "-I", TOOL, "--now", String(NOW), "--index", index, dir], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(held.status, held.stderr).toBe(0);
    expect(held.stderr).toContain("is locked by another run: this run reuses the index and writes nothing.");
    expect(held.stdout).toContain('"path": "new.gguf"');
    expect(readFileSync(index)).toEqual(before);
  });

  it("refuses --no-write without --index, a bad --frame and an --index without a file name", () => {
    const dir = tree({});
    for (const args of [["--no-write"], ["--frame", "ABC"], ["--frame", "0".repeat(31)], ["--index", dir + "/"]]) {
      const r = catalog(dir, args);
      expect([r.code, r.stdout], args.join(" ")).toEqual([2, ""]);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
  });
});

describe("catalog.py --frame", () => {
  const FRAME = "0123456789abcdef0123456789abcdef";

  it("prints one report line per entry in path order, with - for what is missing and the reason as one field", () => {
    const { dir, index } = indexed({ "b.safetensors": TWO_TENSORS, "a b.md": Buffer.from("hi\n"), "c.gguf": gguf() });
    catalog(dir, ["--index", index]);
    rewrite(join(dir, "b.safetensors"), Buffer.concat([TWO_TENSORS, Buffer.alloc(1)]));
    utimesSync(join(dir, "c.gguf"), NOW, NOW);
    symlinkSync("/etc/passwd", join(dir, "d.pt"));
    const r = framed(dir, ["--index", index, "--frame", FRAME]);
    expect(r.code, r.stderr).toBe(0);
    const size = TWO_TENSORS.length;
    // Read: the hash of b.safetensors, and the 8-byte length and the header its check read.
    const headerLength = Number(TWO_TENSORS.readBigUInt64LE(0));
    expect(r.lines.map(String)).toEqual([
      `${FRAME} report: model 3 unknown unknown ${sha(Buffer.from("hi\n"))} - not\\x20a\\x20model\\x20format\\x20modelshare\\x20checks\\x20(.md). a b.md`,
      `${FRAME} report: model ${size + 1} safetensors invalid ${sha(Buffer.concat([TWO_TENSORS, Buffer.alloc(1)]))} ${sha(TWO_TENSORS)} 1\\x20trailing\\x20bytes\\x20after\\x20the\\x20last\\x20tensor. b.safetensors`,
      `${FRAME} report: model ${gguf().length} gguf unstable - - modified\\x20less\\x20than\\x2060s\\x20ago:\\x20left\\x20alone\\x20until\\x20it\\x20settles. c.gguf`,
      `${FRAME} report: model 11 unknown skipped - - a\\x20symbolic\\x20link\\x20(not\\x20followed),\\x20never\\x20opened. d.pt`,
      `${FRAME} report: catalog ${size + 1 + 8 + headerLength} 1 ${dir}`,
    ]);
    // Unframed: the same lines without the frame; an ok file's empty reason is -.
    const plain = framed(tree({ "m.safetensors": TWO_TENSORS }), ["--frame", ""]).lines.map(String);
    expect(plain[0]).toBe(`report: model ${size} safetensors ok ${sha(TWO_TENSORS)} - - m.safetensors`);
  });

  it("escapes paths byte for byte as the shell's escape_line does, so a name cannot break or forge a line", () => {
    const names = [
      Buffer.from("new\nline.pt"),
      Buffer.from("tab\there"),
      Buffer.from("cr\rhere"),
      Buffer.from("back\\slash"),
      Buffer.from("esc\x1b[31mred"),
      Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2e, 0x70, 0x74]), // bad<0xff>.pt
      Buffer.from("rtl\u202efdp.safetensors"),
      Buffer.from("nel\u0085x"),
      Buffer.from("café é"),
      Buffer.from("a space.md"),
      Buffer.from("del\x7fx"),
    ];
    const dir = tree({});
    for (const name of names) {
      const p = Buffer.concat([Buffer.from(dir + "/"), name]);
      writeFileSync(p, Buffer.from("x"));
      utimesSync(p, OLD, OLD);
    }
    const r = framed(dir, ["--frame", ""]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines).toHaveLength(names.length + 1);
    // The path is what follows the 8th space (its own spaces kept: it is the last field).
    const paths = r.lines.slice(0, -1).map((l) => {
      let at = 0;
      for (let i = 0; i < 8; i++) at = l.indexOf(32, at) + 1;
      return l.subarray(at);
    });
    const sorted = [...names].sort(Buffer.compare);
    expect(paths.map(String)).toEqual(sorted.map((n) => bashEscape(n).toString()));
    expect(Buffer.concat(paths)).toEqual(Buffer.concat(sorted.map(bashEscape)));
    // What that means, spelled out for a few.
    expect(paths.map(String)).toEqual(
      expect.arrayContaining([
        "new\\nline.pt",
        "bad\\xff.pt",
        "rtl\\xe2\\x80\\xaefdp.safetensors",
        "nel\\xc2\\x85x",
        "café é",
        "back\\\\slash",
        "esc\\x1b[31mred",
      ]),
    );
  });
});
