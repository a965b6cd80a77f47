import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { coversEveryone, isEveryone, parseNetwork } from "../components/node/netRules";
import { parseUser } from "../components/services/userRules";
import { COMFYUI_IMAGE, gpu1Node, gpu2Node, SEEDS_ROOT, storageNode } from "./fixtures/site";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";

// Issue 17, class 4: rules decide on what a value means (parsed numbers, resolved paths), never
// on how it is spelled. Every case is refused before any node is touched, naming the key.

/** A site using every section: SMB and NFS on the storage node, ComfyUI on gpu1, installers. */
function site(): any {
  return {
    nodes: [storageNode({ roles: ["storage", "smb", "nfs-server", "worker"] }), gpu1Node(), gpu2Node({ port: 2222 })],
    storage: { root: SEEDS_ROOT },
    smb: { enabled: true, users: [{ name: "artist", passwordKey: "smbPasswordArtist" }], hostsAllow: ["192.168.0.0/24"] },
    nfs: { enabled: true, clients: ["192.168.1.0/24"] },
    services: { comfyui: { enabled: true, image: COMFYUI_IMAGE, nodes: ["gpu1", "gpu2"] } },
    ollama: { nodes: ["gpu1"] },
    comfyui: { installs: [{ node: "gpu1", path: "/opt/ComfyUI", service: "comfyui.service" }] },
  };
}
const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });
const problems = (mutate: (s: any) => void) => problemsOf(site, mutate);

const hostsAllow = (list: string[]) => (s: any) => {
  s.smb.hostsAllow = list;
};
const clients = (list: string[]) => (s: any) => {
  s.nfs.clients = list;
};
const user = (u: string) => (s: any) => {
  s.services.comfyui.user = u;
};
const port =
  (p: number, node = "gpu1") =>
  (s: any) => {
    s.services.comfyui.nodes = [node];
    s.services.comfyui.ports = [{ host: p, container: 8188 }];
  };
const host = (h: string) => (s: any) => {
  s.nodes[1].host = h;
};
const mountPoint = (m: string) => (s: any) => {
  s.nfs.mountPoint = m;
};
const smbUser = (name: string) => (s: any) => {
  s.smb.users = [{ name, passwordKey: "smbPasswordX" }];
};
const unit = (u: string) => (s: any) => {
  s.comfyui.installs[0].service = u;
};
const install = (i: Record<string, unknown>) => (s: any) => {
  s.comfyui.installs = [{ node: "gpu1", path: "/opt/ComfyUI", ...i }];
};

