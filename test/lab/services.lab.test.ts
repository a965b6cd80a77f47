import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { siteFromConfig } from "../../components/stackConfig";
import { loadSite } from "../../components/loadSite";
import { checkSite, formatText } from "../../ops/check";
import { checkConverged } from "../harness/check";
import { run, type Step } from "../harness/converge";
import { declare } from "../harness/declare";
import { importLabImage, lab, LAB_IMAGE as IMAGE, labImageTar, labStack, onNode } from "../harness/lab";

/**
 * The whole chain on the lab: node1 keeps the storage and serves it over SMB (to the lab host,
 * 10.77.0.1) and NFS; node2 and node3 mount it and run service containers, which the program's
 * docker provider (ssh, the lab's keys, pinned host keys) makes there. The lab has no registry:
 * the image is a busybox rootfs imported on each worker (`pull: never`). Leaves node1 without
 * /srv/cw for the other lab files.
 */
const ROOT = "/srv/cw";
const SHARE = "//10.77.0.11/ki_Daten";
const PASSWORD = "chain-pass";

type Services = Record<string, Record<string, unknown>>;
const initial: Services = {
  comfyui: { enabled: true, image: IMAGE, pull: "never", nodes: ["node2"] },
  fooocus: { enabled: true, image: IMAGE, pull: "never", nodes: ["node3"], modelsWritable: true },
};
const stack = (services: Services) =>
  labStack(
    (s) => {
      s["modelshare:smb"] = { enabled: true, users: [{ name: "artist", passwordKey: "smbPasswordArtist" }], hostsAllow: ["10.77.0.1"] };
      s["modelshare:nfs"] = { enabled: true };
      s["modelshare:services"] = services;
      s["modelshare:projects"] = ["spring"];
    },
    { "modelshare:smbPasswordArtist": PASSWORD },
  );
const declared = (services: Services) => declare({ stack: "lab", ...stack(services) }, () => new Site("site", loadSite()));
/** The same site as `npm run check` reads it. */
const stackSite = (services: Services = initial) => {
  const { config, secretKeys } = stack(services);
  return siteFromConfig(config, (k) => secretKeys.includes(k));
};
const converge = async (services: Services = initial) => run(await declared(services));
const changes = (steps: Step[]) => Object.fromEntries(steps.map((s) => [s.name, s.changed]));

const work = mkdtempSync(join(tmpdir(), "modelshare-chain-"));
function smbclient(commands: string) {
  const auth = join(work, "auth");
  writeFileSync(auth, `username = artist\npassword = ${PASSWORD}\n`, { mode: 0o600 });
  const r = spawnSync("smbclient", [SHARE, "-A", auth, "-c", commands], { cwd: work, encoding: "utf8" });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}
/** A command inside a container on a worker: its output (stderr too), and "exit N" if it failed. */
const inContainer = (node: string, service: string, command: string) =>
  onNode(node, `docker exec modelshare-${service} sh -c '${command}' 2>&1 || echo "exit $?"`);
const checksums = () => onNode("node1", `cd ${ROOT} && find storage-models storage-user -type f -print0 | sort -z | xargs -0r sha256sum`);

