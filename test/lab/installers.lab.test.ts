import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { siteFromConfig } from "../../components/stackConfig";
import { loadSite } from "../../components/loadSite";
import { checkSite, formatText } from "../../ops/check";
import { checkConverged } from "../harness/check";
import { run, type Step } from "../harness/converge";
import { declare } from "../harness/declare";
import { labStack, onNode } from "../harness/lab";

/**
 * Host installs pointed at the shared storage, on real nodes: node1 keeps and exports it, node2
 * and node3 mount it. "Ollama" is installed on node1 and node2 the way the official script
 * installs it (an ollama system user with its home in /usr/share/ollama, models in
 * ~/.ollama/models, the ollama systemd unit), with a stand-in for the binary that records what
 * it was started with and whether it can write its models folder. Leaves node1 without /srv/cw.
 */
const ROOT = "/srv/cw";
const SHARED = "/srv/cw/storage-models/ollama"; // on node1, the storage node
const OLD = "/usr/share/ollama/.ollama/models";
const STATE = "/var/lib/ollama-stand-in";

const stack = (ollamaNodes: string[] = ["node2"]) =>
  labStack((s) => {
    s["modelshare:nfs"] = { enabled: true };
    s["modelshare:ollama"] = { nodes: ollamaNodes };
  });
const declared = (nodes?: string[]) => declare({ stack: "lab", ...stack(nodes) }, () => new Site("site", loadSite()));
const converge = async (nodes?: string[]) => run(await declared(nodes));
const step = (steps: Step[], name: string) => steps.find((s) => s.name === name)!;
const starts = () => onNode("node1", `wc -l < ${STATE}/starts`).then(Number);

const STAND_IN = `#!/bin/sh
# The lab's stand-in for ollama serve: records how it was started, lists its models, tries a write.
echo start >> ${STATE}/starts
models=\${OLLAMA_MODELS:-$HOME/.ollama/models}
{ echo "OLLAMA_MODELS=\${OLLAMA_MODELS-}"; ls -A "$models/blobs" 2>&1; touch "$models/.written-by-ollama" 2>&1 && echo writable; } > ${STATE}/last
exec sleep infinity
`;
const UNIT = `[Unit]
Description=Ollama Service (the modelshare lab's stand-in)
After=network-online.target

[Service]
ExecStart=/usr/local/bin/ollama serve
User=ollama
Group=ollama
StateDirectory=ollama-stand-in
Restart=always

[Install]
WantedBy=default.target
`;