describe("addresses and networks are parsed", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["0.0.0.0/00 (a prefix with a leading zero)", hostsAllow(["0.0.0.0/00"]), "smb.hostsAllow[0]", /leading zero; write 0\.0\.0\.0\/0/],
    ["::0/0 without allowAnyHost", hostsAllow(["::0/0"]), "smb.hostsAllow[0]", /every address connect.*smb\.allowAnyHost: true/],
    ["0:0::/0 without allowAnyHost", hostsAllow(["0:0::/0"]), "smb.hostsAllow[0]", /smb\.allowAnyHost/],
    ["::/0 without allowAnyHost", hostsAllow(["::/0"]), "smb.hostsAllow[0]", /smb\.allowAnyHost/],
    ["0000::/0 without allowAnyHost", hostsAllow(["0000::/0"]), "smb.hostsAllow[0]", /smb\.allowAnyHost/],
    ["* without allowAnyHost", hostsAllow(["*"]), "smb.hostsAllow[0]", /smb\.allowAnyHost/],
    ["two IPv4 halves that cover everyone", hostsAllow(["0.0.0.0/1", "128.0.0.0/1"]), "smb.hostsAllow", /together covers every IPv4 or every IPv6 address.*smb\.allowAnyHost/],
    ["four IPv4 quarters that cover everyone", hostsAllow(["192.0.0.0/2", "0.0.0.0/2", "128.0.0.0/2", "64.0.0.0/2"]), "smb.hostsAllow", /together covers/],
    ["two IPv6 halves that cover everyone", hostsAllow(["::/1", "8000::/1"]), "smb.hostsAllow", /together covers/],
    ["the IPv4-mapped range (every IPv4 client of a dual-stack server)", hostsAllow(["::ffff:0:0/96"]), "smb.hostsAllow", /together covers/],
    ["an IPv4 half with the other half IPv4-mapped", hostsAllow(["0.0.0.0/1", "::ffff:128.0.0.0/97"]), "smb.hostsAllow", /together covers/],
    ["999.1.1.1", hostsAllow(["999.1.1.1"]), "smb.hostsAllow[0]", /not an IPv4 address: each of its four numbers is 0-255/],
    ["an octet with a leading zero", hostsAllow(["192.168.000.0/24"]), "smb.hostsAllow[0]", /without leading zeros/],
    ["a prefix with a leading zero", hostsAllow(["192.168.0.0/024"]), "smb.hostsAllow[0]", /write 192\.168\.0\.0\/24/],
    ["an IPv6 zone id", hostsAllow(["fe80::1%eth0"]), "smb.hostsAllow[0]", /zone id \(%eth0\)/],
    ["an IPv6 network with a zone id", hostsAllow(["fe80::%25eth0/64"]), "smb.hostsAllow[0]", /zone id/],
    ["the unspecified IPv4 address", hostsAllow(["0.0.0.0"]), "smb.hostsAllow[0]", /not a client's address/],
    ["the unspecified IPv6 address", hostsAllow(["::"]), "smb.hostsAllow[0]", /unspecified address/],
    ["the broadcast address", hostsAllow(["255.255.255.255"]), "smb.hostsAllow[0]", /broadcast/],
    ["a multicast address", hostsAllow(["224.0.0.251"]), "smb.hostsAllow[0]", /multicast/],
    ["an IPv6 multicast network", hostsAllow(["ff02::/16"]), "smb.hostsAllow[0]", /multicast/],
    ["NFS: 0.0.0.0/00", clients(["0.0.0.0/00"]), "nfs.clients[0]", /leading zero/],
    ["NFS: ::0/0 without allowAnyClient", clients(["::0/0"]), "nfs.clients[0]", /mount the storage.*nfs\.allowAnyClient: true/],
    ["NFS: two halves without allowAnyClient", clients(["0.0.0.0/1", "128.0.0.0/1"]), "nfs.clients", /together covers.*nfs\.allowAnyClient/],
    ["NFS: a zone id", clients(["fe80::1%eth0"]), "nfs.clients[0]", /zone id/],
    ["NFS: 999.1.1.1", clients(["999.1.1.1"]), "nfs.clients[0]", /not an IPv4 address/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts the neighbours: networks short of everyone, link-local networks, everyone with the opt-in", () => {
    expect(problems(hostsAllow(["10.0.0.0/8", "0.0.0.0/1", "fe80::/10", "192.168.0.20", "fd00::/8", "2001:db8::1", "::ffff:192.168.0.0/120"]))).toEqual([]);
    expect(problems(hostsAllow(["0.0.0.0/1", "128.0.0.0/2", "8000::/1"]))).toEqual([]);
    expect(problems(clients(["0.0.0.0/1", "8000::/1", "10.0.0.0/8"]))).toEqual([]);
    for (const list of [["0.0.0.0/0"], ["::/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["*"]]) {
      expect(
        problems((s) => {
          s.smb.hostsAllow = list;
          s.smb.allowAnyHost = true;
        }),
        list.join(),
      ).toEqual([]);
      expect(
        problems((s) => {
          s.nfs.clients = list;
          s.nfs.allowAnyClient = true;
        }),
        list.join(),
      ).toEqual([]);
    }
  });

  it("parses every spelling of a network to the same numbers", () => {
    const same = ["::/0", "::0/0", "0:0::/0", "0000:0000::/0", "0:0:0:0:0:0:0:0/0"].map((e) => parseNetwork(e));
    for (const n of same) expect(n).toEqual({ v4: false, bits: 0n, prefix: 0 });
    expect(parseNetwork("10.0.0.0/8")).toEqual({ v4: true, bits: 10n << 24n, prefix: 8 });
    expect(isEveryone("0.0.0.0/0")).toBe(true);
    expect(isEveryone("0.0.0.0/1")).toBe(false);
    expect(coversEveryone(["128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"])).toBe(true);
    expect(coversEveryone(["128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/3"])).toBe(false);
    expect(coversEveryone(["8000::/1", "::/2", "4000::/2"])).toBe(true);
    expect(coversEveryone(["8000::/1", "4000::/2", "2000::/3"])).toBe(false);
    // ::/1 holds ::ffff:0:0/96, where a dual-stack server sees every IPv4 client.
    expect(coversEveryone(["::/1"])).toBe(true);
    expect(coversEveryone(["::ffff:0.0.0.0/97"])).toBe(false);
  });
});

describe("uids and gids are numbers", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["00:1000 (uid 0 with a leading zero)", user("00:1000"), "services.comfyui.user", /leading zeros, which docker reads as 0:1000; write "0:1000"/],
    ["000:000", user("000:000"), "services.comfyui.user", /docker reads as 0:0/],
    ["01000:1000", user("01000:1000"), "services.comfyui.user", /write "1000:1000"/],
    ["0:0 without allowRootUser", user("0:0"), "services.comfyui.user", /root's uid or gid.*allowRootUser: true/],
    ["1000:0 (root's group) without allowRootUser", user("1000:0"), "services.comfyui.user", /root's uid or gid/],
    ["+0:0", user("+0:0"), "services.comfyui.user", /uid:gid in numbers/],
    [" 0:0", user(" 0:0"), "services.comfyui.user", /uid:gid in numbers/],
    ["0x0:0", user("0x0:0"), "services.comfyui.user", /uid:gid in numbers/],
    ["-1:1000", user("-1:1000"), "services.comfyui.user", /uid:gid in numbers/],
    ["uid 4294967295 ((uid_t)-1)", user("4294967295:1000"), "services.comfyui.user", /above 4294967294/],
    ["a root storage owner as the default user, without allowRootUser", (s) => { s.storage.owner = { uid: 0, gid: 0, allowRoot: true }; }, "services.comfyui.user", /is unset, so the container runs as the storage owner, 0:0/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts unprivileged ids, and root with the opt-in", () => {
    expect(problems(user("1000:1000"))).toEqual([]);
    expect(problems(user("65534:65534"))).toEqual([]);
    expect(
      problems((s) => {
        s.services.comfyui.user = "0:0";
        s.services.comfyui.allowRootUser = true;
      }),
    ).toEqual([]);
    expect(parseUser("0:1000")).toEqual({ uid: 0, gid: 1000 });
  });
});

describe("ports are checked against what the node already runs", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["a service on the node's SSH port 22", port(22), "services.comfyui.ports[0].host", /22 is gpu1's SSH port \(nodes\[1\]\.port\)/],
    ["a service on a node's own SSH port 2222", port(2222, "gpu2"), "services.comfyui.ports[0].host", /gpu2's SSH port \(nodes\[2\]\.port\)/],
    ["a service on 445 on the SMB node", port(445, "storage"), "services.comfyui.ports[0].host", /SMB port.*\(smb\.enabled\)/],
    ["a service on 139 on the SMB node", port(139, "storage"), "services.comfyui.ports[0].host", /SMB port/],
    ["a service on 2049 on the NFS server", port(2049, "storage"), "services.comfyui.ports[0].host", /NFS port.*\(nfs\.enabled\)/],
    ["a service on 111 (rpcbind) on the NFS server", port(111, "storage"), "services.comfyui.ports[0].host", /NFS port/],
    ["a service on the host Ollama's 11434", port(11434), "services.comfyui.ports[0].host", /host Ollama on gpu1 \(ollama\.nodes\[0\]\)/],
    ["an SSH port that is the SMB port", (s) => { s.nodes[0].port = 445; }, "nodes[0].port", /SMB port.*choose another SSH port/],
    ["an SSH port that is the NFS port", (s) => { s.nodes[0].port = 2049; }, "nodes[0].port", /NFS port/],
    ["port 0", port(0), "services.comfyui.ports[0].host", /must be at least 1, not 0/],
    ["port 65536", port(65536), "services.comfyui.ports[0].host", /65535|too big/i],
    ["a fractional port", port(8188.5), "services.comfyui.ports[0].host", /integer|int/i],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts the neighbours: 8188, 2222 on a node whose SSH port is 22, 445 on a worker without SMB", () => {
    expect(problems(port(8188))).toEqual([]);
    expect(problems(port(2222, "gpu1"))).toEqual([]);
    expect(problems(port(445, "gpu1"))).toEqual([]);
    expect(
      problems((s) => {
        s.smb.enabled = false;
        port(445, "storage")(s);
      }),
    ).toEqual([]);
  });
});

