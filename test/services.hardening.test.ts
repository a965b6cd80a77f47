import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { planSite } from "../components/plan";
import { firewallDropIn, firewallRules } from "../components/services/firewall";
import { renderDockerHost } from "../components/services/host";
import { containerSpec, type ContainerSpec } from "../components/services/spec";
import { legacySshDir, removeLegacySshFiles, removeSshFilesCommand, sshDir, sshOpts, sshPlace, writeSshFiles } from "../components/services/sshFiles";
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { declare, type Declared } from "./harness/declare";
import { asOwner, decoy, OWNER } from "./helpers/attack";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";
import { runProgram, type Run } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";
import { COMFYUI_IMAGE as COMFY, flatConfig, gpu1Node, gpu2Node, HOST_KEY as KEY, PRIVATE_KEY, SEEDS_ROOT, storageNode } from "./fixtures/site";

/**
 * Issue 17, class 7 (exposure and leftovers) and the services part of class 3: ports listen on
 * a declared address, reachable only from the allow list; the docker provider's SSH key never
 * touches a disk and goes with the stack's docker resources; a bind source's parents are root's.
 */

/** The seeds' site with ComfyUI on both workers, each reached by address (bind: node needs one). */
function seeds(): any {
  return {
    nodes: [storageNode(), gpu1Node(), gpu2Node({ host: "192.168.0.22", port: 2222 })],
    storage: { root: SEEDS_ROOT },
    nfs: { enabled: true },
    services: { comfyui: { enabled: true, image: COMFY, nodes: ["gpu1", "gpu2"] } },
  };
}
const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });
const problems = (mutate: (site: any) => void) => problemsOf(seeds, mutate);
const open = (s: any) => {
  s.services.comfyui.bind = "node";
  s.services.comfyui.allowFrom = ["192.168.0.0/24"];
};