describe("OllamaInstaller: an installed Ollama pointed at the shared folder", () => {
  beforeAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}; systemctl disable --now nfs-ganesha >/dev/null 2>&1 || true`);
    // What Ollama's install script leaves, on node1 (the storage node) and node2 (a worker):
    // the user, the unit, models in the user's home.
    for (const node of ["node1", "node2"]) {
      await onNode(
        node,
        [
          "id ollama >/dev/null 2>&1 || useradd -r -s /bin/false -U -m -d /usr/share/ollama ollama",
          `cat > /usr/local/bin/ollama && chmod 0755 /usr/local/bin/ollama`,
        ].join(" && "),
        STAND_IN,
      );
      await onNode(node, "cat > /etc/systemd/system/ollama.service && systemctl daemon-reload && systemctl enable --now ollama.service", UNIT);
      await onNode(
        node,
        [
          // As the install script leaves it, whatever an earlier run did here.
          `rm -rf ${OLD} /etc/systemd/system/ollama.service.d && systemctl daemon-reload && (gpasswd -d ollama modelshare >/dev/null 2>&1 || true)`,
          `mkdir -p ${OLD}/blobs ${OLD}/manifests/registry.ollama.ai/library/tiny`,
          `head -c 300000 /dev/urandom > ${OLD}/blobs/sha256-aaaa`,
          `echo '{"schemaVersion":2}' > ${OLD}/manifests/registry.ollama.ai/library/tiny/latest`,
          "chown -R ollama:ollama /usr/share/ollama",
        ].join(" && "),
      );
    }
  });
  afterAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}; systemctl disable --now ollama.service >/dev/null 2>&1 || true`);
  });

  it("on a worker, over NFS with Debian's manage-gids, the ollama user's group does not count on the server: the run says so and what to do, and writes no drop-in", async () => {
    const failed = await converge(["node2"]).then(
      () => "converged",
      (e: Error) => e.message,
    );
    expect(failed).toMatch(
      /node2-ollama-converge[\s\S]*the ollama user \(uid \d+\) cannot write \/mnt\/modelshare\/storage-models\/ollama over NFS[\s\S]*rpc\.mountd's manage-gids, which Debian's \/etc\/nfs\.conf turns on/,
    );
    expect(await onNode("node2", "test ! -e /etc/systemd/system/ollama.service.d && echo none")).toBe("none\n");
  }, 900_000); // the site's first converge: apt installs the NFS server and clients under emulation

  it("writes the drop-in, puts the ollama user in the owner's group, moves its models over byte for byte, restarts it; a second converge changes nothing and restarts nothing", async () => {
    const before = await onNode("node1", `sha256sum < ${OLD}/blobs/sha256-aaaa`);
    const first = step(await converge(["node1"]), "node1-ollama-converge");
    expect(first.stdout).toContain("changed: added the ollama user to modelshare (1000)");
    expect(first.stdout).toContain("changed: wrote /etc/systemd/system/ollama.service.d/modelshare.conf");
    expect(first.stdout).toContain(`changed: moved the models in ${OLD} into ${SHARED}`);
    expect(first.stdout).toContain("changed: restarted ollama");
    expect(await onNode("node1", "systemctl show -p Environment ollama.service")).toBe(`Environment=OLLAMA_MODELS=${SHARED}\n`);
    await new Promise((ok) => setTimeout(ok, 1500));
    expect(await onNode("node1", `cat ${STATE}/last`)).toBe(`OLLAMA_MODELS=${SHARED}\nsha256-aaaa\nwritable\n`);
    expect(
      await onNode(
        "node1",
        `sha256sum < ${ROOT}/storage-models/ollama/blobs/sha256-aaaa; cat ${ROOT}/storage-models/ollama/manifests/registry.ollama.ai/library/tiny/latest`,
      ),
    ).toBe(`${before}{"schemaVersion":2}\n`);
    // The old folder stays, empty; nothing was opened wider than the layout's modes (the
    // skeleton root's 0755, the Ollama folder the owner's leaf).
    expect(await onNode("node1", `stat -c '%U %a' ${OLD}; ls -A ${OLD} | wc -l`)).toBe("ollama 755\n0\n");
    expect(await onNode("node1", `stat -c '%u %a' ${ROOT} ${ROOT}/storage-models ${ROOT}/storage-models/ollama`)).toBe("0 755\n0 755\n1000 775\n");
    const count = await starts();
    const second = step(await converge(["node1"]), "node1-ollama-converge");
    expect(second.changed).toBe(0);
    expect(await starts()).toBe(count);
    // The check of the site just converged finds nothing on any node, checked every program
    // the plan has (the installer and the NFS chain it reads through), and restarted nothing.
    const { config, secretKeys } = stack(["node1"]);
    const check = await checkConverged(siteFromConfig(config, (k) => secretKeys.includes(k)));
    expect(check.findings, check.text).toEqual([]);
    expect(check.checked).toEqual(check.planned);
    expect(Object.values(check.planned).flat()).toEqual(expect.arrayContaining(["node1-ollama", "node1-nfs-export", "node2-nfs-mount", "node2-env"]));
    expect(await starts()).toBe(count);
  });

  it("a model in the old folder whose name holds other content in the shared one stops the run listing it, and nothing moves", async () => {
    await onNode(
      "node1",
      [
        "systemctl stop ollama.service",
        `echo other > ${OLD}/sha256-clash && echo new > ${OLD}/sha256-new && chown ollama:ollama ${OLD}/sha256-clash ${OLD}/sha256-new`,
        "systemctl start ollama.service",
      ].join(" && "),
    );
    await onNode("node1", `echo mine > ${ROOT}/storage-models/ollama/sha256-clash && chown 1000:1000 ${ROOT}/storage-models/ollama/sha256-clash`);
    const failed = await converge(["node1"]).then(
      () => "converged",
      (e: Error) => e.message,
    );
    expect(failed).toMatch(/node1-ollama-converge[\s\S]*these names hold different content:\n {2}sha256-clash\n[\s\S]*nothing was moved/);
    expect(await onNode("node1", `ls ${OLD}`)).toBe("sha256-clash\nsha256-new\n");
    await onNode("node1", `rm ${OLD}/sha256-clash`);
    expect(step(await converge(["node1"]), "node1-ollama-converge").stdout).toContain(`changed: moved the models in ${OLD} into ${SHARED}`);
    expect(await onNode("node1", `cat ${ROOT}/storage-models/ollama/sha256-new`)).toBe("new\n");
  });

  it("check names a drop-in removed by hand; converge puts it back and restarts Ollama", async () => {
    const { config, secretKeys } = stack(["node1"]);
    const site = siteFromConfig(config, (k) => secretKeys.includes(k));
    await onNode("node1", "rm /etc/systemd/system/ollama.service.d/modelshare.conf && systemctl daemon-reload");
    expect(formatText(await checkSite(site))).toContain("/etc/systemd/system/ollama.service.d/modelshare.conf differs from what modelshare writes there");
    const count = await starts();
    expect(step(await converge(["node1"]), "node1-ollama-converge").stdout).toContain("changed: restarted ollama");
    expect(await starts()).toBe(count + 1);
  });

  it("destroy removes the drop-in and restarts Ollama on its default folder; the models stay shared", async () => {
    await run(await declared(["node1"]), { destroy: true });
    await new Promise((ok) => setTimeout(ok, 1500));
    expect(await onNode("node1", `test ! -e /etc/systemd/system/ollama.service.d && head -n 1 ${STATE}/last`)).toBe("OLLAMA_MODELS=\n");
    expect(await onNode("node1", `ls ${ROOT}/storage-models/ollama/blobs`)).toBe("sha256-aaaa\n");
  });
});