describe("hosts are addresses a node can have", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["0.0.0.0", host("0.0.0.0"), "nodes[1].host", /0\.x means "this host"/],
    ["::", host("::"), "nodes[1].host", /unspecified address/],
    ["::ffff:0.0.0.0", host("::ffff:0.0.0.0"), "nodes[1].host", /this host/],
    ["the broadcast address", host("255.255.255.255"), "nodes[1].host", /broadcast/],
    ["a multicast address", host("239.1.2.3"), "nodes[1].host", /multicast/],
    ["an IPv6 multicast address", host("ff02::1"), "nodes[1].host", /multicast/],
    ["the reserved 240/4", host("240.0.0.1"), "nodes[1].host", /reserved/],
    ["999.1.1.1", host("999.1.1.1"), "nodes[1].host", /four numbers 0-255/],
    ["an octet with a leading zero", host("192.168.0.021"), "nodes[1].host", /without leading zeros/],
    ["a hex shorthand of an address", host("0x7f.1"), "nodes[1].host", /shorthand IPv4 address/],
    ["a decimal shorthand of an address", host("3232235541"), "nodes[1].host", /shorthand IPv4 address/],
    ["a name whose last label is a number", host("gpu.123"), "nodes[1].host", /shorthand IPv4 address/],
    ["an IPv6 zone id", host("fe80::1%eth0"), "nodes[1].host", /zone id/],
    ["an IPv6 link-local address", host("fe80::21"), "nodes[1].host", /link-local/],
    ["an IPv4-compatible IPv6 address", host("::192.168.0.21"), "nodes[1].host", /IPv4-compatible/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts names, unicast addresses, and localhost (or 127.x) as the local node", () => {
    for (const h of ["gpu1.lan", "10.0.0.21", "fd00::21", "2001:db8::21", "g-1.example.com", "deadbeef.lan"]) expect(problems(host(h)), h).toEqual([]);
    for (const h of ["localhost", "127.0.0.1", "127.0.1.1", "::1"]) {
      expect(() => parse({ nodes: [{ name: "here", host: h, roles: ["storage"] }], storage: { root: "~/models" } }), h).not.toThrow();
    }
  });
});