describe("services bind to a declared address", () => {
  // prettier-ignore
  const rejected: Rejected[] = [
    ["0.0.0.0 (every address)", (s) => { s.services.comfyui.bind = "0.0.0.0"; }, "services.comfyui.bind", /publishes on every address of the node; name one/],
    ["an address that is none", (s) => { s.services.comfyui.bind = "999.1.1.1"; }, "services.comfyui.bind", /"999\.1\.1\.1" is not an IPv4 address/],
    ["a leading zero", (s) => { s.services.comfyui.bind = "010.0.0.1"; }, "services.comfyui.bind", /is not an IPv4 address/],
    ["an IPv6 bind", (s) => { s.services.comfyui.bind = "::1"; }, "services.comfyui.bind", /is not an IPv4 address/],
    ["a multicast bind", (s) => { s.services.comfyui.bind = "224.0.0.1"; }, "services.comfyui.bind", /not a unicast address/],
    ["one node's address for two nodes", (s) => { s.services.comfyui.bind = "192.168.0.21"; s.services.comfyui.allowFrom = ["192.168.0.0/24"]; }, "services.comfyui.bind", /one node's address, but the service runs on 2 nodes; use bind: node/],
    ["bind node on a node reached by name", (s) => { open(s); s.nodes[2].host = "gpu2.lan"; }, "services.comfyui.bind", /nodes\[\]\.host of gpu2 \("gpu2\.lan"\) is not an IPv4 address/],
    ["an open bind without allowFrom", (s) => { s.services.comfyui.bind = "node"; }, "services.comfyui.allowFrom", /is empty, but bind node is reachable from the network/],
    ["allowFrom on a loopback bind", (s) => { s.services.comfyui.allowFrom = ["192.168.0.0/24"]; }, "services.comfyui.allowFrom", /bind 127\.0\.0\.1 is reachable from the node itself only/],
    ["allowFrom 0.0.0.0/0", (s) => { open(s); s.services.comfyui.allowFrom = ["0.0.0.0/0"]; }, "services.comfyui.allowFrom[0]", /every address there is/],
    ["allowFrom 0.0.0.0/00", (s) => { open(s); s.services.comfyui.allowFrom = ["0.0.0.0/00"]; }, "services.comfyui.allowFrom[0]", /leading zero/],
    ["allowFrom two /1 halves", (s) => { open(s); s.services.comfyui.allowFrom = ["0.0.0.0/1", "128.0.0.0/1"]; }, "services.comfyui.allowFrom", /together covers every IPv4 address/],
    ["allowFrom with host bits", (s) => { open(s); s.services.comfyui.allowFrom = ["192.168.0.1/24"]; }, "services.comfyui.allowFrom[0]", /host bits set; the network is 192\.168\.0\.0\/24/],
    ["allowFrom an IPv6 network", (s) => { open(s); s.services.comfyui.allowFrom = ["fd00::/8"]; }, "services.comfyui.allowFrom[0]", /is IPv6; bind is an IPv4 address/],
    ["allowFrom no address", (s) => { open(s); s.services.comfyui.allowFrom = ["192.168.0.300"]; }, "services.comfyui.allowFrom[0]", /is not an IPv4 address: each of its four numbers is 0-255/],
  ];
  it.each(rejected)("refuses %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problems(mutate), key, says);
  });

  it("accepts bind node with an allow list, and a covered-but-partial union", () => {
    expect(problems(open)).toEqual([]);
    expect(
      problems((s) => {
        open(s);
        s.services.comfyui.allowFrom = ["0.0.0.0/1", "128.0.0.0/2", "10.0.0.0/8"];
      }),
    ).toEqual([]);
  });

  it("every port is published on the bind address only: loopback by default, each node's own address with bind node", () => {
    const ports = (raw: any) => planSite(parse(raw)).flatMap((p) => (p.spec ? [[p.node.name, p.spec.ports]] : []));
    expect(ports(seeds())).toEqual([
      ["gpu1", [{ internal: 8188, external: 8188, protocol: "tcp", ip: "127.0.0.1" }]],
      ["gpu2", [{ internal: 8188, external: 8188, protocol: "tcp", ip: "127.0.0.1" }]],
    ]);
    const raw = seeds();
    open(raw);
    expect(ports(raw).map(([n, p]) => [n, (p as ContainerSpec["ports"])[0].ip])).toEqual([
      ["gpu1", "192.168.0.21"],
      ["gpu2", "192.168.0.22"],
    ]);
  });
});

/** A stand-in iptables on PATH keeping its chains as files; every call is logged. */
const FAKE_IPTABLES = `#!/bin/bash
set -u
d=$FAKE_IPT
echo "$*" >>"$d/log"
[ "$1" = -w ] && shift
op=$1 chain=\${2-}; shift 2 || true
f="$d/chain.$chain" rule="$*"
case $op in
  -N) [ ! -e "$f" ] || exit 1; : >"$f" ;;
  -F) [ -e "$f" ] || exit 1; : >"$f" ;;
  -X) [ -e "$f" ] && [ ! -s "$f" ] || exit 1; rm "$f" ;;
  -A) [ -e "$f" ] || exit 1; printf '%s\\n' "-A $chain $rule" >>"$f" ;;
  -I) [ -e "$f" ] || exit 1; { printf '%s\\n' "-A $chain $rule"; cat "$f"; } >"$f.n"; mv "$f.n" "$f" ;;
  -C) grep -qxF -- "-A $chain $rule" "$f" 2>/dev/null ;;
  -D) grep -qxF -- "-A $chain $rule" "$f" 2>/dev/null || exit 1; grep -vxF -- "-A $chain $rule" "$f" >"$f.n"; mv "$f.n" "$f" ;;
  -S) [ -e "$f" ] || exit 1; echo "-N $chain"; cat "$f" ;;
  -n) [ -e "$d/chain.$1" ] ;;
  *) exit 2 ;;
esac
`;

