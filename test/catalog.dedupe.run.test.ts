import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderCatalog, renderCatalogDedupe } from "../components/catalog/program";
import { catalogSchema } from "../components/catalog/schema";
import { quote } from "../components/shell/quote";
import { renderStorageLayout } from "../components/storage/layout";
import { parse, type ComponentCheck } from "../ops/check";
import { asOwner, decoy, OWNER } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot } from "./helpers/run";

/**
 * The catalog's opt-in dedupe for real: converge puts the tool and the index folder in place,
 * the owner uploads copies of one model, and the dedupe program (`bash -s check`) links every
 * other name of the same bytes to one file, as the owner. MODELSHARE_CATALOG_HOME keeps the
 * tool and index in a temp folder. The writer race is driven through catalog.py's own
 * replace_name, called from a python3 snippet (no test hook in the tool).
 */
const F = "00112233445566778899aabbccddeeff";
const TOOL = "components/catalog/catalog.py";

function site() {
  const root = tempRoot();
  const s = localStorage({ root, owner: OWNER, categories: ["checkpoints", "loras"] });
  // 0755, like /var/lib: the owner must reach the tool and its index folder.
  const base = mkdtempSync(join(tmpdir(), "modelshare-catalog-home-"));
  chmodSync(base, 0o755);
  const home = join(base, "home");
  const env = { ...process.env, MODELSHARE_CATALOG_HOME: home };
  expect(runProgram(renderStorageLayout(s)).code).toBe(0);
  const catalog = catalogSchema.parse({ stableSeconds: 60 });
  const converge = runProgram(renderCatalog(catalog, s), "converge", { env });
  expect(converge.code, converge.stderr).toBe(0);
  const program = renderCatalogDedupe(catalog, s);
  const dedupe = () => {
    const r = runProgram(program, "check", { env, frame: F });
    return { r, c: parse("here-catalog", r, F) as ComponentCheck, rows: dedupeRows(r.stdout) };
  };
  return { root, store: `${root}/storage-models/models`, home, dedupe };
}

/** The `report: dedupe …` rows, each as its fields after `dedupe` (\x20 back to spaces). */
function dedupeRows(stdout: string): string[][] {
  const lead = `${F} report: dedupe `;
  return stdout
    .split("\n")
    .filter((l) => l.startsWith(lead))
    .map((l) =>
      l
        .slice(lead.length)
        .split(" ")
        .map((f) => f.replaceAll("\\x20", " ")),
    );
}
const saved = (rows: string[][]) => rows.filter((r) => r[0] === "saved");
const linked = (rows: string[][]) => rows.filter((r) => r[0] === "linked");

/** Written as the owner (an upload), dated an hour back: settled. LAST: the last data byte. */
function upload(path: string, last = 15) {
  const python = `import json, struct, sys
h = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + bytes(range(15)) + bytes([${last}]))`;
  asOwner(`python3 -c ${quote(python)} ${quote(path)} && touch -d '-1 hour' ${quote(path)}`);
}
const SIZE = 86; // 8 + the 62-byte header + 16 data bytes
const ino = (path: string) => lstatSync(path).ino;
const leftovers = (dir: string) => readdirSync(dir).filter((n) => n.startsWith(".modelshare-dedupe-"));