describe("system paths", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["a mount point under /var/run (a link to /run)", mountPoint("/var/run/modelshare"), "nfs.mountPoint", /inside the system path \/var\/run/],
    ["a mount point under /run", mountPoint("/run/modelshare"), "nfs.mountPoint", /system path \/run/],
    ["a mount point under /var/lock", mountPoint("/var/lock/m"), "nfs.mountPoint", /system path \/var\/lock/],
    ["a mount point under /proc", mountPoint("/proc/m"), "nfs.mountPoint", /system path \/proc/],
    ["a mount point under /sys", mountPoint("/sys/m"), "nfs.mountPoint", /system path \/sys/],
    ["a mount point under /lib", mountPoint("/lib/m"), "nfs.mountPoint", /system path \/lib/],
    ["a mount point under /snap", mountPoint("/snap/m"), "nfs.mountPoint", /system path \/snap/],
    ["a mount point under /tmp", mountPoint("/tmp/modelshare"), "nfs.mountPoint", /inside \/tmp, which every local user may write/],
    ["a mount point under /var/tmp", mountPoint("/var/tmp/modelshare"), "nfs.mountPoint", /inside \/var\/tmp/],
    ["a mount point under /dev/shm", mountPoint("/dev/shm/m"), "nfs.mountPoint", /system path \/dev/],
    ["a storage root under /var/run", (s) => { s.storage.root = "/var/run/models"; }, "storage.root", /system path \/var\/run/],
    ["a storage root holding Samba's placeholder text", (s) => { s.storage.root = "/vol/@owner_user@/cw"; }, "storage.root", /holds @/],
    ["a storage root ending in a space (Samba drops it)", (s) => { s.storage.root = "/vol/cw "; }, "storage.root", /ends in a space/],
    ["a model store with @ served by the models share", (s) => { s.smb.modelsShare = "models"; s.storage.models = "a@b/models"; }, "storage.models", /holds @/],
    ["a container path under /var/run", (s) => { s.services.comfyui.paths = { models: "/var/run/models" }; }, "services.comfyui.paths.models", /system folder \/var\/run/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts the neighbours: /mnt/models, /srv/nfs/x; @ in a root when SMB is off; a root under /tmp (tests, the dev stack)", () => {
    expect(problems(mountPoint("/mnt/models"))).toEqual([]);
    expect(problems(mountPoint("/srv/nfs/models"))).toEqual([]);
    expect(
      problems((s) => {
        s.smb.enabled = false;
        s.storage.root = "/vol/a@b";
      }),
    ).toEqual([]);
    expect(
      problems((s) => {
        s.storage.root = "/tmp/modelshare-x";
      }),
    ).toEqual([]);
  });
});

describe("SMB users are people or dedicated accounts", () => {
  // prettier-ignore
  const names = ["root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "_apt", "sshd", "messagebus", "systemd-network", "systemd-timesync", "statd",
    "_rpc", "ollama", "dockremap", "containerd", "polkitd", "_chrony"];
  const rejected: Rejected[] = names.map((n) => [n, smbUser(n), "smb.users[0].name", /system account's name.*pick a person's name or a dedicated one/]);
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts a person's and a dedicated name", () => {
    for (const n of ["artist", "ada", "models-upload", "comfy_in"]) expect(problems(smbUser(n)), n).toEqual([]);
  });
});