/** A node's docker program limited to its firewall step, with the drop-in folder in `etc`. */
function firewallProgram(containers: ContainerSpec[], etc: string): string {
  const site = parse(seeds());
  return renderDockerHost("root", containers, site.storage, [])
    .replace(/\n {2}ensure_packages 'docker\.io'\n {2}ensure_service 'docker'\n {2}docker_user 'root'\n/, "\n")
    .replace(/\n {2}docker_bind_source '[^'\n]*'/g, "")
    .replaceAll("/etc/systemd/system/docker.service.d", etc);
}
function fakeNode(): {
  env: NodeJS.ProcessEnv;
  ipt: string;
  etc: string;
  chain: () => string;
  run: (program: string, verb?: "converge" | "check" | "remove") => Run;
} {
  const bin = mkdtempSync(join(tmpdir(), "modelshare-ipt-"));
  const ipt = join(bin, "state");
  mkdirSync(ipt);
  writeFileSync(join(ipt, "chain.DOCKER-USER"), "-A DOCKER-USER -j RETURN\n");
  writeFileSync(join(bin, "iptables"), FAKE_IPTABLES, { mode: 0o755 });
  writeFileSync(join(bin, "systemctl"), '#!/bin/sh\necho "$*" >>"$FAKE_IPT/systemctl"\n', { mode: 0o755 });
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_IPT: ipt, MODELSHARE_LOCK_WAIT: "5" };
  const etc = join(bin, "docker.service.d");
  const chain = () => (existsSync(join(ipt, "chain.MODELSHARE-SERVICES")) ? readFileSync(join(ipt, "chain.MODELSHARE-SERVICES"), "utf8") : "(none)");
  return { env, ipt, etc, chain, run: (program, verb = "converge") => runProgram(program, verb, { env }) };
}

