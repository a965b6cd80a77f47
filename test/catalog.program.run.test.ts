import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderCatalog } from "../components/catalog/program";
import { catalogSchema } from "../components/catalog/schema";
import { quote } from "../components/shell/quote";
import { renderStorageLayout } from "../components/storage/layout";
import { exitCode, parse, type ComponentCheck } from "../ops/check";
import { asOwner, decoy, OWNER } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot } from "./helpers/run";

/**
 * The catalog's program for real: converge puts the tool (root's) and the index folder (the
 * owner's) in place; check runs the tool as the owner over a store the owner filled, as an SMB
 * user or a container would, planted links and FIFOs included. MODELSHARE_CATALOG_HOME keeps
 * the tool and index in a temp folder instead of /usr/local/lib and /var/lib.
 */
const F = "00112233445566778899aabbccddeeff";

function site() {
  const root = tempRoot();
  const s = localStorage({ root, owner: OWNER, categories: ["checkpoints", "loras"] });
  // 0755, like /var/lib: the owner must reach the tool and its index folder.
  const base = mkdtempSync(join(tmpdir(), "modelshare-catalog-home-"));
  chmodSync(base, 0o755);
  const home = join(base, "home");
  const env = { ...process.env, MODELSHARE_CATALOG_HOME: home };
  expect(runProgram(renderStorageLayout(s)).code).toBe(0);
  const program = renderCatalog(catalogSchema.parse({ stableSeconds: 60 }), s);
  const store = `${root}/storage-models/models`;
  const check = () => {
    const r = runProgram(program, "check", { env, frame: F });
    return { r, c: parse("here-catalog", r, F) as ComponentCheck };
  };
  return { root, store, home, env, program, check, converge: () => runProgram(program, "converge", { env }) };
}