describe("ComfyUIInstaller: an existing checkout pointed at the shared folders", () => {
  const CHECKOUT = "/opt/ComfyUI";
  const COMFY_STATE = "/var/lib/comfyui-stand-in";
  const comfyStack = () =>
    labStack((s) => {
      s["modelshare:nfs"] = { enabled: true };
      s["modelshare:comfyui"] = { installs: [{ node: "node3", path: CHECKOUT, service: "comfyui.service" }] };
    });
  const comfyDeclared = () => declare({ stack: "lab", ...comfyStack() }, () => new Site("site", loadSite()));
  const NAME = "node3-comfyui-opt-ComfyUI-converge";
  const ADMIN = "# the admin's own section\na111:\n    base_path: /opt/sd-webui/   # theirs\n    checkpoints: models/Stable-diffusion\n";
  const MAIN = "import sys, time\nopen('/var/lib/comfyui-stand-in/argv', 'w').write(' '.join(sys.argv[1:]) + '\\n')\ntime.sleep(10 ** 9)\n";
  const COMFY_UNIT = `[Unit]\nDescription=ComfyUI (the modelshare lab's stand-in)\n\n[Service]\nUser=artist\nExecStart=/usr/bin/python3 ${CHECKOUT}/main.py --listen 0.0.0.0\nStateDirectory=comfyui-stand-in\n\n[Install]\nWantedBy=multi-user.target\n`;

  beforeAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}`);
    // A studio's worker: Python with PyYAML (ComfyUI needs it), the checkout of user 1000 (the
    // storage owner), its service, models already downloaded into it.
    await onNode(
      "node3",
      [
        "{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-yaml python3-ruamel.yaml; } >/dev/null 2>&1",
        "id artist >/dev/null 2>&1 || useradd -u 1000 -U -m artist",
        `mkdir -p ${CHECKOUT}/models/checkpoints ${CHECKOUT}/models/loras ${CHECKOUT}/custom_nodes ${CHECKOUT}/utils`,
        `touch ${CHECKOUT}/folder_paths.py ${CHECKOUT}/utils/extra_config.py ${CHECKOUT}/models/checkpoints/put_checkpoints_here ${CHECKOUT}/models/loras/put_loras_here`,
        `head -c 400000 /dev/urandom > ${CHECKOUT}/models/checkpoints/sd15.safetensors`,
      ].join(" && "),
    );
    await onNode("node3", `cat > ${CHECKOUT}/main.py`, MAIN);
    await onNode("node3", `cat > ${CHECKOUT}/extra_model_paths.yaml && chown -R artist:artist ${CHECKOUT}`, ADMIN);
    await onNode("node3", "cat > /etc/systemd/system/comfyui.service && systemctl daemon-reload && systemctl enable --now comfyui.service", COMFY_UNIT);
  });
  afterAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}`);
  });

  it("adds its section beside the admin's, moves the models into the store byte for byte (placeholders stay), starts ComfyUI with --output-directory; a second converge changes nothing", async () => {
    const before = await onNode("node3", `sha256sum < ${CHECKOUT}/models/checkpoints/sd15.safetensors`);
    const first = step(await run(await comfyDeclared()), NAME);
    expect(first.stdout).toContain(`changed: wrote modelshare's section in ${CHECKOUT}/extra_model_paths.yaml`);
    expect(first.stdout).toContain(`changed: moved the models in ${CHECKOUT}/models/checkpoints into /mnt/modelshare/storage-models/models/checkpoints`);
    expect(first.stdout).toContain("changed: restarted comfyui.service");
    const yaml = await onNode("node3", `python3 -c 'import json, yaml; print(json.dumps(yaml.safe_load(open("${CHECKOUT}/extra_model_paths.yaml"))))'`);
    expect(JSON.parse(yaml)).toMatchObject({
      a111: { base_path: "/opt/sd-webui/", checkpoints: "models/Stable-diffusion" },
      modelshare: {
        base_path: "/mnt/modelshare/storage-models/models",
        // ComfyUI's own downloads and ComfyUI-Manager's land in the shared store.
        is_default: true,
        download_model_base: "/mnt/modelshare/storage-models/models",
        checkpoints: "checkpoints",
      },
    });
    // Custom nodes are code: not shared unless comfyui.sharedCustomNodes says so.
    expect(JSON.parse(yaml).modelshare.custom_nodes).toBeUndefined();
    expect(
      await onNode(
        "node3",
        `grep -c '# theirs' ${CHECKOUT}/extra_model_paths.yaml; ls ${CHECKOUT}/models/checkpoints; stat -c %U ${CHECKOUT}/extra_model_paths.yaml`,
      ),
    ).toBe("1\nput_checkpoints_here\nartist\n");
    expect(
      await onNode(
        "node1",
        `sha256sum < ${ROOT}/storage-models/models/checkpoints/sd15.safetensors; stat -c %u:%g ${ROOT}/storage-models/models/checkpoints/sd15.safetensors`,
      ),
    ).toBe(`${before}1000:1000\n`);
    await new Promise((ok) => setTimeout(ok, 1500));
    expect(await onNode("node3", `cat ${COMFY_STATE}/argv`)).toBe("--listen 0.0.0.0 --output-directory /mnt/modelshare/storage-user/output/ComfyUI\n");
    expect(step(await run(await comfyDeclared()), NAME).changed).toBe(0);
    // The check of the site just converged finds nothing and checked every planned program.
    const { config, secretKeys } = comfyStack();
    const check = await checkConverged(siteFromConfig(config, (k) => secretKeys.includes(k)));
    expect(check.findings, check.text).toEqual([]);
    expect(check.checked).toEqual(check.planned);
    expect(check.planned.node3).toEqual(expect.arrayContaining([NAME.replace(/-converge$/, ""), "node3-nfs-mount", "node3-env"]));
  });

  it("a checkout of root's: root hands the models over inside it and the storage owner moves them over NFS; the checkout's folders and placeholders stay root's", async () => {
    await onNode(
      "node3",
      [
        `chown -R root:root ${CHECKOUT}`,
        `head -c 300000 /dev/urandom > ${CHECKOUT}/models/loras/style.safetensors`,
        `mkdir -p ${CHECKOUT}/models/checkpoints/sdxl && head -c 200000 /dev/urandom > ${CHECKOUT}/models/checkpoints/sdxl/base.safetensors`,
      ].join(" && "),
    );
    const sums = `sha256sum < ${CHECKOUT}/models/loras/style.safetensors; sha256sum < ${CHECKOUT}/models/checkpoints/sdxl/base.safetensors`;
    const before = await onNode("node3", sums);
    const r = step(await run(await comfyDeclared()), NAME);
    expect(r.stdout).toContain(`changed: handed the models in ${CHECKOUT}/models/loras to 1000:1000, who moves them`);
    expect(r.stdout).toContain(`changed: moved the models in ${CHECKOUT}/models/checkpoints into /mnt/modelshare/storage-models/models/checkpoints`);
    const store = `${ROOT}/storage-models/models`;
    expect(
      await onNode(
        "node1",
        `sha256sum < ${store}/loras/style.safetensors; sha256sum < ${store}/checkpoints/sdxl/base.safetensors; stat -c %u:%g ${store}/loras/style.safetensors ${store}/checkpoints/sdxl ${store}/checkpoints/sdxl/base.safetensors`,
      ),
    ).toBe(`${before}1000:1000\n1000:1000\n1000:1000\n`);
    expect(
      await onNode(
        "node3",
        `ls -A ${CHECKOUT}/models/loras ${CHECKOUT}/models/checkpoints; stat -c %U ${CHECKOUT}/models/loras ${CHECKOUT}/models/loras/put_loras_here`,
      ),
    ).toBe(`${CHECKOUT}/models/checkpoints:\nput_checkpoints_here\n\n${CHECKOUT}/models/loras:\nput_loras_here\nroot\nroot\n`);
    expect(step(await run(await comfyDeclared()), NAME).changed).toBe(0);
  });

  it("destroy removes modelshare's section and drop-in only: the admin's section and every model stay", async () => {
    await run(await comfyDeclared(), { destroy: true });
    const yaml = await onNode("node3", `python3 -c 'import json, yaml; print(json.dumps(yaml.safe_load(open("${CHECKOUT}/extra_model_paths.yaml"))))'`);
    expect(JSON.parse(yaml)).toEqual({ a111: { base_path: "/opt/sd-webui/", checkpoints: "models/Stable-diffusion" } });
    expect(await onNode("node3", "test ! -e /etc/systemd/system/comfyui.service.d && echo gone")).toBe("gone\n");
    expect(await onNode("node1", `ls ${ROOT}/storage-models/models/checkpoints`)).toBe("sd15.safetensors\nsdxl\n");
  });
});