describe("the node's allow list: a chain in DOCKER-USER", () => {
  const raw = seeds();
  open(raw);
  raw.services.comfyui.allowFrom = ["192.168.0.7", "10.1.0.0/16"];
  raw.services.comfyui.ports = [
    { host: 8188, container: 8188 },
    { host: 9000, container: 9000, protocol: "udp" },
  ];
  const site = parse(raw);
  const spec = containerSpec("comfyui", site.services.comfyui, "none", site.storage, "/mnt/modelshare", "192.168.0.21");
  const loopback = containerSpec("ollama", { ...site.services.ollama, enabled: true }, "none", site.storage, "/mnt/modelshare", "192.168.0.21");
  const C = "-A MODELSHARE-SERVICES";

  it("renders exactly: the allowed sources return, every other new connection to the published address and port drops", () => {
    expect(firewallRules([spec, loopback])).toEqual([
      `${C} -p tcp -m conntrack --ctstate NEW --ctorigsrc 192.168.0.7 --ctorigdst 192.168.0.21 --ctorigdstport 8188 -j RETURN`,
      `${C} -p tcp -m conntrack --ctstate NEW --ctorigsrc 10.1.0.0/16 --ctorigdst 192.168.0.21 --ctorigdstport 8188 -j RETURN`,
      `${C} -p tcp -m conntrack --ctstate NEW --ctorigdst 192.168.0.21 --ctorigdstport 8188 -j DROP`,
      `${C} -p udp -m conntrack --ctstate NEW --ctorigsrc 192.168.0.7 --ctorigdst 192.168.0.21 --ctorigdstport 9000 -j RETURN`,
      `${C} -p udp -m conntrack --ctstate NEW --ctorigsrc 10.1.0.0/16 --ctorigdst 192.168.0.21 --ctorigdstport 9000 -j RETURN`,
      `${C} -p udp -m conntrack --ctstate NEW --ctorigdst 192.168.0.21 --ctorigdstport 9000 -j DROP`,
      // Loopback: nobody through FORWARD (docker's NAT path to 127.0.0.1 from the link).
      `${C} -p tcp -m conntrack --ctstate NEW --ctorigdst 127.0.0.1 --ctorigdstport 11434 -j DROP`,
    ]);
    expect(firewallDropIn(firewallRules([loopback]))).toBe(
      [
        "# modelshare: who may reach the service ports, in place before docker starts its containers",
        "[Service]",
        "ExecStartPre=-/usr/sbin/iptables -w -N DOCKER-USER",
        "ExecStartPre=-/usr/sbin/iptables -w -N MODELSHARE-SERVICES",
        "ExecStartPre=/usr/sbin/iptables -w -F MODELSHARE-SERVICES",
        `ExecStartPre=/usr/sbin/iptables -w ${C} -p tcp -m conntrack --ctstate NEW --ctorigdst 127.0.0.1 --ctorigdstport 11434 -j DROP`,
        "ExecStartPre=/bin/sh -c '/usr/sbin/iptables -w -C DOCKER-USER -j MODELSHARE-SERVICES 2>/dev/null || /usr/sbin/iptables -w -I DOCKER-USER -j MODELSHARE-SERVICES'",
      ].join("\n"),
    );
    expect(
      shellcheck([renderDockerHost("root", [spec, loopback], site.storage, [])])
        .split("\n")
        .filter((l) => /docker_firewall|fw_|require_bind|docker_bind/.test(l)),
    ).toEqual([]);
  });

  it("converges the chain and the jump once (second run changed=0), repairs an edited chain, reports drift in check, and remove takes all of it away", () => {
    const node = fakeNode();
    const program = firewallProgram([spec, loopback], node.etc);
    const first = node.run(program);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("changed: wrote the iptables chain MODELSHARE-SERVICES");
    expect(first.stdout).toContain("changed: DOCKER-USER jumps to MODELSHARE-SERVICES");
    expect(node.chain()).toBe(`${firewallRules([spec, loopback]).join("\n")}\n`);
    expect(readFileSync(join(node.ipt, "chain.DOCKER-USER"), "utf8")).toBe("-A DOCKER-USER -j MODELSHARE-SERVICES\n-A DOCKER-USER -j RETURN\n");
    expect(readFileSync(join(node.etc, "modelshare-firewall.conf"), "utf8")).toBe(`${firewallDropIn(firewallRules([spec, loopback]))}\n`);
    expect(readFileSync(join(node.ipt, "systemctl"), "utf8")).toBe("daemon-reload\n");
    expect(node.run(program).changed).toBe(0);
    expect(node.run(program, "check").stdout).toContain("drift=0");
    // Someone (or a firewall reload) changed the chain: check says so, converge rewrites it.
    writeFileSync(join(node.ipt, "chain.MODELSHARE-SERVICES"), `${C} -j RETURN\n`);
    expect(node.run(program, "check").stdout).toContain("drift: the iptables chain MODELSHARE-SERVICES differs from the services' allow lists");
    expect(node.run(program).changed).toBe(1);
    expect(node.chain()).toBe(`${firewallRules([spec, loopback]).join("\n")}\n`);
    // An allow list that changes rewrites the chain, with nothing left of the old one.
    const narrower = containerSpec("comfyui", { ...site.services.comfyui, allowFrom: ["192.168.0.7"] }, "none", site.storage, "/m", "192.168.0.21");
    expect(node.run(firewallProgram([narrower], node.etc)).changed).toBe(2); // drop-in and chain
    expect(node.chain()).not.toContain("10.1.0.0/16");
    const removed = node.run(program, "remove");
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("changed: removed the iptables chain MODELSHARE-SERVICES");
    expect(node.chain()).toBe("(none)");
    expect(readFileSync(join(node.ipt, "chain.DOCKER-USER"), "utf8")).toBe("-A DOCKER-USER -j RETURN\n");
    expect(existsSync(join(node.etc, "modelshare-firewall.conf"))).toBe(false);
    expect(node.run(program, "remove").changed).toBe(0);
  });
});

