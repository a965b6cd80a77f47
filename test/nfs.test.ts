import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as command from "@pulumi/command";
import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import {
  mountCommand,
  mountsOf,
  renderReadAheadConf,
  mountUnitName,
  renderGaneshaExports,
  renderKernelExports,
  renderMountUnit,
} from "../components/nfs/exports";
import { renderNfsMount } from "../components/nfs/mount";
import { renderNfsServer } from "../components/nfs/server";
import { call } from "../components/shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../components/shell/script";
import { planSite } from "../components/plan";
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { run } from "./harness/converge";
import { declare, type Declared } from "./harness/declare";
import { runProgram, tempRoot } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";
import { flatConfig, PRIVATE_KEY, seedsWithNfs } from "./fixtures/site";

/** The seeds' site with NFS on: storage 192.168.0.6 exports, gpu1 (192.168.0.21) and gpu2 (gpu2.lan) mount. */
function seeds(nfs: Record<string, unknown> = {}): any {
  const site = seedsWithNfs();
  return { ...site, nfs: { ...site.nfs, ...nfs } };
}
const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });
const problems = (mutate: (site: any) => void) => problemsOf(seeds, mutate);

describe("modelshare:nfs", () => {
  it("fills in the documented defaults, and the clients are the workers' hosts plus what the admin adds", () => {
    const site = parse(seeds({ clients: ["192.168.0.0/24"] }));
    expect(site.nfs).toEqual({
      enabled: true,
      server: "kernel",
      clients: ["192.168.0.0/24"],
      allowAnyClient: false,
      mountPoint: "/mnt/modelshare",
      rootSquash: true,
      modelsReadOnly: false,
      version: "4.2",
      mountOptions: [],
      readAheadKiB: 15360,
      fsid: 4711,
      cache: { enabled: false, dir: "/var/cache/modelshare", freePercent: { run: 10, cull: 7, stop: 3 } },
    });
    const plan = planSite(site);
    const server = plan.find((p) => p.kind === "nfs-server");
    // Who may mount: the workers' hosts, then nfs.clients, in that order.
    expect(server?.programs[0].text).toContain(" 192.168.0.21(rw,sync,");
    expect(server?.programs[0].text).toMatch(/192\.168\.0\.21\(.*\) gpu2\.lan\(.*\) 192\.168\.0\.0\/24\(/);
    expect(plan.filter((p) => p.kind === "nfs-mount").map((p) => p.name)).toEqual(["gpu1-nfs-mount", "gpu2-nfs-mount"]);
  });

  it("a storage node that is also a worker mounts nothing: it has the files", () => {
    const raw = seeds();
    raw.nodes[0].roles.push("worker");
    expect(
      planSite(parse(raw))
        .filter((p) => p.kind === "nfs-mount")
        .map((p) => p.node.name),
    ).toEqual(["gpu1", "gpu2"]);
  });

  // prettier-ignore
  const rejected: Rejected[] = [
    ["a client network that does not parse", (s) => { s.nfs.clients = ["192.168.0/24"]; }, "nfs.clients[0]", /not an IP address or network/],
    ["a client network with host bits set", (s) => { s.nfs.clients = ["10.0.0.5/8"]; }, "nfs.clients[0]", /host bits set; the network is 10\.0\.0\.0\/8/],
    ["every address without the opt-in", (s) => { s.nfs.clients = ["0.0.0.0/0"]; }, "nfs.clients[0]", /allowAnyClient/],
    ["* without the opt-in", (s) => { s.nfs.clients = ["*"]; }, "nfs.clients[0]", /allowAnyClient/],
    ["a mount point in a system path", (s) => { s.nfs.mountPoint = "/usr/models"; }, "nfs.mountPoint", /system path \/usr/],
    ["a mount point inside the storage root", (s) => { s.nfs.mountPoint = "/vol/service/cw/mnt"; }, "nfs.mountPoint", /overlaps storage\.root/],
    ["a mount point holding the storage root", (s) => { s.nfs.mountPoint = "/vol/service"; }, "nfs.mountPoint", /overlaps storage\.root/],
    ["a mount point with a space", (s) => { s.nfs.mountPoint = "/mnt/model share"; }, "nfs.mountPoint", /no spaces/],
    ["a storage root with a space", (s) => { s.storage.root = "/vol/my models"; }, "storage.root", /exported over NFS.*no spaces/],
    ["a mount option outside the supported set", (s) => { s.nfs.mountOptions = ["soft"]; }, "nfs.mountOptions[0]", /not a supported option; use noatime/],
    ["a numeric option without its number", (s) => { s.nfs.mountOptions = ["nconnect"]; }, "nfs.mountOptions[0]", /not a supported option/],
    ["an option smuggling another", (s) => { s.nfs.mountOptions = ["rsize=1048576,soft"]; }, "nfs.mountOptions[0]", /not a supported option/],
    ["a readahead the kernel would round", (s) => { s.nfs.readAheadKiB = 1000; }, "nfs.readAheadKiB", /multiple of 64 from 128 to 1048576 KiB/],
    ["a readahead below the kernel's own", (s) => { s.nfs.readAheadKiB = 64; }, "nfs.readAheadKiB", /must be 0 \(set none\) or a multiple of 64/],
    ["a readahead in MiB", (s) => { s.nfs.readAheadKiB = "15M"; }, "nfs.readAheadKiB", /whole number of KiB/],
    ["an unknown server", (s) => { s.nfs.server = "userspace"; }, "nfs.server", /kernel or ganesha/],
    ["an unquoted version", (s) => { s.nfs.version = 4.2; }, "nfs.version", /quoted/],
    ["NFS on and no nfs-server node", (s) => { s.nodes[0].roles = ["storage", "smb"]; }, "nfs.enabled", /no node has the nfs-server role/],
    ["nfs-server off the storage node", (s) => { s.nodes[1].roles = ["worker", "nfs-server"]; }, "nodes[1].roles", /must be on the storage node/],
    ["a worker on localhost", (s) => { s.nodes[1].host = "localhost"; delete s.nodes[1].hostKey; }, "nfs.enabled", /worker gpu1's host is localhost/],
    ["an unknown key", (s) => { s.nfs.noRootSquash = true; }, "nfs", /noRootSquash/],
    ["modelsReadOnly with an unmanaged owner", (s) => { s.nfs.modelsReadOnly = true; s.storage.owner = "unmanaged"; }, "nfs.modelsReadOnly", /needs storage\.owner: \{uid, gid\}/],
  ];
  it.each(rejected)("rejects %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problems(mutate), key, says);
  });
});

describe("what modelshare writes for NFS", () => {
  it("the kernel exports: the root to the clients only, rw, sync, no_subtree_check, root_squash, an explicit fsid", () => {
    const site = parse(seeds());
    expect(renderKernelExports(site.nfs, site.storage, ["192.168.0.21", "gpu2.lan"]).split("\n").slice(1)).toEqual([
      "/vol/service/cw 192.168.0.21(rw,sync,no_subtree_check,root_squash,fsid=4711,sec=sys) gpu2.lan(rw,sync,no_subtree_check,root_squash,fsid=4711,sec=sys)",
    ]);
    const ro = parse(seeds({ modelsReadOnly: true, rootSquash: false }));
    expect(renderKernelExports(ro.nfs, ro.storage, ["10.0.0.0/8"]).split("\n").slice(1)).toEqual([
      "/vol/service/cw 10.0.0.0/8(rw,sync,no_subtree_check,no_root_squash,fsid=4711,sec=sys)",
      "/vol/service/cw/storage-models/models 10.0.0.0/8(ro,sync,no_subtree_check,no_root_squash,fsid=4712,sec=sys)",
    ]);
  });

  it("ganesha's exports: NFSv4 over TCP, the clients only, root squashed", () => {
    const site = parse(seeds({ server: "ganesha" }));
    const conf = renderGaneshaExports(site.nfs, site.storage, ["192.168.0.21"]);
    for (const line of [
      'Path = "/vol/service/cw";',
      "Protocols = 4;",
      "Squash = Root_Squash;",
      "Filesystem_Id = 4711.4711;",
      "Access_Type = None;",
      "CLIENT { Clients = 192.168.0.21; Access_Type = RW; }",
      "FSAL { Name = VFS; }",
    ]) {
      expect(conf).toContain(line);
    }
  });

  it("the workers' mount units: hard, NFS 4.2, after the network; the read-only store mounted inside the root", () => {
    const site = parse(seeds({ modelsReadOnly: true, mountOptions: ["noatime", "nconnect=4"] }));
    const mounts = mountsOf(site.nfs, site.storage, "192.168.0.6");
    expect(mounts).toEqual([
      { where: "/mnt/modelshare", what: "192.168.0.6:/vol/service/cw", options: "nfsvers=4.2,hard,rw,_netdev,noatime,nconnect=4", cached: false },
      {
        where: "/mnt/modelshare/storage-models/models",
        what: "192.168.0.6:/vol/service/cw/storage-models/models",
        options: "nfsvers=4.2,hard,ro,_netdev,noatime,nconnect=4",
        cached: false,
      },
    ]);
    expect(renderMountUnit(mounts[1]).split("\n")).toEqual([
      "# modelshare: an NFS mount of the storage; rewritten by every converge, removed when no longer configured and on destroy.",
      "[Unit]",
      "Description=modelshare: the storage node's files (192.168.0.6:/vol/service/cw/storage-models/models)",
      "Wants=network-online.target",
      "After=network-online.target",
      "",
      "[Mount]",
      "What=192.168.0.6:/vol/service/cw/storage-models/models",
      "Where=/mnt/modelshare/storage-models/models",
      "Type=nfs4",
      "Options=nfsvers=4.2,hard,ro,_netdev,noatime,nconnect=4",
      "TimeoutSec=30",
      "",
      "[Install]",
      "WantedBy=remote-fs.target",
    ]);
    expect(mountsOf(site.nfs, site.storage, "fd00::6")[0].what).toBe("[fd00::6]:/vol/service/cw");
    expect(mountCommand(site.nfs, site.storage, "192.168.0.6")).toBe("sudo mount -t nfs4 -o nfsvers=4.2,hard 192.168.0.6:/vol/service/cw /mnt/modelshare");
  });

  it("the readahead setting: nfs.conf(5)'s [nfsrahead] for NFSv4 mounts, under modelshare's tag", () => {
    expect(renderReadAheadConf(15360).split("\n")).toEqual([
      "# modelshare (nfs.readAheadKiB): the readahead of this worker's NFSv4 mounts; rewritten by every converge, removed on destroy.",
      "[nfsrahead]",
      "nfs4=15360",
    ]);
  });

  it("names each mount unit as systemd-escape --path does", () => {
    const cases: Array<[string, string]> = [
      ["/mnt/modelshare", "mnt-modelshare.mount"],
      ["/mnt/model-share/storage-models/models", "mnt-model\\x2dshare-storage\\x2dmodels-models.mount"],
      ["/srv/.hidden/a@b", "srv-.hidden-a\\x40b.mount"],
    ];
    for (const [path, name] of cases) expect(mountUnitName(path), path).toBe(name);
    const escape = spawnSync("systemd-escape", ["--path", "--suffix=mount", ...cases.map(([p]) => p)], { encoding: "utf8" });
    if (!escape.error) expect(escape.stdout.trim().split(/\s+/)).toEqual(cases.map(([, n]) => n));
  });

  it("the programs: each exported path checked, then the exports; the marker by root or the owner; the mount: stale units first, then root, then the store; shellcheck-clean", () => {
    const site = parse(seeds({ modelsReadOnly: true }));
    const server = renderNfsServer(site.nfs, site.storage, ["192.168.0.21"], "192.168.0.6");
    const ganesha = renderNfsServer({ ...site.nfs, server: "ganesha" }, site.storage, ["192.168.0.21"], "192.168.0.6");
    const mount = renderNfsMount(site.nfs, site.storage, "192.168.0.6");
    const marker = "'/vol/service/cw/.modelshare-export' 'modelshare export 192.168.0.6:/vol/service/cw'";
    expect(server).toContain(`\nconverge_owner() {\n  nfs_owner_marker ${marker}\n`);
    expect(server).toContain("\n  nfs_export_path '/vol/service/cw'\n  nfs_export_path '/vol/service/cw/storage-models/models'\n  nfs_ganesha_unexport\n");
    expect(server).toContain(
      `\n  ${call("nfs_kernel_exports", renderKernelExports(site.nfs, site.storage, ["192.168.0.21"]), "/vol/service/cw", "/vol/service/cw/storage-models/models")}\n  nfs_root_marker ${marker}\n  :\n}`,
    );
    const root = "'mnt-modelshare.mount'";
    const store = "'mnt-modelshare-storage\\x2dmodels-models.mount'";
    const [rootUnit, storeUnit] = mountsOf(site.nfs, site.storage, "192.168.0.6").map(renderMountUnit);
    expect(mount).toContain(
      [
        "\nconverge_privileged() {",
        "  ensure_packages 'nfs-common'",
        `  ${call("nfs_readahead_conf", renderReadAheadConf(15360))}`,
        `  nfs_stale_units ${root} ${store}`,
        `  ${call("nfs_mount", "/mnt/modelshare", "192.168.0.6:/vol/service/cw", "mnt-modelshare.mount", rootUnit, "modelshare export 192.168.0.6:/vol/service/cw")}`,
        `  ${call("nfs_models_mount", "/mnt/modelshare/storage-models/models", "192.168.0.6:/vol/service/cw/storage-models/models", "mnt-modelshare-storage\\x2dmodels-models.mount", storeUnit, "/mnt/modelshare")}`,
        "  nfs_readahead '15360' '/mnt/modelshare' '/mnt/modelshare/storage-models/models'",
        "  :",
        "}",
      ].join("\n"),
    );
    expect(mount).toContain("\nowner_steps=no\n");
    expect(mount).toContain(
      `\nremove_privileged() {\n  nfs_stale_units\n  nfs_unmounted '/mnt/modelshare/storage-models/models' ${store}\n  nfs_unmounted '/mnt/modelshare' ${root}\n  nfs_readahead_conf\n`,
    );
    expect(shellcheck([server, ganesha, mount])).toBe("");
  });
});

describe("the marker a worker reads", () => {
  // On a worker, a link planted in the export resolves on the worker itself; an attacker with
  // the owner's uid points the marker at a root-only file holding the expected text.
  it("is read as the storage owner: a marker planted as a link to a root-only file is not believed", () => {
    const mp = join(dirname(tempRoot()), "mnt");
    mkdirSync(mp);
    const secret = join(dirname(mp), "root-only");
    writeFileSync(secret, "modelshare export x:/srv/cw\n");
    chmodSync(secret, 0o600);
    const state = () =>
      runProgram(
        renderProgram({
          title: "marker",
          libs: [SYSTEM, shellLib("components/nfs", "mount")],
          storage: { root: "/nonexistent", owner: { uid: 1000, gid: 1000 } },
          converge: { privileged: [`note "$(${call("nfs_marker_state", mp, "modelshare export x:/srv/cw")})"`] },
        }),
      ).stdout.split("\n")[0];
    symlinkSync(secret, join(mp, ".modelshare-export"));
    expect(state()).toBe("other");
    spawnSync("rm", [join(mp, ".modelshare-export")]);
    writeFileSync(join(mp, ".modelshare-export"), "modelshare export x:/srv/cw\n");
    expect(state()).toBe("ok");
  });
});

const byName = (rs: Declared[], name: string) => rs.find((r) => r.name === name) ?? expect.fail(`no ${name} among ${rs.map((r) => r.name).join(", ")}`);

describe("NFS under mocks", () => {
  const config = () => {
    return flatConfig(seeds(), { sshKey: PRIVATE_KEY });
  };

  it("the export after the layout and links, each worker's mount after the export, and the outputs", async () => {
    let outputs: Record<string, unknown> = {};
    const rs = await declare({ stack: "seeds", config: config(), secretKeys: ["modelshare:sshKey"] }, async () => {
      const site = new Site("site", loadSite());
      const nfs = site.nfs!;
      outputs = await new Promise((resolve) => {
        (nfs.export as any).apply((e: string) =>
          (nfs.mountCommand as any).apply((c: string) =>
            (nfs.mountPoints as any).apply((m: unknown) => resolve({ export: e, mountCommand: c, mountPoints: m })),
          ),
        );
      });
    });
    const exportCmd = byName(rs, "storage-nfs-export-converge");
    expect(byName(rs, "storage-nfs-export").dependencies).toContain(byName(rs, "storage-layout-converge").urn);
    for (const w of ["gpu1", "gpu2"]) {
      expect(byName(rs, `${w}-nfs-mount`).dependencies).toContain(exportCmd.urn);
      expect(byName(rs, `${w}-nfs-mount-converge`).inputs.delete).toBe("bash -s remove");
    }
    expect(outputs).toEqual({
      export: "192.168.0.6:/vol/service/cw",
      mountCommand: "sudo mount -t nfs4 -o nfsvers=4.2,hard 192.168.0.6:/vol/service/cw /mnt/modelshare",
      mountPoints: { gpu1: "/mnt/modelshare", gpu2: "/mnt/modelshare" },
    });
  });
});

describe("the converge harness", () => {
  it("runs independent resources at once and a dependent one after them, as the engine does", async () => {
    const rs = await declare({ stack: "harness", config: {} }, () => {
      const a = new command.local.Command("a", { create: "echo changed=0" });
      const b = new command.local.Command("b", { create: "echo changed=0" });
      new command.local.Command("c", { create: "echo changed=0" }, { dependsOn: [a, b] });
    });
    const steps = Object.fromEntries((await run(rs)).map((s) => [s.name, s]));
    const [a, b, c] = [steps.a, steps.b, steps.c];
    expect(Math.max(a.began, b.began)).toBeLessThan(Math.min(a.ended, b.ended));
    expect(c.began).toBeGreaterThan(Math.max(a.ended, b.ended));
  });

  it("a failure stops what has not started and names the resource", async () => {
    const rs = await declare({ stack: "harness", config: {} }, () => {
      const a = new command.local.Command("a", { create: "echo broken >&2; exit 3" });
      new command.local.Command("b", { create: "echo changed=0" }, { dependsOn: [a] });
    });
    await expect(run(rs)).rejects.toThrow(/^a \(on localhost\): exited 3: broken$/);
  });
});