describe("ComfyUI installs: their unit and their code", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["ssh.service", unit("ssh.service"), "comfyui.installs[0].service", /system service.*rewrites its ExecStart/],
    ["sshd.service", unit("sshd.service"), "comfyui.installs[0].service", /system service/],
    ["systemd-journald.service", unit("systemd-journald.service"), "comfyui.installs[0].service", /system service/],
    ["getty@tty1.service", unit("getty@tty1.service"), "comfyui.installs[0].service", /system service/],
    ["docker.service", unit("docker.service"), "comfyui.installs[0].service", /system service/],
    ["containerd.service", unit("containerd.service"), "comfyui.installs[0].service", /system service/],
    ["smbd.service", unit("smbd.service"), "comfyui.installs[0].service", /system service/],
    ["samba-ad-dc.service", unit("samba-ad-dc.service"), "comfyui.installs[0].service", /system service/],
    ["nfs-server.service", unit("nfs-server.service"), "comfyui.installs[0].service", /system service/],
    ["rpcbind.service", unit("rpcbind.service"), "comfyui.installs[0].service", /system service/],
    ["dbus.service", unit("dbus.service"), "comfyui.installs[0].service", /system service/],
    ["cron.service", unit("cron.service"), "comfyui.installs[0].service", /system service/],
    ["networking.service", unit("networking.service"), "comfyui.installs[0].service", /system service/],
    ["ollama.service (the ollama installer's)", unit("ollama.service"), "comfyui.installs[0].service", /another installer owns/],
    ["modelshare's own unit", unit("modelshare-smb-recycle.service"), "comfyui.installs[0].service", /modelshare/],
    ["a unit name starting with -", unit("-x.service"), "comfyui.installs[0].service", /systemd service name/],
    ["a unit name with a space", unit("comfy ui.service"), "comfyui.installs[0].service", /systemd service name/],
    ["a unit name with ..", unit("a..b.service"), "comfyui.installs[0].service", /systemd service name/],
    ["a checkout inside the storage root on the storage node", (s) => { s.comfyui.installs = [{ node: "storage", path: "/vol/service/cw/storage-user/ComfyUI" }]; }, "comfyui.installs[0].path", /inside \/vol\/service\/cw \(storage\.root\).*code must live apart/],
    ["a checkout inside the NFS mount on a worker", install({ path: "/mnt/modelshare/ComfyUI" }), "comfyui.installs[0].path", /inside \/mnt\/modelshare \(nfs\.mountPoint\)/],
    ["a checkout holding the NFS mount", install({ path: "/mnt" }), "comfyui.installs[0].path", /holds \/mnt\/modelshare/],
    ["a python inside the NFS mount", install({ python: "/mnt/modelshare/storage-user/venv/bin/python" }), "comfyui.installs[0].python", /inside \/mnt\/modelshare/],
    ["a checkout at /", install({ path: "/" }), "comfyui.installs[0].path", /root folder/],
    ["a checkout under /proc", install({ path: "/proc/self/cwd" }), "comfyui.installs[0].path", /system path \/proc/],
    ["a checkout under /var/run", install({ path: "/var/run/comfy" }), "comfyui.installs[0].path", /system path \/var\/run/],
    ["two checkouts on one node naming one unit", (s) => { s.comfyui.installs.push({ node: "GPU1", path: "/opt/ComfyUI-2", service: "comfyui.service" }); }, "comfyui.installs[1].service", /already comfyui\.installs\[0\]\.service/],
    ["a checkout inside another on the same node", (s) => { s.comfyui.installs.push({ node: "gpu1", path: "/opt/ComfyUI/inner" }); }, "comfyui.installs[1].path", /one inside the other/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => expectProblem(problems(mutate), key, says));

  it("accepts the neighbours: comfyui.service, a template instance, /opt and /usr/local checkouts, the system python", () => {
    expect(problems(unit("comfyui.service"))).toEqual([]);
    expect(problems(unit("comfyui@gpu0.service"))).toEqual([]);
    expect(problems(unit("docker-comfyui.service"))).toEqual([]);
    expect(problems(install({ path: "/usr/local/ComfyUI", python: "/usr/bin/python3" }))).toEqual([]);
    expect(
      problems((s) => {
        s.comfyui.installs.push(
          { node: "gpu1", path: "/opt/ComfyUI-2", service: "comfyui-2.service" },
          { node: "storage", path: "/opt/ComfyUI", service: "comfyui.service" },
        );
      }),
    ).toEqual([]);
    // The storage root's path on a worker is not the storage there: only the mount is.
    expect(problems(install({ path: "/vol/service/cw/ComfyUI" }))).toEqual([]);
  });
});