describe("bind sources: the skeleton above each is root's", () => {
  /** A tree like a site's: root's folders above the owner's leaves, or (not migrated) all the owner's. */
  function tree(migrated: boolean): { base: string; spec: ContainerSpec; program: string } {
    const base = mkdtempSync(join(tmpdir(), "modelshare-bind-"));
    chmodSync(base, 0o755);
    const site = parse(seeds());
    const spec = containerSpec("comfyui", site.services.comfyui, "none", site.storage, base);
    for (const m of spec.mounts) {
      mkdirSync(m.source, { recursive: true, mode: 0o755 });
      chownSync(m.source, OWNER.uid, OWNER.gid);
      chmodSync(m.source, 0o775);
    }
    if (!migrated)
      for (const d of ["storage-models", "storage-models/models", "storage-user", "storage-user/output"]) chownSync(join(base, d), OWNER.uid, OWNER.gid);
    const program = renderDockerHost("root", [spec], site.storage, [])
      .replace(/\n {2}ensure_packages 'docker\.io'\n {2}ensure_service 'docker'\n {2}docker_user 'root'\n/, "\n")
      .replace("\n  docker_firewall '", "\n  : '"); // the firewall step as a no-op with the same words
    return { base, spec, program };
  }

  it("a migrated skeleton passes, and the owner can rename nothing on the way to a bind source", () => {
    const t = tree(true);
    const r = runProgram(t.program);
    expect(r.code, r.stderr).toBe(0);
    const attack = asOwner(
      `mv ${t.base}/storage-models/models ${t.base}/storage-models/old 2>&1 || echo refused; ln -s / ${t.base}/storage-user/evil 2>&1 || echo refused`,
    );
    expect(attack.match(/refused/g)).toHaveLength(2);
  });

  it("a skeleton the owner can still rename (not migrated) is refused, naming the folder and the fix; a planted link too", () => {
    const t = tree(false);
    const r = runProgram(t.program);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `modelshare: ${t.base}/storage-models/models, above the bind source ${t.base}/storage-models/models/checkpoints, can be renamed by the storage owner \\(it is 1000:1000, mode 755\\).*converge the storage node \\(it migrates the skeleton\\)`,
      ),
    );
    // The owner, who can, swaps the models folder for a link to a decoy: refused as a link.
    const d = decoy();
    const before = d.digest();
    asOwner(`mv ${t.base}/storage-models/models ${t.base}/storage-models/old && ln -s ${d.dir} ${t.base}/storage-models/models`);
    const linked = runProgram(t.program);
    expect(linked.code).toBe(1);
    expect(linked.stderr).toContain(`${t.base}/storage-models/models is a symbolic link`);
    expect(d.digest()).toEqual(before);
  });
});