describe("the whole chain: SMB upload, NFS, service containers", () => {
  beforeAll(async () => {
    expect(spawnSync("/bin/busybox", ["true"]).error, "the chain test builds its image from busybox-static: apt-get install busybox-static").toBeUndefined();
    // A fresh storage node: whatever ran before, no tree and no ganesha holding port 2049.
    await onNode("node1", `rm -rf ${ROOT}; systemctl disable --now nfs-ganesha >/dev/null 2>&1 || true`);
    // Workers as a fresh site finds them, whatever ran on them before: no image, no containers.
    for (const node of ["node2", "node3"]) {
      await onNode(
        node,
        `if command -v docker >/dev/null; then docker rm -f modelshare-comfyui modelshare-fooocus; docker image rm -f ${IMAGE}; fi >/dev/null 2>&1; true`,
      );
    }
  });
  afterAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}`);
  });

  it("starts docker on the workers (installing it where missing), stops at an image that is not there (naming it), then runs both containers; a second converge changes nothing", async () => {
    const failed = await converge().then(
      () => "converged",
      (e: Error) => e.message,
    );
    expect(failed).toMatch(
      new RegExp(`node[23]-docker-converge .*image ${IMAGE} is not on lab-node[23], and services\\.(comfyui|fooocus)\\.pull is never`, "s"),
    );
    const tar = labImageTar();
    for (const node of ["node2", "node3"]) {
      expect(await onNode(node, "dpkg-query -W -f='${db:Status-Status}\\n' docker.io; systemctl is-active docker")).toBe("installed\nactive\n");
      await importLabImage(node, tar);
    }
    const steps = await converge();
    const byName = Object.fromEntries(steps.map((s) => [s.name, s]));
    expect(byName["node2-comfyui-container"].stdout).toContain("changed: created and started modelshare-comfyui");
    expect(byName["node3-fooocus-container"].stdout).toContain("changed: created and started modelshare-fooocus");
    // Each container started after its node's docker and NFS mount.
    for (const [node, svc] of [
      ["node2", "comfyui"],
      ["node3", "fooocus"],
    ]) {
      const c = byName[`${node}-${svc}-container`];
      for (const before of [`${node}-docker-converge`, `${node}-nfs-mount-converge`]) expect(c.began).toBeGreaterThan(byName[before].ended);
    }
    expect(
      await onNode(
        "node2",
        "docker inspect -f '{{.Config.User}} {{.HostConfig.RestartPolicy.Name}} {{index .Config.Labels \"org.modelshare.service\"}}' modelshare-comfyui",
      ),
    ).toBe("1000:1000 unless-stopped comfyui\n");
    expect(await onNode("node2", "cat /etc/systemd/system/docker.service.d/modelshare.conf")).toContain("After=mnt-modelshare.mount");
    const again = changes(await converge());
    for (const [name, changed] of Object.entries(again)) expect(changed, name).toBe(0);
    // Converge and check render the same programs: on the site just converged, the check finds
    // nothing on any node and checked every program the plan has, each kind of this chain among them.
    const check = await checkConverged(stackSite());
    expect(check.findings, check.text).toEqual([]);
    expect(check.checked).toEqual(check.planned);
    expect(Object.values(check.planned).flat()).toEqual(
      expect.arrayContaining([
        "node1-layout",
        "node1-smb",
        "node1-smb-passwords",
        "node1-nfs-export",
        "node1-env",
        "node2-nfs-mount",
        "node2-docker",
        "node2-comfyui-container",
        "node3-docker",
        "node3-fooocus-container",
      ]),
    );
  }, 1_800_000); // three converges, the first with apt installing Samba, NFS and docker.io under emulation (over 900 s on a slow day)

  it("a model uploaded over SMB is in ComfyUI's /models/checkpoints byte for byte; /models is read-only there and writable in Fooocus, whose file shows on the share", async () => {
    const model = join(work, "model.safetensors");
    writeFileSync(model, Buffer.from(Array.from({ length: 250_000 }, (_, i) => (i * 7919) % 251)));
    const put = smbclient("cd storage-user/models-upload/checkpoints; put model.safetensors");
    expect(put.code, put.out).toBe(0);
    const sum = spawnSync("sha256sum", [model], { encoding: "utf8" }).stdout.split(" ")[0];
    expect(await inContainer("node2", "comfyui", "sha256sum /models/checkpoints/model.safetensors")).toBe(`${sum}  /models/checkpoints/model.safetensors\n`);
    expect(await inContainer("node2", "comfyui", "echo x > /models/checkpoints/new.safetensors")).toMatch(/Read-only file system\nexit 1\n$/);
    expect(await inContainer("node3", "fooocus", "echo downloaded > /models/loras/dl.safetensors && id -u")).toBe("1000\n");
    // A host process on the worker finds the same file through /etc/modelshare/env.
    expect(
      await onNode("node2", 'set -a; . /etc/modelshare/env; echo "$MODELSHARE_ROOT"; sha256sum < "$MODELSHARE_MODELS_CHECKPOINTS/model.safetensors"'),
    ).toBe(`/mnt/modelshare\n${sum}  -\n`);
    expect(await onNode("node1", "grep -x 'MODELSHARE_ROOT=/srv/cw' /etc/modelshare/env")).toBe("MODELSHARE_ROOT=/srv/cw\n");
    const get = smbclient("cd storage-user/models-upload/loras; get dl.safetensors");
    expect(get.code, get.out).toBe(0);
    expect(readFileSync(join(work, "dl.safetensors"), "utf8")).toBe("downloaded\n");
  });

  it("a file written to /outputs lands in storage-user/output/ComfyUI owned by the storage owner and downloads over SMB; /inputs is read-only", async () => {
    expect(await inContainer("node2", "comfyui", "echo png-bytes > /outputs/img_0001.png")).toBe("");
    expect(await onNode("node1", `stat -c '%u:%g' ${ROOT}/storage-user/output/ComfyUI/img_0001.png`)).toBe("1000:1000\n");
    const get = smbclient("cd storage-user/output/ComfyUI; get img_0001.png");
    expect(get.code, get.out).toBe(0);
    expect(readFileSync(join(work, "img_0001.png"), "utf8")).toBe("png-bytes\n");
    expect(await inContainer("node2", "comfyui", "touch /inputs/x")).toMatch(/Read-only file system\nexit 1\n$/);
    expect(await inContainer("node2", "comfyui", "ls /workflows && touch /workflows/w.json && echo ok")).toBe("ok\n");
  });

  it("check says when a container is stopped; a worker whose NFS mount is gone does not start its container on an empty folder; converge brings both back", async () => {
    const site = () => {
      const { config, secretKeys } = stack(initial);
      return siteFromConfig(config, (k) => secretKeys.includes(k));
    };
    await onNode("node3", "docker stop -t 1 modelshare-fooocus >/dev/null");
    expect(formatText(await checkSite(site()))).toContain("container modelshare-fooocus is exited, not running");
    // The storage goes away under node2's container, which then restarts (as after a reboot).
    await onNode("node2", "docker stop -t 1 modelshare-comfyui >/dev/null && systemctl stop mnt-modelshare.mount && ! mountpoint -q /mnt/modelshare");
    expect(await onNode("node2", "docker start modelshare-comfyui 2>&1 || true")).toMatch(/bind source path does not exist|no such file or directory/);
    expect(await onNode("node2", "docker inspect -f '{{.State.Running}}' modelshare-comfyui; ls -A /mnt/modelshare | wc -l")).toBe("false\n0\n");
    const steps = changes(await converge());
    expect(steps["node2-nfs-mount-converge"]).toBe(1);
    expect(steps["node2-comfyui-container"]).toBeGreaterThan(0);
    expect(steps["node3-fooocus-container"]).toBeGreaterThan(0);
    expect(await inContainer("node2", "comfyui", "ls /models/checkpoints")).toBe("model.safetensors\n");
    expect(formatText(await checkSite(site()))).not.toMatch(/container modelshare-\w+ (is|was)/);
  });

  it("a rebooted worker runs its container again, on the mounted storage (docker starts after the NFS mount)", async () => {
    lab("reboot", "node2");
    expect(await onNode("node2", "findmnt -n -o FSTYPE /mnt/modelshare; docker inspect -f '{{.State.Running}}' modelshare-comfyui")).toBe("nfs4\ntrue\n");
    expect(await inContainer("node2", "comfyui", "ls /models/checkpoints")).toBe("model.safetensors\n");
  });

  it("a service moved from node2 to node3 is removed there and started here", async () => {
    const moved: Services = { ...initial, comfyui: { ...initial.comfyui, nodes: ["node3"] } };
    const steps = await converge(moved);
    expect(steps.map((s) => s.name)).toContain("node2-comfyui-container");
    expect(steps.find((s) => s.name === "node2-comfyui-container")?.stdout).toContain("deleted");
    expect(await onNode("node2", "docker ps -a --format '{{.Names}}' | grep -c modelshare || true")).toBe("0\n");
    expect(await onNode("node3", "docker ps --format '{{.Names}}' | sort")).toBe("modelshare-comfyui\nmodelshare-fooocus\n");
    expect(await inContainer("node3", "comfyui", "cat /outputs/img_0001.png")).toBe("png-bytes\n");
    const again = changes(await converge(moved));
    for (const [name, changed] of Object.entries(again)) expect(changed, name).toBe(0);
  });

  it("destroy removes the containers and keeps every byte they wrote", async () => {
    const before = await checksums();
    const moved: Services = { ...initial, comfyui: { ...initial.comfyui, nodes: ["node3"] } };
    await run(await declared(moved), { destroy: true });
    expect(await onNode("node3", "docker ps -a --format '{{.Names}}' | grep -c modelshare || true")).toBe("0\n");
    expect(
      await onNode("node3", "test ! -e /etc/systemd/system/docker.service.d/modelshare.conf && test ! -e /etc/modelshare && systemctl is-active docker"),
    ).toBe("active\n");
    expect(await onNode("node1", "test ! -e /etc/modelshare/env && sed -n 2p /srv/cw/projects/spring/metadata.json")).toBe('  "id": "spring",\n');
    expect(await checksums()).toBe(before);
    expect(before).toContain("storage-user/output/ComfyUI/img_0001.png");
  });
});

/**
 * Issue 17, class 7: node1 (storage and worker, no NFS needed) runs ComfyUI bound to its lab
 * address with allowFrom node3, and Fooocus on loopback. ComfyUI answers node3 and no one else
 * (node2, the lab host); Fooocus answers node1 itself only. The allow list is an iptables chain
 * in DOCKER-USER, written again before docker starts. The containers' command is a sleep loop:
 * each test starts busybox httpd in them.
 */
describe("service ports: the bind address and the allow list, on the node", () => {
  const exposed: Services = {
    comfyui: { enabled: true, image: IMAGE, pull: "never", nodes: ["node1"], bind: "node", allowFrom: ["10.77.0.13"] },
    fooocus: { enabled: true, image: IMAGE, pull: "never", nodes: ["node1"] },
  };
  const exposedStack = () =>
    labStack((s) => {
      s["modelshare:nodes"][0].roles = [...s["modelshare:nodes"][0].roles, "worker"];
      s["modelshare:services"] = exposed;
    });
  const site = () => declare({ stack: "lab", ...exposedStack() }, () => new Site("site", loadSite()));
  const exposedSite = () => {
    const { config, secretKeys } = exposedStack();
    return siteFromConfig(config, (k) => secretKeys.includes(k));
  };
  // Served from /workflows, the one folder the container (uid 1000) can write that is its own.
  const serve = async (service: string, port: number) =>
    expect(
      await inContainer("node1", service, `echo hello-${service} > /workflows/index-${service}.html && httpd -p ${port} -h /workflows && echo serving`),
    ).toBe("serving\n");
  /** From a node: the page, or "dropped" (no answer in 3 s), or "refused". */
  const fetchFrom = (node: string, address: string, port: number) =>
    onNode(
      node,
      `timeout 3 bash -c 'exec 3<>/dev/tcp/${address}/${port} && printf "GET /index-${port === 8188 ? "comfyui" : "fooocus"}.html HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3' 2>/dev/null | tail -1; r=\${PIPESTATUS[0]}; [ "$r" = 124 ] && echo dropped; [ "$r" = 1 ] && echo refused; true`,
    );

  beforeAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}; if command -v docker >/dev/null; then docker rm -f modelshare-comfyui modelshare-fooocus; fi >/dev/null 2>&1; true`);
  });
  afterAll(async () => {
    await onNode("node1", `rm -rf ${ROOT}`);
  });

  it("node1's port answers node3 only; its loopback port answers node1 itself only; a second converge changes nothing", async () => {
    // Docker and the image first (a fresh lab), then the containers.
    await run(await site()).catch(() => undefined);
    if (!(await onNode("node1", `docker image inspect ${IMAGE} >/dev/null 2>&1 && echo yes || true`)).includes("yes"))
      await importLabImage("node1", labImageTar());
    const steps = await run(await site());
    expect(steps.find((s) => s.name === "node1-docker-converge")?.stdout).toContain("changed: wrote the iptables chain MODELSHARE-SERVICES");
    expect(await onNode("node1", "docker port modelshare-comfyui; docker port modelshare-fooocus")).toBe(
      "8188/tcp -> 10.77.0.11:8188\n7865/tcp -> 127.0.0.1:7865\n",
    );
    await serve("comfyui", 8188);
    await serve("fooocus", 7865);
    expect(await fetchFrom("node3", "10.77.0.11", 8188)).toBe("hello-comfyui\n");
    expect(await fetchFrom("node2", "10.77.0.11", 8188)).toBe("dropped\n");
    const host = spawnSync("bash", ["-c", "timeout 3 bash -c 'exec 3<>/dev/tcp/10.77.0.11/8188' 2>/dev/null; echo $?"], { encoding: "utf8" }).stdout;
    expect(host).toBe("124\n");
    expect(await fetchFrom("node1", "127.0.0.1", 7865)).toBe("hello-fooocus\n");
    expect(await fetchFrom("node2", "10.77.0.11", 7865)).toBe("refused\n");
    // What the node holds, as iptables prints it: the rendered lines exactly (so converge is idempotent).
    expect(await onNode("node1", "iptables -S MODELSHARE-SERVICES; iptables -S DOCKER-USER | head -2")).toBe(
      [
        "-N MODELSHARE-SERVICES",
        "-A MODELSHARE-SERVICES -p tcp -m conntrack --ctstate NEW --ctorigsrc 10.77.0.13 --ctorigdst 10.77.0.11 --ctorigdstport 8188 -j RETURN",
        "-A MODELSHARE-SERVICES -p tcp -m conntrack --ctstate NEW --ctorigdst 10.77.0.11 --ctorigdstport 8188 -j DROP",
        "-A MODELSHARE-SERVICES -p tcp -m conntrack --ctstate NEW --ctorigdst 127.0.0.1 --ctorigdstport 7865 -j DROP",
        "-N DOCKER-USER",
        "-A DOCKER-USER -j MODELSHARE-SERVICES",
        "",
      ].join("\n"),
    );
    const again = changes(await run(await site()));
    for (const [name, changed] of Object.entries(again)) expect(changed, name).toBe(0);
    // The check of the site just converged: the chain and both containers as declared, nothing else.
    const check = await checkConverged(exposedSite());
    expect(check.findings, check.text).toEqual([]);
    expect(check.checked).toEqual(check.planned);
    expect(check.planned.node1).toEqual(expect.arrayContaining(["node1-docker", "node1-comfyui-container", "node1-fooocus-container"]));
  }, 900_000); // a node without docker.io installs it under emulation

  it("with the kernel's tables empty (as after a reboot), docker's start writes the chain before its containers run again", async () => {
    await onNode(
      "node1",
      "systemctl stop docker docker.socket && iptables -D DOCKER-USER -j MODELSHARE-SERVICES && iptables -F MODELSHARE-SERVICES && iptables -X MODELSHARE-SERVICES && systemctl start docker",
    );
    expect(
      await onNode(
        "node1",
        "iptables -S MODELSHARE-SERVICES | wc -l; iptables -S DOCKER-USER | sed -n 2p; docker inspect -f '{{.State.Running}}' modelshare-comfyui",
      ),
    ).toBe("4\n-A DOCKER-USER -j MODELSHARE-SERVICES\ntrue\n");
    await serve("comfyui", 8188);
    expect(await fetchFrom("node3", "10.77.0.11", 8188)).toBe("hello-comfyui\n");
    expect(await fetchFrom("node2", "10.77.0.11", 8188)).toBe("dropped\n");
  });

  it("destroy removes the containers, the chain, its jump and drop-in, and the provider's SSH files on this machine", async () => {
    // Written where this run can (XDG_RUNTIME_DIR on tmpfs, else /dev/shm), never on a disk.
    const keys = spawnSync(
      "bash",
      [
        "-c",
        'ls -d /dev/shm/modelshare-ssh-*/modelshare-lab/node1.key "${XDG_RUNTIME_DIR:-/nonexistent}"/modelshare-ssh/modelshare-lab/node1.key 2>/dev/null; stat -f -c %T /dev/shm',
      ],
      { encoding: "utf8" },
    )
      .stdout.trim()
      .split("\n");
    expect(keys).toHaveLength(2);
    expect(keys[1]).toBe("tmpfs");
    await run(await site(), { destroy: true });
    expect(spawnSync("ls", [keys[0]]).status).not.toBe(0);
    expect(
      await onNode(
        "node1",
        "docker ps -a --format '{{.Names}}' | grep -c modelshare || true; iptables -n -L MODELSHARE-SERVICES >/dev/null 2>&1 && echo chain; iptables -S DOCKER-USER | grep -c MODELSHARE || true; ls /etc/systemd/system/docker.service.d 2>/dev/null | wc -l",
      ),
    ).toBe("0\n0\n0\n");
  });
});