/** Written as the owner (an upload), dated an hour back: settled. */
function upload(path: string, python: string) {
  asOwner(`python3 -c ${quote(python)} ${quote(path)} && touch -d '-1 hour' ${quote(path)}`);
}
const SAFETENSORS = `import json, struct, sys
h = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + bytes(range(16)))`;
const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("the catalog program", () => {
  it("converge: the tool root's and read-only, the index folder the owner's 0700; a second run changes nothing; check before it says to converge", () => {
    const t = site();
    const before = t.check();
    expect(before.r.code, before.r.stderr).toBe(0);
    expect(before.c.models).toEqual([]);
    expect(before.r.stdout).toContain("is not this version's: converge, then check again");
    const first = t.converge();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`changed: made ${t.home}/state (the catalog's index, uid ${OWNER.uid}'s)`);
    expect(statSync(`${t.home}/lib/catalog.py`)).toMatchObject({ uid: 0, mode: 0o100644 });
    expect(statSync(`${t.home}/state`)).toMatchObject({ uid: OWNER.uid, mode: 0o40700 });
    expect(t.converge().changed).toBe(0);
    // The owner can run the tool but not change it.
    expect(() => asOwner(`echo 'import os' >> ${t.home}/lib/catalog.py`)).toThrow(/Permission denied/);
  });

  it("an unmanaged site run as root: the index folder is the root folder's owner's, who runs the tool", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: "unmanaged", categories: ["loras"] });
    sh(`mkdir -p ${root}/storage-models/models/loras && chown -R ${OWNER.uid}:${OWNER.gid} ${root}`);
    const base = mkdtempSync(join(tmpdir(), "modelshare-catalog-home-"));
    chmodSync(base, 0o755);
    const env = { ...process.env, MODELSHARE_CATALOG_HOME: join(base, "home") };
    const program = renderCatalog(catalogSchema.parse({}), s);
    expect(runProgram(program, "converge", { env }).code).toBe(0);
    expect(statSync(join(base, "home/state"))).toMatchObject({ uid: OWNER.uid, mode: 0o40700 });
    upload(`${root}/storage-models/models/loras/good.safetensors`, SAFETENSORS);
    const r = runProgram(program, "check", { env, frame: F });
    expect(r.code, r.stderr).toBe(0);
    expect((parse("here-catalog", r, F) as ComponentCheck).models.map((m) => [m.path, m.status])).toEqual([["loras/good.safetensors", "ok"]]);
    expect(runProgram(program, "converge", { env }).changed).toBe(0);
  });

  it("check judges and hashes every upload as the owner: a good model, a cut one, a pickle that would run a command (never run), duplicates across categories", () => {
    const t = site();
    expect(t.converge().code).toBe(0);
    upload(`${t.store}/checkpoints/good.safetensors`, SAFETENSORS);
    upload(`${t.store}/loras/same.safetensors`, SAFETENSORS);
    asOwner(
      `head -c 30 ${t.store}/checkpoints/good.safetensors > ${t.store}/checkpoints/cut.safetensors && touch -d '-1 hour' ${t.store}/checkpoints/cut.safetensors`,
    );
    const marker = join(t.root, "..", "pwned");
    upload(
      `${t.store}/loras/evil.pt`,
      `import os, pickle, sys
class E:
    def __reduce__(self): return (os.system, ("touch ${marker}",))
open(sys.argv[1], "wb").write(pickle.dumps(E(), protocol=2))`,
    );
    const { r, c } = t.check();
    expect(r.code, r.stderr).toBe(0);
    const by = Object.fromEntries(c.models.map((m) => [m.path, m]));
    expect(by["checkpoints/good.safetensors"]).toMatchObject({ status: "ok", format: "safetensors", sha256: sha(`${t.store}/checkpoints/good.safetensors`) });
    expect(by["loras/same.safetensors"].sha256).toBe(by["checkpoints/good.safetensors"].sha256);
    expect(by["checkpoints/cut.safetensors"].status).toBe("incomplete");
    expect(by["loras/evil.pt"]).toMatchObject({ status: "dangerous", format: "pickle" });
    expect(by["loras/evil.pt"].reason).toMatch(/system/);
    expect(existsSync(marker)).toBe(false);
    expect(exitCode([{ node: "here", host: "localhost", components: [c], sessions: 0, ms: 0 }])).toBe(1);
    // The index made the second check read nothing.
    const read = (x: ComponentCheck) => x.report.find((l) => l.kind === "catalog")!;
    expect(read(c).bytes).toBeGreaterThan(0);
    const again = t.check();
    expect(read(again.c)).toMatchObject({ bytes: 0, count: 0 });
    expect(again.c.models).toEqual(c.models);
  });

  it("a link or FIFO the owner planted in a category is named, never followed or opened; the check does not block; a file only root may read stays unread", () => {
    const t = site();
    const d = decoy();
    expect(t.converge().code).toBe(0);
    asOwner(
      `ln -s ${d.open}/00-system.sh ${t.store}/loras/linked.safetensors && mkfifo ${t.store}/loras/pipe.safetensors && ln -s ${d.dir} ${t.store}/checkpoints/elsewhere`,
    );
    const { r, c } = t.check();
    expect(r.code, r.stderr).toBe(0);
    const by = Object.fromEntries(c.models.map((m) => [m.path, m]));
    for (const p of ["loras/linked.safetensors", "loras/pipe.safetensors", "checkpoints/elsewhere"]) {
      expect(by[p], p).toMatchObject({ status: "skipped" });
      expect(by[p].sha256, p).toBeUndefined();
    }
    expect(c.models.some((m) => m.path.includes("00-system") || m.path.includes("shadow"))).toBe(false);
    // It reads as the owner: a file only root may read stays unread.
    sh(`echo secret > ${t.store}/loras/root-only.safetensors && chmod 0600 ${t.store}/loras/root-only.safetensors`);
    const rootOnly = t.check().c.models.find((m) => m.path === "loras/root-only.safetensors");
    expect(rootOnly).toMatchObject({ status: "skipped" });
    expect(rootOnly!.reason).toMatch(/Permission denied/);
  });

  it("the owner cannot turn the index into a way for root to act: a link for the index folder stops converge and check, and nothing it points at changes", () => {
    const t = site();
    const d = decoy();
    const before = d.digest();
    // The index folder's parent is root's: the owner cannot plant there, so an admin's mistake
    // (or a root-made link) stands in for it here.
    sh(`mkdir -p ${t.home} && ln -s ${d.secret} ${t.home}/state`);
    const r = t.converge();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${t.home}/state, the catalog's index folder, must be a real folder of uid ${OWNER.uid} with mode 0700`);
    const c = t.check();
    expect(c.c.refusal).toContain("the catalog's index folder");
    expect(d.digest()).toEqual(before);
  });

  it("an index the owner replaced by a link is not followed: the target stays as it was and a good index takes its place", () => {
    const t = site();
    const d = decoy();
    expect(t.converge().code).toBe(0);
    upload(`${t.store}/checkpoints/good.safetensors`, SAFETENSORS);
    asOwner(`ln -s ${d.open}/00-system.sh ${t.home}/state/index.json`);
    const before = d.digest();
    const { r, c } = t.check();
    expect(r.code, r.stderr).toBe(0);
    expect(c.models.map((m) => m.status)).toEqual(["ok"]);
    expect(d.digest()).toEqual(before);
    expect(statSync(`${t.home}/state/index.json`).isFile()).toBe(true);
  });

  it("a tool and index the owner cannot reach stop the check with the tool's words (never a silent run without the index)", () => {
    const t = site();
    expect(t.converge().code).toBe(0);
    upload(`${t.store}/checkpoints/good.safetensors`, SAFETENSORS);
    chmodSync(t.home, 0o700); // as a 0700 /var/lib/modelshare would (the SMB passwords' state)
    const { r, c } = t.check();
    expect(r.code).toBe(1);
    expect(c.models).toEqual([]);
    expect(c.refusal).toMatch(new RegExp(`^the catalog stopped: .*${t.home}/lib/catalog\\.py.*Permission denied`));
  });

  it("remove takes the tool and leaves the index", () => {
    const t = site();
    expect(t.converge().code).toBe(0);
    upload(`${t.store}/checkpoints/good.safetensors`, SAFETENSORS);
    expect(t.check().r.code).toBe(0);
    const r = runProgram(t.program, "remove", { env: t.env });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(`${t.home}/lib/catalog.py`)).toBe(false);
    expect(existsSync(`${t.home}/state/index.json`)).toBe(true);
  });
});