describe("the docker provider's SSH key stays in memory", () => {
  const node = { name: "gpu2", host: "192.168.0.22", port: 2222, hostKey: KEY };
  const disk = () => mkdtempSync(join(tmpdir(), "modelshare-disk-")); // /tmp is a disk here
  const shm = () => mkdtempSync(join("/dev/shm", "modelshare-shm-"));
  const fsType = (p: string) => spawnSync("stat", ["-f", "-c", "%T", p], { encoding: "utf8" }).stdout.trim();

  it("runtime dir on tmpfs first, else /dev/shm; neither: the run stops naming ssh-agent, or uses the agent when one is there", () => {
    expect(fsType(tmpdir())).not.toBe("tmpfs");
    const runtime = shm();
    expect(sshDir("p", "s", { XDG_RUNTIME_DIR: runtime })).toBe(join(runtime, "modelshare-ssh", "p-s"));
    const mem = shm();
    expect(sshDir("p", "s", { XDG_RUNTIME_DIR: disk() }, mem)).toBe(join(mem, `modelshare-ssh-${process.getuid?.()}`, "p-s"));
    expect(sshDir("p", "s", {}, mem)).toBe(join(mem, `modelshare-ssh-${process.getuid?.()}`, "p-s"));
    expect(() => sshDir("p", "s", { XDG_RUNTIME_DIR: disk() }, disk())).toThrow(
      /written only to a memory filesystem.*is not a tmpfs.*give the key to ssh-agent instead \(ssh-add the node's key and run with SSH_AUTH_SOCK set/,
    );
    const agent = sshPlace("p", "s", { SSH_AUTH_SOCK: "/run/agent.sock" }, disk());
    expect(agent.agent).toBe(true);
    const files = writeSshFiles(agent.dir, node, undefined);
    expect(files.key).toBeUndefined();
    expect(readFileSync(files.knownHosts, "utf8")).toBe(`[192.168.0.22]:2222 ${KEY}\n`);
    expect(sshOpts(files, true).slice(0, 2)).toEqual(["-o", "BatchMode=yes"]);
  });

  it("a key is never written to a disk folder; it is 0600 in a 0700 folder; a link planted at its name is refused and its target untouched", () => {
    expect(() => writeSshFiles(join(disk(), "stack"), node, "SECRET")).toThrow(/is not on a tmpfs, so the docker provider's SSH key would land on a disk/);
    const dir = join(shm(), "stack");
    const files = writeSshFiles(dir, node, "SECRET");
    expect(statSync(files.key as string).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(files.key as string, "utf8")).toBe("SECRET\n");
    const d = decoy();
    const before = d.digest();
    const planted = join(dir, "gpu1.key");
    symlinkSync(d.secret, planted);
    expect(() => writeSshFiles(dir, { ...node, name: "gpu1" }, "SECRET")).toThrow(/gpu1\.key is a symbolic link/);
    expect(d.digest()).toEqual(before);
    // A stale temporary name pointing elsewhere is replaced, never written through.
    symlinkSync(d.open, join(dir, "gpu2.key.new"));
    writeSshFiles(dir, node, "SECRET2");
    expect(lstatSync(join(dir, "gpu2.key")).isFile()).toBe(true);
    expect(d.digest()).toEqual(before);
  });

  it("the engine's delete of <node>-docker-ssh-files removes the node's files, and the stack's folder once empty", () => {
    const dir = join(shm(), "stack");
    const a = writeSshFiles(dir, node, "K");
    const b = writeSshFiles(dir, { ...node, name: "gpu1" }, "K");
    const del = (cmd: string) => spawnSync("/bin/sh", ["-c", cmd], { encoding: "utf8" });
    expect(del(removeSshFilesCommand(a)).status).toBe(0);
    expect(existsSync(a.key as string) || existsSync(a.knownHosts)).toBe(false);
    expect(existsSync(b.key as string)).toBe(true);
    expect(del(removeSshFilesCommand(b)).status).toBe(0);
    expect(existsSync(dir)).toBe(false);
    expect(del(removeSshFilesCommand(b)).status).toBe(0); // again: nothing left, no error
  });

  it("copies an earlier version left under /tmp are removed, and the run says so", () => {
    const tmp = disk();
    const old = legacySshDir("modelshare", "prod", tmp);
    mkdirSync(old, { recursive: true, mode: 0o700 });
    writeFileSync(join(old, "gpu1.key"), "OLD-SECRET", { mode: 0o600 });
    writeFileSync(join(old, "gpu1.known_hosts"), "");
    const said: string[] = [];
    removeLegacySshFiles(old, (m) => said.push(m));
    expect(existsSync(old)).toBe(false);
    expect(said).toEqual([
      `modelshare: removed ${old}/gpu1.key, an SSH file an earlier version left on a disk (the key now stays in memory only)`,
      `modelshare: removed ${old}/gpu1.known_hosts, an SSH file an earlier version left on a disk (the key now stays in memory only)`,
    ]);
  });

  it("under mocks: each worker's files belong to a command the provider depends on, whose delete removes them", async () => {
    process.env.XDG_RUNTIME_DIR = shm();
    const config = flatConfig(seeds(), { sshKey: PRIVATE_KEY });
    const rs: Declared[] = await declare({ stack: "seeds", config, secretKeys: ["modelshare:sshKey"] }, async () => {
      new Site("site", loadSite());
    });
    const held = rs.find((r) => r.name === "gpu2-docker-ssh-files");
    const provider = rs.find((r) => r.name === "gpu2-docker-provider");
    expect(held?.type).toBe("command:local:Command");
    expect(held?.inputs.create).toBeUndefined();
    const dir = join(process.env.XDG_RUNTIME_DIR, "modelshare-ssh", "modelshare-seeds");
    expect(held?.inputs.delete).toBe(`rm -f -- '${dir}/gpu2.key' '${dir}/gpu2.known_hosts' && { rmdir -- '${dir}' 2>/dev/null || true; }`);
    expect(provider?.dependencies).toContain(held?.urn);
  });
});
