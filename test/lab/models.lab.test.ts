import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { siteFromConfig } from "../../components/stackConfig";
import { loadSite } from "../../components/loadSite";
import { checkSite, exitCode, formatText } from "../../ops/check";
import { run, type Step } from "../harness/converge";
import { declare } from "../harness/declare";
import { labStack, onNode } from "../harness/lab";

/**
 * Declared models (modelshare:models) on a real storage node: an HTTP server this test starts
 * in the lab host's namespace (10.77.0.1, inside the lab's own network) serves them; node1
 * fetches each once as the storage owner, verifies it, names it; a second converge asks the
 * server nothing; a download whose bytes are not the declared ones is refused and nothing takes
 * its name; a file of other content already at a name is never replaced; check says which
 * declared model is missing or different. Only node1 (storage) takes part.
 */
const ROOT = "/srv/cw";
const STORE = `${ROOT}/storage-models/models`;
const MODEL = randomBytes(3 * 1024 * 1024 + 17);
const OTHER = randomBytes(4096);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Every request the server saw: its path and its Range header. */
const seen: Array<{ url: string; range?: string }> = [];
let server: Server;
let base = "";

function serve(): Promise<void> {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? "", range: req.headers.range });
    const body = req.url === "/sd15.safetensors" ? MODEL : req.url === "/tampered.safetensors" ? OTHER : undefined;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Length": body.length }).end(body);
  });
  return new Promise((resolve) => server.listen(0, "10.77.0.1", () => resolve()));
}

type Declared = { category: string; file: string; url: string; sha256: string };
/** The lab site with node1 alone (and only its SSH key), declaring these models. */
function stack(models: Declared[]) {
  const { config, secretKeys } = labStack((s) => {
    s["modelshare:nodes"] = (s["modelshare:nodes"] as Array<{ name: string }>).filter((n) => n.name === "node1");
    s["modelshare:models"] = models;
  });
  const others = (k: string) => /^modelshare:labKeyNode[23]$/.test(k);
  return { config: Object.fromEntries(Object.entries(config).filter(([k]) => !others(k))), secretKeys: secretKeys.filter((k) => !others(k)) };
}
const converge = async (models: Declared[]) => run(await declare({ stack: "lab", ...stack(models) }, () => new Site("site", loadSite())));
const check = async (models: Declared[]) => {
  const { config, secretKeys } = stack(models);
  return checkSite(siteFromConfig(config, (k) => secretKeys.includes(k)));
};
const step = (steps: Step[]) => steps.find((s) => s.name === "node1-models-converge")!;

describe("declared models fetched by the storage node", () => {
  const good = (): Declared => ({ category: "checkpoints", file: "sd15.safetensors", url: `${base}/sd15.safetensors`, sha256: sha(MODEL) });
  beforeAll(async () => {
    await serve();
    base = `http://10.77.0.1:${(server.address() as AddressInfo).port}`;
    await onNode("node1", `rm -rf ${ROOT}`);
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    // node1 as the other lab files expect it: no tree, no fetcher, no fetcher's state.
    await onNode("node1", `rm -rf ${ROOT} /etc/modelshare /usr/local/lib/modelshare/fetch.py /var/lib/modelshare-models`);
  });

  it("fetches a model once as the storage owner, verified; a second converge asks the server nothing; check finds it present", async () => {
    const first = step(await converge([good()]));
    expect(first.stdout).toContain(`changed: fetched checkpoints/sd15.safetensors (${MODEL.length} bytes, SHA-256 ${sha(MODEL)})`);
    expect(await onNode("node1", `stat -c '%u:%g %s' ${STORE}/checkpoints/sd15.safetensors && sha256sum < ${STORE}/checkpoints/sd15.safetensors`)).toBe(
      `1000:1000 ${MODEL.length}\n${sha(MODEL)}  -\n`,
    );
    expect(await onNode("node1", `ls -A ${STORE}/checkpoints`)).toBe("sd15.safetensors\n"); // no part left behind
    const asked = seen.length;
    expect(step(await converge([good()])).changed).toBe(0);
    expect(seen.length).toBe(asked);
    const nodes = await check([good()]);
    expect(exitCode(nodes)).toBe(0);
    const declared = nodes[0].components.flatMap((c) => c.declared ?? []);
    expect(declared).toEqual([expect.objectContaining({ path: "checkpoints/sd15.safetensors", status: "present", size: MODEL.length, sha256: sha(MODEL) })]);
    expect(formatText(nodes)).toContain("declared models on node1: 1 of 1 present");
  }, 900_000);

  it("a download with other bytes than declared is refused, nothing takes its name; a file of other content at a declared name is never replaced; check names both", async () => {
    const tampered: Declared = { category: "loras", file: "style.safetensors", url: `${base}/tampered.safetensors`, sha256: sha(MODEL) };
    const mine = { ...good(), file: "mine.safetensors" };
    await onNode("node1", `printf 'the artist own' > ${STORE}/checkpoints/mine.safetensors && chown 1000:1000 ${STORE}/checkpoints/mine.safetensors`);
    await expect(converge([good(), tampered, mine])).rejects.toThrow(/node1-models-converge \(on 10\.77\.0\.11\): exited 1: [\s\S]*the model fetcher stopped/);
    expect(await onNode("node1", `ls -A ${STORE}/loras; cat ${STORE}/checkpoints/mine.safetensors`)).toBe("the artist own");
    const nodes = await check([good(), tampered, mine]);
    expect(exitCode(nodes)).toBe(1);
    const by = Object.fromEntries(nodes[0].components.flatMap((c) => c.declared ?? []).map((d) => [d.path, d.status]));
    expect(by).toEqual({ "checkpoints/sd15.safetensors": "present", "loras/style.safetensors": "missing", "checkpoints/mine.safetensors": "different" });
    const text = formatText(nodes);
    expect(text).toContain("declared models on node1: 1 of 3 present");
    expect(text).toContain("DIFFERENT checkpoints/mine.safetensors");
  }, 900_000);
});
