import { beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { loadSite } from "../../components/loadSite";
import { DIAL } from "../../components/node/dial";
import { run, type Step } from "../harness/converge";
import { declare, type Declared } from "../harness/declare";
import { lab, labStack, onNode } from "../harness/lab";

/**
 * The lab suite: the program declared under mocks with Pulumi.lab.yaml, its scripts run over
 * SSH on real Debian VMs (booted once by lab/test.sh). Tests share the nodes and run in order.
 */
const ROOT = "/srv/cw";
const STORE = `${ROOT}/storage-models/models`;
const UPLOAD = `${ROOT}/storage-user/models-upload`;

const declareLab = (edit?: (s: Record<string, any>) => void): Promise<Declared[]> =>
  declare({ stack: "lab", ...labStack(edit) }, () => new Site("site", loadSite()));

const converge = async (edit?: (s: Record<string, any>) => void, options: Parameters<typeof run>[1] = {}) => run(await declareLab(edit), options);

const changes = (steps: Step[]) => Object.fromEntries(steps.map((s) => [s.name, s.changed]));
const NOTHING = {
  "node1-env-converge": 0,
  "node1-layout-converge": 0,
  "node1-links-storage-user/models-converge": 0,
  "node1-links-storage-user/models-upload-converge": 0,
};
const checksums = () => onNode("node1", `cd ${ROOT} && find storage-models storage-user -type f -print0 | sort -z | xargs -0r sha256sum`);

describe("the lab site, converged onto real nodes", () => {
  beforeAll(async () => {
    // Fresh VMs: nothing of ours yet (an environment file another lab file left goes).
    await expect(onNode("node1", `test ! -e ${ROOT}`)).resolves.toBe("");
    await onNode("node1", "rm -rf /etc/modelshare");
  });

  it("converges from fresh nodes, and a second converge changes nothing", async () => {
    // Each Command on its own connection, as the provider dials (the other runs share one).
    const first = await converge(undefined, { dialPerCommand: true });
    expect(first.map((s) => s.name).sort()).toEqual([
      "node1-env-converge",
      "node1-layout-converge",
      "node1-links-storage-user/models-converge",
      "node1-links-storage-user/models-upload-converge",
    ]);
    expect(first.findIndex((s) => s.name === "node1-layout-converge")).toBeLessThan(first.findIndex((s) => s.name.startsWith("node1-links-")));
    for (const s of first) expect(s.changed, s.name).toBeGreaterThan(0);
    expect(await onNode("node1", `readlink ${UPLOAD}/checkpoints && stat -c '%u:%g %a' ${STORE}/checkpoints`)).toBe(
      "../../storage-models/models/checkpoints\n1000:1000 775\n",
    );
    const second = await converge();
    expect(changes(second)).toEqual(NOTHING);
  });

  it("repairs a deleted link, a populated folder in a link's place, a wrong target and a removed category, losing nothing", async () => {
    await onNode(
      "node1",
      [
        `echo model-a > ${STORE}/loras/a.safetensors`,
        `rm ${UPLOAD}/vae`,
        `rm ${UPLOAD}/checkpoints && mkdir -p ${UPLOAD}/checkpoints/sub && echo dropped > ${UPLOAD}/checkpoints/sd.ckpt && echo deep > ${UPLOAD}/checkpoints/sub/x.bin`,
        `ln -sfn /tmp ${UPLOAD}/loras`,
        `rmdir ${STORE}/embeddings`,
      ].join(" && "),
    );
    const steps = await converge();
    expect(steps.every((s) => s.code === 0)).toBe(true);
    expect(
      await onNode(
        "node1",
        [
          `readlink ${UPLOAD}/vae ${UPLOAD}/checkpoints ${UPLOAD}/loras ${UPLOAD}/embeddings`,
          `cat ${STORE}/checkpoints/sd.ckpt ${STORE}/checkpoints/sub/x.bin ${STORE}/loras/a.safetensors`,
          `test -d ${STORE}/embeddings && echo embeddings-back`,
        ].join(" && "),
      ),
    ).toBe(
      [
        "../../storage-models/models/vae",
        "../../storage-models/models/checkpoints",
        "../../storage-models/models/loras",
        "../../storage-models/models/embeddings",
        "dropped",
        "deep",
        "model-a",
        "embeddings-back",
        "",
      ].join("\n"),
    );
    expect(changes(await converge())).toEqual(NOTHING);
  });

  it("adding a category makes just that folder and its links", async () => {
    const addClipVision = (s: Record<string, any>) => {
      s["modelshare:storage"].categories = [
        "checkpoints",
        "loras",
        "vae",
        "controlnet",
        "upscale_models",
        "embeddings",
        "clip",
        "diffusion_models",
        "clip_vision",
      ];
    };
    const steps = await converge(addClipVision);
    // The environment file names the new category too.
    expect(changes(steps)).toEqual({
      "node1-env-converge": 1,
      "node1-layout-converge": 1,
      "node1-links-storage-user/models-converge": 1,
      "node1-links-storage-user/models-upload-converge": 1,
    });
    expect(await onNode("node1", `readlink ${UPLOAD}/clip_vision`)).toBe("../../storage-models/models/clip_vision\n");
    expect(changes(await converge(addClipVision))).toEqual(NOTHING);
  });

  it("a converge cut off by a dropped link fails naming the node, and the next one completes", async () => {
    await onNode("node1", `rm ${UPLOAD}/vae ${ROOT}/storage-user/models/vae`);
    let cut = false;
    const attempt = converge(undefined, {
      dialPerCommand: true,
      // Cut once the layout is done, before the steps that wait for it dial.
      onStep: (s) => {
        if (!cut && s.name === "node1-layout-converge") {
          cut = true;
          lab("link", "node1", "down");
        }
      },
    });
    await expect(attempt).rejects.toThrow(/node1-(links-storage-user\/models(-upload)?|env)-converge \(on 10\.77\.0\.11\): could not connect/);
    lab("link", "node1", "up");
    const steps = await converge();
    expect(steps.every((s) => s.code === 0)).toBe(true);
    expect(await onNode("node1", `readlink ${UPLOAD}/vae; find ${ROOT} -name '*.modelshare-new' | wc -l`)).toBe("../../storage-models/models/vae\n0\n");
    expect(changes(await converge())).toEqual(NOTHING);
  });

  it("a merge killed halfway finishes on the next converge, every file kept", async () => {
    // 1500 files where the loras link belongs: the merge moves them one by one, slowly enough
    // under emulation to be killed in the middle.
    await onNode(
      "node1",
      `rm ${UPLOAD}/loras && mkdir ${UPLOAD}/loras && cd ${UPLOAD}/loras && for i in $(seq 1500); do echo "lora $i" > "l$i.safetensors"; done`,
    );
    const before = await onNode("node1", `cd ${UPLOAD}/loras && cat * | sha256sum`);
    const outcome = converge().then(
      () => new Error("the converge was not interrupted"),
      (e: Error) => e,
    );
    for (let moved = 0; moved < 100;) {
      await new Promise((r) => setTimeout(r, 500));
      moved = Number(await onNode("node1", `ls ${STORE}/loras | grep -c '^l' || true`));
    }
    await onNode("node1", "pkill -KILL -f 'modelshare: category links in /srv/cw/storage-user/models-upload'");
    expect((await outcome).message).toMatch(/^node1-links-storage-user\/models-upload-converge \(on 10\.77\.0\.11\): exited/);
    expect(Number(await onNode("node1", `ls ${UPLOAD}/loras | wc -l`))).toBeGreaterThan(0); // really halfway
    const steps = await converge();
    expect(steps.every((s) => s.code === 0)).toBe(true);
    expect(await onNode("node1", `readlink ${UPLOAD}/loras && ls ${STORE}/loras | grep -c '^l'`)).toBe("../../storage-models/models/loras\n1500\n");
    expect(await onNode("node1", `cd ${STORE}/loras && cat l* | sha256sum`)).toBe(before);
    expect(changes(await converge())).toEqual(NOTHING);
  });

  it("the owner uid cannot swap a store folder for a link; on an old site (every folder the owner's) the planted link stops the converge, and the migration locks the skeleton", async () => {
    const asOwner = (cmd: string) => `setpriv --reuid=1000 --regid=1000 --clear-groups -- env -i PATH=/usr/bin:/bin bash -c '${cmd}'`;
    const plant = `mv ${STORE}/vae ${STORE}/vae.real && ln -s /etc/profile.d ${STORE}/vae && rm ${UPLOAD}/vae && mkdir ${UPLOAD}/vae && echo evil > ${UPLOAD}/vae/zz.sh`;
    // Converged: the skeleton is root's, so the owner's rename is refused by the kernel.
    expect(await onNode("node1", `if ${asOwner(plant)} 2>/dev/null; then echo planted; else echo refused; fi; stat -c '%u %a' ${STORE} ${UPLOAD}`)).toBe(
      "refused\n0 755\n0 755\n",
    );
    // The tree as an earlier modelshare left it: the owner could still plant there.
    await onNode("node1", `chown -R -h 1000:1000 ${ROOT} && find ${ROOT} -type d -exec chmod 0775 {} +`);
    const before = await onNode("node1", "stat -c '%u:%g %a' /etc/profile.d; ls -A /etc/profile.d | sha256sum");
    await onNode("node1", asOwner(plant));
    await expect(converge()).rejects.toThrow(
      new RegExp(`node1-layout-converge \\(on 10\\.77\\.0\\.11\\): exited 1: modelshare: ${STORE}/vae is a symbolic link \\(to /etc/profile\\.d\\)`),
    );
    expect(await onNode("node1", "stat -c '%u:%g %a' /etc/profile.d; ls -A /etc/profile.d | sha256sum")).toBe(before);
    // The admin puts the folder back (the store folder is root's now: the owner no longer can).
    await onNode("node1", `rm ${STORE}/vae && mv ${STORE}/vae.real ${STORE}/vae`);
    const steps = await converge();
    expect(
      await onNode("node1", `cat ${STORE}/vae/zz.sh && readlink ${UPLOAD}/vae && stat -c '%u %a' ${ROOT} ${STORE} ${UPLOAD} && stat -c '%u' ${STORE}/vae`),
    ).toBe("evil\n../../storage-models/models/vae\n0 755\n0 755\n0 755\n1000\n");
    expect(steps.every((x) => x.code === 0)).toBe(true);
    expect(changes(await converge())).toEqual(NOTHING);
  });

  it("a node that does not answer fails the run naming it, after the dials DIAL allows", async () => {
    const attempt = converge((s) => {
      s["modelshare:nodes"][0].host = "10.77.0.99"; // inside the lab's own subnet, no VM there
      s["modelshare:nodes"][0].hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMTczbsW/nG9uy6QxsgnoTzoBJ6PFXKRsecE6sHDV4Q";
    });
    // Bounded by count, not by a clock: the run gave up after DIAL's dials, each cut at its limit.
    await expect(attempt).rejects.toThrow(
      `node1-layout-converge (on 10.77.0.99): could not connect to root@10.77.0.99:22 (${DIAL.dialErrorLimit} dials of at most ${DIAL.perDialTimeout} s)`,
    );
  });

  it("destroy removes the links and keeps every model byte", async () => {
    await onNode("node1", `head -c 1000000 /dev/urandom > ${STORE}/checkpoints/big.safetensors`);
    const before = await checksums();
    expect(before).toContain("big.safetensors");
    const resources = await declareLab();
    const steps = await run(resources, { destroy: true });
    expect(steps.map((s) => s.name).sort()).toEqual([
      "node1-env-converge",
      "node1-links-storage-user/models-converge",
      "node1-links-storage-user/models-upload-converge",
    ]);
    expect(await onNode("node1", `find ${ROOT} -type l | wc -l; test -d ${UPLOAD} && echo kept || echo removed`)).toBe("0\nremoved\n");
    expect(await checksums()).toBe(before);
  });
});
