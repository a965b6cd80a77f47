import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Site } from "../../components/site";
import { loadSite } from "../../components/loadSite";
import { siteFromConfig } from "../../components/stackConfig";
import { warmMain } from "../../ops/warm";
import { run } from "../harness/converge";
import { declare } from "../harness/declare";
import { labStack, onNode } from "../harness/lab";

/**
 * `npm run warm` on real kernels: node1 exports, node2 caches what it reads (nfs.cache), node3's
 * kernel lacks CacheFiles (no cache bound). After a warm, node2 reads a model with its page
 * cache dropped and the server sends (almost) nothing; node3 is told its warm only fills the
 * page cache; nothing on node1 changed. Leaves node1 without /srv/cw, the workers as before.
 */
const ROOT = "/srv/cw";
const MP = "/mnt/modelshare";
const CACHE = "/var/cache/modelshare";
const DIR = "storage-models/models/checkpoints";
const MB = 64;

const edit = (s: Record<string, any>) => {
  s["modelshare:nfs"] = { enabled: true, cache: { enabled: true } };
};
const declared = () => declare({ stack: "lab", ...labStack(edit) }, () => new Site("site", loadSite()));
const stackSite = async () => {
  const { config, secretKeys } = labStack(edit);
  return siteFromConfig(config, (k) => secretKeys.includes(k));
};
const serverReadBytes = async (node: string) =>
  Number((await onNode(node, `awk '$1 == "device" { on = ($5 == "${MP}") } on && $1 == "bytes:" { print $6; exit }' /proc/self/mountstats`)).trim());
/** Every file under the category on node1: name, size, owner, mode, mtime, sha256. */
const onServer = () =>
  onNode("node1", `cd ${ROOT}/${DIR} && find -P . -printf '%p %s %U:%G %m %T@\\n' | sort && find -P . -type f -exec sha256sum {} + | sort`);

async function warm(...argv: string[]) {
  const out: string[] = [];
  const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  try {
    const code = await warmMain(["lab", ...argv], stackSite, (s) => out.push(s));
    return { code, out: out.join(""), err: err.mock.calls.map((c) => String(c[0])).join("") };
  } finally {
    err.mockRestore();
  }
}

describe("npm run warm on the lab", () => {
  beforeAll(async () => {
    // Whatever an earlier lab file left of the lab site's storage (converge and drift keep
    // their models) goes: this file starts from a node1 without it, whatever the file order.
    await onNode("node1", `rm -rf ${ROOT}`);
    await onNode("node3", "echo 'install cachefiles /bin/false' > /etc/modprobe.d/lab-no-cachefiles.conf");
    await run(await declared());
    await onNode(
      "node1",
      `set -e; cd ${ROOT}/${DIR}; head -c ${MB}M /dev/urandom > big.safetensors; printf small > small.ckpt; ln -s /etc/shadow shadow.safetensors; chown -h 1000:1000 big.safetensors small.ckpt shadow.safetensors`,
    );
  }, 900_000);
  afterAll(async () => {
    await run(await declared(), { destroy: true });
    await onNode("node3", "rm -f /etc/modprobe.d/lab-no-cachefiles.conf");
    await onNode("node1", `rm -rf ${ROOT}`);
  }, 900_000);

  it("warms node2's cache: a cold read afterwards comes from its disk; node3 only fills its page cache; node1 unchanged", async () => {
    const before = await onServer();
    const { code, out, err } = await warm("--category", "checkpoints");
    expect(err).toBe("");
    expect(code, out).toBe(0);
    expect(out).toMatch(/^ {2}node2: 2 files, 67\.1 MB in \d+\.\d s, .+\/s$/m);
    expect(out).toMatch(/^ {2}node3: 2 files, 67\.1 MB in /m);
    expect(out).toMatch(/^node2: 1 link\(s\) in \/mnt\/modelshare\/storage-models\/models\/checkpoints not followed$/m);
    expect(out).toMatch(/^node3: no FS-Cache cache modelshare is bound on this node .*only fills the page cache\.$/m);
    expect(out).not.toMatch(/^node2: .*page cache/m);
    expect(await onServer()).toBe(before);
    // The kernel writes the cache behind the read: wait until the copy is on node2's disk.
    await onNode("node2", `for i in $(seq 300); do [ "$(du -sm ${CACHE} | cut -f1)" -ge ${MB} ] && exit 0; sleep 1; done; du -sm ${CACHE}; exit 1`);
    const again = await serverReadBytes("node2");
    await onNode("node2", `sync; echo 3 > /proc/sys/vm/drop_caches; cat ${MP}/${DIR}/big.safetensors > /dev/null`);
    expect((await serverReadBytes("node2")) - again).toBeLessThan(2 ** 20);
  }, 900_000);

  it("refuses an unknown node, naming the workers, and dials nothing", async () => {
    const { code, err } = await warm("--node", "node1");
    expect(code).toBe(2);
    expect(err).toBe('modelshare: node "node1" is not known; the nodes to warm are: node2, node3\n');
  });
});
