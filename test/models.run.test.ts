import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderModels } from "../components/models/program";
import type { Model } from "../components/models/schema";
import { renderStorageLayout } from "../components/storage/layout";
import type { Verb } from "../components/shell/script";
import { asOwner, decoy, OWNER } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot } from "./helpers/run";

/**
 * The models program for real: a local HTTP server (its own process: runProgram blocks this
 * one) serves models; converge fetches them as the storage owner into a store the storage
 * layout made; check reports them. MODELSHARE_MODELS_HOME keeps the fetcher and its state in a
 * temp folder instead of /usr/local/lib and /var/lib.
 */
const F = "00112233445566778899aabbccddeeff";
const SIZE = 256 * 1024;

// Routes: /good/NAME serves NAME's bytes (Range honoured); /cut/NAME sends half of them and
// hangs up unless resumed; /whole/NAME ignores Range; /wrong/NAME serves other bytes than
// NAME's; /plant/NAME?at=PATH writes PATH first, then serves NAME; /log lists the requests.
const SERVER = `
const http = require("node:http");
const SIZE = ${SIZE};
const bytes = (name) => Buffer.alloc(SIZE, name);
const log = [];
const server = http.createServer((req, res) => {
  // One connection per request: a kept-alive one the server closed after its idle timeout
  // could be reused by the test's next fetch at that moment ("other side closed" on a busy machine).
  res.setHeader("Connection", "close");
  if (req.url === "/log") return res.end(JSON.stringify(log));
  log.push({ url: req.url, range: req.headers.range ?? null });
  const [path, query] = req.url.split("?");
  const [, route, name] = path.split("/");
  // /plant/NAME?at=PATH: someone writes PATH while the model is on its way.
  if (route === "plant") require("node:fs").writeFileSync(decodeURIComponent(query.slice(3)), "planted meanwhile");
  if (!name || !["good", "cut", "wrong", "whole", "plant"].includes(route)) { res.statusCode = 404; return res.end(); }
  const body = route === "wrong" ? Buffer.alloc(SIZE, "not " + name) : bytes(name);
  const range = /^bytes=(\\d+)-$/.exec(req.headers.range ?? "");
  if (range && route !== "wrong" && route !== "whole") {
    const from = Number(range[1]);
    res.writeHead(206, { "Content-Length": SIZE - from, "Content-Range": "bytes " + from + "-" + (SIZE - 1) + "/" + SIZE });
    return res.end(body.subarray(from));
  }
  res.writeHead(200, { "Content-Length": SIZE });
  if (route === "cut") return res.write(body.subarray(0, SIZE / 2), () => res.socket.end());
  res.end(body);
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

let server: ChildProcess;
let base = "";
beforeAll(async () => {
  server = spawn(process.execPath, ["-e", SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve) => createInterface({ input: server.stdout! }).once("line", resolve));
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => {
  server.kill();
});

const content = (name: string) => Buffer.alloc(SIZE, name);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const requests = async (): Promise<Array<{ url: string; range: string | null }>> =>
  (await (await fetch(`${base}/log`)).json()) as Array<{ url: string; range: string | null }>;
/** A model served by the test server on `route`, declared with NAME's real hash. */
const model = (category: string, file: string, route = "good", name = file): Model => ({
  category,
  file,
  url: `${base}/${route}/${name}`,
  sha256: sha(content(name)),
});

function site() {
  const root = tempRoot();
  const s = localStorage({ root, owner: OWNER, categories: ["checkpoints", "loras", "vae"] });
  // 0755, like /var/lib: the owner must reach the fetcher and its state folder.
  const home = join(mkdtempSync(join(tmpdir(), "modelshare-models-home-")), "home");
  chmodSync(join(home, ".."), 0o755);
  const env = { ...process.env, MODELSHARE_MODELS_HOME: home };
  expect(runProgram(renderStorageLayout(s)).code).toBe(0);
  const store = `${root}/storage-models/models`;
  const converge = (models: Model[]) => runProgram(renderModels(models, s), "converge", { env });
  const check = (models: Model[]) => {
    const r = runProgram(renderModels(models, s), "check", { env, frame: F });
    const rows = [...r.stdout.matchAll(new RegExp(`^${F} report: declared (\\S+) (\\d+) (\\S+) (\\S+) (.*)$`, "gm"))].map((m) => ({
      status: m[1],
      size: Number(m[2]),
      sha: m[3],
      path: m[4],
      reason: m[5],
    }));
    return { r, rows };
  };
  return { root, s, store, home, env, converge, check };
}

describe("the models program", () => {
  it("converge fetches a declared model as the owner and verifies it; a second converge changes nothing and asks the server nothing; check says present", async () => {
    const t = site();
    const m = model("checkpoints", "first.safetensors");
    const r = t.converge([m]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`changed: fetched checkpoints/first.safetensors (${SIZE} bytes, SHA-256 ${m.sha256})`);
    const path = `${t.store}/checkpoints/first.safetensors`;
    expect(sha(readFileSync(path))).toBe(m.sha256);
    expect(statSync(path).uid).toBe(OWNER.uid);
    expect(readdirSync(`${t.store}/checkpoints`)).toEqual(["first.safetensors"]);
    expect(statSync(`${t.home}/lib/fetch.py`)).toMatchObject({ uid: 0, mode: 0o100644 });
    expect(statSync(`${t.home}/state`)).toMatchObject({ uid: OWNER.uid, mode: 0o40700 });
    expect(statSync(`${t.home}/state/declared.json`)).toMatchObject({ uid: OWNER.uid, mode: 0o100600 });
    const asked = (await requests()).length;
    const again = t.converge([m]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.changed).toBe(0);
    expect((await requests()).length).toBe(asked);
    const c = t.check([m]);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.rows).toEqual([{ status: "present", size: SIZE, sha: m.sha256, path: "checkpoints/first.safetensors", reason: "-" }]);
    expect(c.r.stdout).toContain(`${F} drift=0`);
  });

  it("a download with other bytes than declared is refused and deleted, one that cannot connect leaves nothing; the other models are still fetched", () => {
    const t = site();
    const wrong = model("loras", "wrong.safetensors", "wrong");
    // Port 1 on the loopback: nothing listens there, the connection is refused at once.
    const unreachable = { ...model("loras", "nowhere.safetensors"), url: "http://127.0.0.1:1/x" };
    const good = model("loras", "after.safetensors");
    const r = t.converge([wrong, unreachable, good]);
    expect(r.code).toBe(1);
    const got = sha(Buffer.alloc(SIZE, "not wrong.safetensors"));
    expect(r.stdout).toContain(`the download's SHA-256 is ${got}, not the declared ${wrong.sha256}`);
    expect(r.stdout).toContain("loras/nowhere.safetensors: failed: the download stopped (Connection refused); nothing was downloaded");
    expect(r.stderr).toContain(
      "modelshare: the model fetcher stopped: 2 of 3 declared models are not in place: loras/wrong.safetensors (refused), loras/nowhere.safetensors (failed)",
    );
    expect(readdirSync(`${t.store}/loras`)).toEqual(["after.safetensors"]);
    expect(sha(readFileSync(`${t.store}/loras/after.safetensors`))).toBe(good.sha256);
    expect(r.stdout).toContain("changed: fetched loras/after.safetensors");
  });

  it("a different file already at the model's name is never replaced; converge refuses and check says different", () => {
    const t = site();
    const m = model("vae", "mine.safetensors");
    asOwner(`printf 'my own vae' > ${t.store}/vae/mine.safetensors`);
    const r = t.converge([m]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("vae/mine.safetensors (different)");
    expect(readFileSync(`${t.store}/vae/mine.safetensors`, "utf8")).toBe("my own vae");
    const c = t.check([m]);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.rows).toHaveLength(1);
    expect(c.rows[0]).toMatchObject({ status: "different", size: 10, sha: sha(Buffer.from("my own vae")), path: "vae/mine.safetensors" });
    expect(c.rows[0].reason).toContain("it is never replaced");
  });

  it("a download cut halfway keeps its part (check: partial); the next converge resumes it with a Range request and completes it", async () => {
    const t = site();
    const m = model("checkpoints", "big.safetensors", "cut");
    const first = t.converge([m]);
    expect(first.code).toBe(1);
    expect(first.stdout).toContain(`the connection ended after ${SIZE / 2} of ${SIZE} bytes`);
    const part = `${t.store}/checkpoints/.modelshare-fetch-big.safetensors.part`;
    expect(statSync(part).size).toBe(SIZE / 2);
    expect(existsSync(`${t.store}/checkpoints/big.safetensors`)).toBe(false);
    const c = t.check([m]);
    expect(c.rows.map((x) => [x.status, x.size])).toEqual([["partial", SIZE / 2]]);
    expect(c.r.stdout).toContain(`${F} drift: checkpoints/big.safetensors is partial: converge fetches it`);
    const second = t.converge([m]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.changed).toBe(1);
    expect(sha(readFileSync(`${t.store}/checkpoints/big.safetensors`))).toBe(m.sha256);
    expect(existsSync(part)).toBe(false);
    expect((await requests()).filter((q) => q.url === "/cut/big.safetensors").map((q) => q.range)).toEqual([null, `bytes=${SIZE / 2}-`]);
  });

  it("a server that ignores Range answers 200: the part (longer than the model, other bytes) is started over", async () => {
    const t = site();
    const m = model("checkpoints", "over.safetensors", "whole");
    const part = `${t.store}/checkpoints/.modelshare-fetch-over.safetensors.part`;
    asOwner(`head -c ${SIZE + 100} /dev/zero > ${part}`);
    const r = t.converge([m]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(sha(readFileSync(`${t.store}/checkpoints/over.safetensors`))).toBe(m.sha256);
    expect(existsSync(part)).toBe(false);
    expect((await requests()).filter((q) => q.url === "/whole/over.safetensors").map((q) => q.range)).toEqual([`bytes=${SIZE + 100}-`]);
  });

  it("a file that appears at the model's name during the download is never replaced: the verified download goes, the file stays", () => {
    const t = site();
    const final = `${t.store}/loras/raced.safetensors`;
    const m = { ...model("loras", "raced.safetensors"), url: `${base}/plant/raced.safetensors?at=${encodeURIComponent(final)}` };
    const r = t.converge([m]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("loras/raced.safetensors (different)");
    expect(readFileSync(final, "utf8")).toBe("planted meanwhile");
    expect(readdirSync(`${t.store}/loras`)).toEqual(["raced.safetensors"]);
  });

  it("a link the owner planted at a model's name is never followed or replaced; a category that is a link is never entered", () => {
    const t = site();
    const d = decoy();
    const before = d.digest();
    asOwner(`ln -s ${d.open}/00-system.sh ${t.store}/loras/linked.safetensors`);
    // The models folder is root's (the owner cannot rename a category): root's mistake stands
    // in for it, a link to a folder the owner may write.
    const elsewhere = mkdtempSync(join(tmpdir(), "modelshare-elsewhere-"));
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${elsewhere} && rmdir ${t.store}/vae && ln -s ${elsewhere} ${t.store}/vae`);
    const linked = model("loras", "linked.safetensors");
    const inVae = model("vae", "x.safetensors");
    const r = t.converge([linked, inVae]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("a symbolic link is there (never followed or replaced)");
    expect(r.stdout).toContain("its category vae is not a real folder (a link is never followed)");
    expect(lstatSync(`${t.store}/loras/linked.safetensors`).isSymbolicLink()).toBe(true);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(d.digest()).toEqual(before);
    const c = t.check([linked, inVae]);
    expect(c.rows.map((x) => [x.path, x.status])).toEqual([
      ["loras/linked.safetensors", "different"],
      ["vae/x.safetensors", "failed"],
    ]);
    expect(d.digest()).toEqual(before);
  });

  it("a link or a FIFO the owner planted at a model's part name is never followed, never blocks, never written through", () => {
    const t = site();
    const d = decoy();
    const before = d.digest();
    const linked = model("loras", "a.safetensors");
    const fifo = model("loras", "b.safetensors");
    asOwner(
      `ln -s ${d.open}/00-system.sh ${t.store}/loras/.modelshare-fetch-a.safetensors.part && mkfifo ${t.store}/loras/.modelshare-fetch-b.safetensors.part`,
    );
    const r = t.converge([linked, fifo]);
    expect(r.code).toBe(1);
    expect(existsSync(`${t.store}/loras/a.safetensors`) || existsSync(`${t.store}/loras/b.safetensors`)).toBe(false);
    expect(lstatSync(`${t.store}/loras/.modelshare-fetch-a.safetensors.part`).isSymbolicLink()).toBe(true);
    expect(lstatSync(`${t.store}/loras/.modelshare-fetch-b.safetensors.part`).isFIFO()).toBe(true);
    expect(d.digest()).toEqual(before);
  });

  it("check reports each model missing, present or different, without the network, and counts a missing one as drift", async () => {
    const t = site();
    const present = model("checkpoints", "here.safetensors");
    expect(t.converge([present]).code).toBe(0);
    const missing = model("loras", "absent.safetensors");
    const other = model("vae", "other.safetensors");
    asOwner(`printf 'x' > ${t.store}/vae/other.safetensors`);
    const asked = (await requests()).length;
    const c = t.check([present, missing, other]);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.rows.map((x) => [x.path, x.status])).toEqual([
      ["checkpoints/here.safetensors", "present"],
      ["loras/absent.safetensors", "missing"],
      ["vae/other.safetensors", "different"],
    ]);
    expect(c.r.stdout).toContain(`${F} drift: loras/absent.safetensors is missing: converge fetches it`);
    expect(c.r.stdout).toContain(`${F} drift=1`);
    expect((await requests()).length).toBe(asked);
    expect(existsSync(`${t.store}/loras/absent.safetensors`)).toBe(false);
  });

  it("a model changed in place after it was fetched is hashed again (its record no longer matches it): check says different", () => {
    const t = site();
    const m = model("loras", "edited.safetensors");
    expect(t.converge([m]).code).toBe(0);
    expect(t.check([m]).rows.map((x) => x.status)).toEqual(["present"]);
    // Same size, new bytes, new mtime: only a fresh hash tells.
    asOwner(
      `printf 'Z' | dd of=${t.store}/loras/edited.safetensors bs=1 seek=7 conv=notrunc status=none && touch -d '+1 hour' ${t.store}/loras/edited.safetensors`,
    );
    const c = t.check([m]);
    expect(c.rows.map((x) => [x.status, x.size])).toEqual([["different", SIZE]]);
    expect(c.rows[0].sha).toBe(sha(readFileSync(`${t.store}/loras/edited.safetensors`)));
  });

  it("remove takes the fetcher and leaves the models", () => {
    const t = site();
    const m = model("checkpoints", "kept.safetensors");
    expect(t.converge([m]).code).toBe(0);
    const r = runProgram(renderModels([m], t.s), "remove", { env: t.env });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(`${t.home}/lib/fetch.py`)).toBe(false);
    expect(sha(readFileSync(`${t.store}/checkpoints/kept.safetensors`))).toBe(m.sha256);
  });
});

/**
 * storage.intake: staging for real (the storage layout, then the models program): the layout
 * makes the system account modelshare-intake and gives it the store's folders, but only once the
 * owner's files there are moved out; declared models are then fetched as that account. The
 * programs run in a mount namespace of their own over a copy of /etc, so the account is made in
 * the copy and this machine's /etc stays as it was.
 */
describe("the layout and the models program with storage.intake: staging", () => {
  const etc = mkdtempSync(join(tmpdir(), "modelshare-etc-"));
  afterAll(() => rmSync(etc, { recursive: true, force: true }));
  /** runProgram, with /etc the copy (made on first use) in a private mount namespace. */
  const run = (program: string, verb: Verb = "converge", env: NodeJS.ProcessEnv = process.env) => {
    if (!existsSync(`${etc}/passwd`)) sh(`cp -a /etc/. ${etc}/`);
    return runProgram(program, verb, { env, wrap: ["unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind ${etc} /etc && exec "$@"`, "sh"] });
  };
  it("refuses a store folder the owner holds files in, takes it once emptied (second run: no change), and fetches declared models as the intake", () => {
    const root = tempRoot();
    const categories = ["checkpoints", "loras"];
    const direct = localStorage({ root, owner: OWNER, categories });
    const staging = localStorage({ root, owner: OWNER, categories, intake: "staging" });
    expect(runProgram(renderStorageLayout(direct)).code).toBe(0);
    const store = `${root}/storage-models/models`;
    asOwner(`printf 'uploaded directly' > ${store}/loras/direct.safetensors`);
    const refused = run(renderStorageLayout(staging));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `the model store's folder ${store}/loras must be the account modelshare-intake's, but it belongs to uid ${OWNER.uid} and holds files`,
    );
    expect(refused.stderr).toContain(`mv -n -- ${store}/loras/* ${root}/storage-user/models-staging/loras/`);
    expect(statSync(`${store}/loras`).uid).toBe(OWNER.uid);
    asOwner(`mv -n -- ${store}/loras/* ${root}/storage-user/models-staging/loras/`);
    const taken = run(renderStorageLayout(staging));
    expect(taken.code, taken.stderr).toBe(0);
    const intake = Number(sh(`grep ^modelshare-intake: ${etc}/passwd | cut -d: -f3`));
    expect(sh("id -u modelshare-intake || true")).toBe(""); // this machine has no such account
    for (const c of categories) expect(statSync(`${store}/${c}`)).toMatchObject({ uid: intake, mode: 0o40755 });
    expect(statSync(`${root}/storage-user/models-staging/loras/direct.safetensors`).uid).toBe(OWNER.uid);
    expect(run(renderStorageLayout(staging)).changed).toBe(0);
    // The owner can no longer add a name to the store.
    expect(() => asOwner(`printf x > ${store}/loras/planted.safetensors`)).toThrow(/Permission denied/);
    const home = join(mkdtempSync(join(tmpdir(), "modelshare-models-home-")), "home");
    chmodSync(join(home, ".."), 0o755);
    const m = model("loras", "pinned.safetensors");
    const r = run(renderModels([m], staging), "converge", { ...process.env, MODELSHARE_MODELS_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`changed: fetched loras/pinned.safetensors (${SIZE} bytes, SHA-256 ${m.sha256})`);
    expect(statSync(`${store}/loras/pinned.safetensors`).uid).toBe(intake);
    expect(statSync(`${home}/state`)).toMatchObject({ uid: intake, mode: 0o40700 });
  });
});