describe("the catalog's dedupe", () => {
  it("two copies of one model in two categories become one file: both names kept, bytes intact, the saving reported; a later run reads nothing", () => {
    const t = site();
    const [a, b] = [`${t.store}/checkpoints/model.safetensors`, `${t.store}/loras/copy of model.safetensors`];
    upload(a);
    upload(b);
    const before = readFileSync(a);
    expect(ino(a)).not.toBe(ino(b));
    const { r, c, rows } = t.dedupe();
    expect(r.code, r.stderr).toBe(0);
    expect(c.models.map((m) => m.status)).toEqual(["ok", "ok"]);
    expect(linked(rows)).toEqual([["linked", String(SIZE), "loras/copy of model.safetensors", "checkpoints/model.safetensors"]]);
    expect(saved(rows)).toEqual([["saved", String(SIZE), "1"]]);
    expect(ino(a)).toBe(ino(b));
    expect(statSync(a)).toMatchObject({ nlink: 2, uid: OWNER.uid, mode: 0o100644 });
    expect(readFileSync(a)).toEqual(before);
    expect(readFileSync(b)).toEqual(before);
    expect(leftovers(`${t.store}/loras`)).toEqual([]);
    // The index took the new inode: the next run reads nothing and has nothing to do.
    const again = t.dedupe();
    expect(again.r.code, again.r.stderr).toBe(0);
    expect(again.c.report.find((l) => l.kind === "catalog")).toMatchObject({ bytes: 0, count: 0 });
    expect(again.rows).toEqual([["saved", "0", "0"]]);
  });

  it("the file with the most names is canonical, even when newer and sorted last; a copy whose file keeps a name outside the store frees nothing", () => {
    const t = site();
    const [b, a] = [`${t.store}/checkpoints/0-first.safetensors`, `${t.store}/loras/z.safetensors`];
    upload(b);
    asOwner(`touch -d '-2 hours' ${quote(b)}`); // b: older, and its path sorts first
    upload(a);
    // a has the most names (3 against 2), so it is canonical; b keeps its name outside the store.
    asOwner(`ln ${quote(a)} ${t.store}/loras/z2.safetensors && ln ${quote(a)} ${t.store}/loras/z3.safetensors`);
    const kept = join(t.root, "..", "kept.safetensors");
    sh(`ln ${quote(b)} ${quote(kept)}`);
    const { r, rows } = t.dedupe();
    expect(r.code, r.stderr).toBe(0);
    expect(linked(rows)).toEqual([["linked", String(SIZE), "checkpoints/0-first.safetensors", "loras/z.safetensors"]]);
    expect(saved(rows)).toEqual([["saved", "0", "1"]]);
    expect(ino(b)).toBe(ino(a));
    expect(statSync(a).nlink).toBe(4);
    expect(statSync(kept).nlink).toBe(1);
  });

  it("a third copy with another mode is skipped with its reason and keeps its own file", () => {
    const t = site();
    const [a, b, c3] = ["checkpoints/a.safetensors", "loras/b.safetensors", "loras/private.safetensors"].map((p) => `${t.store}/${p}`);
    for (const p of [a, b, c3]) upload(p);
    asOwner(`chmod 0600 ${quote(c3)}`);
    const own = ino(c3);
    const { r, rows } = t.dedupe();
    expect(r.code, r.stderr).toBe(0);
    expect(linked(rows).map((x) => x[2])).toEqual(["loras/b.safetensors"]);
    expect(rows).toContainEqual([
      "skipped",
      `its owner or mode (${OWNER.uid}:${OWNER.gid} 0600) is not the canonical file's (${OWNER.uid}:${OWNER.gid} 0644): not linked.`,
      "loras/private.safetensors",
    ]);
    expect(ino(c3)).toBe(own);
    expect(statSync(c3)).toMatchObject({ nlink: 1, mode: 0o100600 });
    expect(statSync(a).nlink).toBe(2);
  });

  it("a file of the same size differing only in its last byte is never linked", () => {
    const t = site();
    const [a, b] = [`${t.store}/checkpoints/a.safetensors`, `${t.store}/loras/b.safetensors`];
    upload(a);
    upload(b, 99);
    const bBefore = readFileSync(b);
    const { r, c, rows } = t.dedupe();
    expect(r.code, r.stderr).toBe(0);
    expect(c.models.map((m) => [m.status, m.size])).toEqual([
      ["ok", SIZE],
      ["ok", SIZE],
    ]);
    expect(rows).toEqual([["saved", "0", "0"]]);
    expect(ino(a)).not.toBe(ino(b));
    expect(readFileSync(b)).toEqual(bBefore);
    // The owner rewrites the index to give b a's hash: the bytes are compared, not the index's word.
    const lie = `import json, sys
doc = json.load(open(sys.argv[1]))
e = doc["entries"]
e["loras/b.safetensors"]["sha256"] = e["checkpoints/a.safetensors"]["sha256"]
json.dump(doc, open(sys.argv[1], "w"))`;
    asOwner(`python3 -c ${quote(lie)} ${t.home}/state/index.json`);
    const lied = t.dedupe();
    expect(lied.r.code, lied.r.stderr).toBe(0);
    expect(lied.rows).toEqual([
      ["skipped", "its bytes are not the canonical file's: not linked.", "loras/b.safetensors"],
      ["saved", "0", "0"],
    ]);
    expect(ino(a)).not.toBe(ino(b));
    expect(readFileSync(b)).toEqual(bBefore);
  });

  it("a planted link named like a duplicate is never followed: the link and what it points at stay as they were", () => {
    const t = site();
    const d = decoy();
    upload(`${t.store}/checkpoints/a.safetensors`);
    // A file of the very same bytes outside the tree, the owner's (so only the link guards it).
    const outside = join(d.dir, "same.safetensors");
    writeFileSync(outside, readFileSync(`${t.store}/checkpoints/a.safetensors`));
    chmodSync(outside, 0o644);
    spawnSync("chown", [`${OWNER.uid}:${OWNER.gid}`, outside]);
    const before = d.digest();
    const outsideIno = ino(outside);
    asOwner(`ln -s ${quote(outside)} ${t.store}/loras/a.safetensors && ln -s ${quote(d.dir)} ${t.store}/loras/elsewhere`);
    const { r, c, rows } = t.dedupe();
    expect(r.code, r.stderr).toBe(0);
    expect(c.models.find((m) => m.path === "loras/a.safetensors")).toMatchObject({ status: "skipped" });
    expect(rows).toEqual([["saved", "0", "0"]]);
    expect(readlinkSync(`${t.store}/loras/a.safetensors`)).toBe(outside);
    expect(ino(outside)).toBe(outsideIno);
    expect(statSync(outside).nlink).toBe(1);
    expect(d.digest()).toEqual(before);
  });

  it("names already linked to one file: nothing to do, and the saving is 0 on every run", () => {
    const t = site();
    upload(`${t.store}/checkpoints/a.safetensors`);
    asOwner(`ln ${t.store}/checkpoints/a.safetensors ${t.store}/loras/a.safetensors`);
    for (const run of [t.dedupe(), t.dedupe()]) {
      expect(run.r.code, run.r.stderr).toBe(0);
      expect(run.rows).toEqual([["saved", "0", "0"]]);
    }
    expect(statSync(`${t.store}/checkpoints/a.safetensors`).nlink).toBe(2);
  });

  it("without the index folder it refuses and links nothing; the tool refuses --dedupe with --no-write", () => {
    const t = site();
    upload(`${t.store}/checkpoints/a.safetensors`);
    upload(`${t.store}/loras/b.safetensors`);
    rmSync(`${t.home}/state`, { recursive: true });
    const { r, c, rows } = t.dedupe();
    expect(r.code).toBe(1);
    expect(c.refusal).toBe(`no catalog index folder at ${t.home}/state: run npm run check once first.`);
    expect(rows).toEqual([]);
    expect(ino(`${t.store}/checkpoints/a.safetensors`)).not.toBe(ino(`${t.store}/loras/b.safetensors`));
    const index = join(mkdtempSync(join(tmpdir(), "modelshare-catalog-")), "index.json");
    const tool = spawnSync("python3", ["-I", TOOL, "--index", index, "--no-write", "--dedupe", t.store], { encoding: "utf8" });
    expect(tool.status).toBe(2);
    expect(tool.stderr).toContain("--dedupe replaces names and updates the index: it cannot run with --no-write.");
    expect(tool.stdout).toBe("");
    expect(existsSync(index)).toBe(false);
  });

  it("a tool that is not this version's stops the dedupe before anything is read", () => {
    const t = site();
    upload(`${t.store}/checkpoints/a.safetensors`);
    upload(`${t.store}/loras/b.safetensors`);
    rmSync(`${t.home}/lib/catalog.py`);
    const { r, c, rows } = t.dedupe();
    expect(r.code).toBe(1);
    expect(c.refusal).toBe(`the catalog tool in ${t.home}/lib is not this version's: converge first, then dedupe.`);
    expect(rows).toEqual([]);
    expect(ino(`${t.store}/checkpoints/a.safetensors`)).not.toBe(ino(`${t.store}/loras/b.safetensors`));
  });

  it("a file written to between the compare and the replace gets its own file back under its name (catalog.py's replace_name, driven from python)", () => {
    const dir = mkdtempSync(join(tmpdir(), "modelshare-dedupe-"));
    // Opens both files, compares them, lets a writer append to the duplicate when WRITE says
    // so, then replaces the duplicate's name as the tool does.
    const snippet = `import os, runpy, sys
cat = runpy.run_path(sys.argv[1], run_name="catalog")
d = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
fd = os.open("dup.bin", os.O_RDONLY, dir_fd=d)
canon = os.open("canon.bin", os.O_RDONLY, dir_fd=d)
seen, canon_seen = cat["identity"](os.fstat(fd)), cat["identity"](os.fstat(canon))
cat["same_bytes"](fd, canon, seen[2])
if sys.argv[3] == "write":
    with open(os.path.join(sys.argv[2], "dup.bin"), "ab") as w:
        w.write(b"written meanwhile")
try:
    print("freed", cat["replace_name"](d, b"dup.bin", fd, seen, d, b"canon.bin", canon, canon_seen))
except cat["Skip"] as e:
    print("skipped", e)`;
    const attempt = (write: boolean) => {
      for (const n of ["dup.bin", "canon.bin"]) writeFileSync(join(dir, n), "the same bytes");
      const r = spawnSync("python3", ["-I", "-c", snippet, TOOL, dir, write ? "write" : "no"], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    // Undisturbed, the name becomes the canonical file's, and the old file's bytes are freed.
    expect(attempt(false)).toBe("freed 14");
    expect(ino(join(dir, "dup.bin"))).toBe(ino(join(dir, "canon.bin")));
    // Written meanwhile: the writer's bytes stay under the name, the canonical file is untouched.
    rmSync(join(dir, "dup.bin"));
    expect(attempt(true)).toBe("skipped was written to while it was linked: its own file is back under its name.");
    expect(readFileSync(join(dir, "dup.bin"), "utf8")).toBe("the same byteswritten meanwhile");
    expect(readFileSync(join(dir, "canon.bin"), "utf8")).toBe("the same bytes");
    expect(ino(join(dir, "dup.bin"))).not.toBe(ino(join(dir, "canon.bin")));
    expect(statSync(join(dir, "canon.bin")).nlink).toBe(1);
    expect(leftovers(dir)).toEqual([]);
  });
});
