/**
 * Delivery figures (issue 19): how fast a worker gets a model's bytes over modelshare's NFS
 * mount with its local cache (nfs.cache), next to the physical limits measured in the same run.
 *
 *   flock /tmp/modelshare-lab.lock npm run bench -- --lab --delivery
 *
 * bench/run.sh boots 3 fresh lab VMs and runs this file inside the lab's namespace. It converges
 * the lab site with NFS on and `nfs.cache` on (nfs.cache is site-wide: node2 and node3 both
 * cache; only node2 is measured), then prints, each the median of RUNS runs (the runs follow):
 *
 *   delivery L      a SIZE file read (dd, 1 MiB blocks) from node2's own disk, page cache
 *                   dropped: the local limit.
 *   delivery N_unlimited, N   the raw network rate node1 -> node2 (a python3 TCP byte stream, no
 *                   ssh, whose crypto is the bottleneck under emulation), before and after the
 *                   link is limited: node2's and node3's taps get a tbf of L/5 on the host side
 *                   (server -> worker traffic), as in a studio (1 GbE against NVMe); the qdisc
 *                   is removed at the end. N is the network limit.
 *   delivery C      a cold read over the mount: page cache dropped on node1 and node2, the file
 *                   touched on node1 first, which invalidates node2's cached copy of it (net_MiB:
 *                   the bytes node2's NFS client read from the server, from mountstats, should
 *                   be SIZE). Target C >= 0.8 N.
 *   delivery W      the same file read again, page cache dropped on node2, once FS-Cache holds
 *                   the whole file (a file of /var/cache/modelshare/cache written since the cold
 *                   read has its bytes; bounded wait, fails if it never does). net_MiB should be
 *                   about 0. Target W >= 0.8 L.
 *   delivery M_cold, M_warm   the file read as a memory-mapping loader reads it (python3 mmap,
 *                   one byte touched per 4 KiB page in file order), cold and warm as for C and W.
 *                   What a UI's "read sequentially" flag (ComfyUI's --disable-mmap) changes is M
 *                   into C or W: the ratios M_cold/C and M_warm/W say what the flag is worth.
 *   delivery ratios C/N, W/L, M_cold/C, M_warm/W.
 *
 * Then, without the cache (nfs.cache's default), each read-tuning candidate in VARIANTS on a
 * mount of its own on node2 (the site's mounts stopped): C_uncached and M_uncached, cold reads
 * sequential and memory-mapped, with C/N, M/C and M/N. M/C is what a UI's "read sequentially"
 * flag is worth on an uncached mount.
 * `delivery mount` lines show the options the kernel actually uses (the server may lower rsize).
 * MB_s is 10^6 bytes a second. The VMs are QEMU/TCG with 1 vCPU: absolute figures are low, the
 * ratios are what to read. Nothing here asserts a speed; it fails only when a step fails (a
 * `delivery warning` line says when a cold read did not come from the server or a warm one not
 * from the cache). Each run is also printed as it ends, on stderr (`delivery run ...`).
 * Environment: MODELSHARE_DELIVERY_MIB (file size, default 256), MODELSHARE_DELIVERY_RUNS
 * (default 3, at least 3), MODELSHARE_DELIVERY_BUDGET_MIN (variants are skipped once the run
 * would pass this many minutes, default 40).
 */
import { spawnSync } from "node:child_process";
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { quote } from "../components/shell/quote";
import { run } from "../test/harness/converge";
import { declare } from "../test/harness/declare";
import { labNodes, labStack, onNode } from "../test/harness/lab";

const MIB = Math.max(64, Number(process.env.MODELSHARE_DELIVERY_MIB ?? 256));
const RUNS = Math.max(3, Number(process.env.MODELSHARE_DELIVERY_RUNS ?? 3));
const BUDGET_MS = Number(process.env.MODELSHARE_DELIVERY_BUDGET_MIN ?? 40) * 60_000;
const SIZE = MIB * 2 ** 20;
/**
 * Read-tuning candidates, each measured on a mount of its own without the cache (the default):
 * mount options, and the NFS mount's readahead (read_ahead_kb of its backing device; the kernel
 * has used 128 KiB since 5.4, 15 * rsize before).
 */
interface Variant {
  name: string;
  options: string[];
  /** Written for every variant: modelshare's own nfs.readAheadKiB would otherwise apply to them all. */
  readaheadKiB: number;
}
const VARIANTS: Variant[] = [
  { name: "default", options: [], readaheadKiB: 128 },
  { name: "rsize=wsize=1MiB", options: ["rsize=1048576", "wsize=1048576"], readaheadKiB: 128 },
  { name: "nconnect=4", options: ["nconnect=4"], readaheadKiB: 128 },
  { name: "readahead=15MiB", options: [], readaheadKiB: 15360 },
  { name: "nconnect=4+readahead=15MiB", options: ["nconnect=4"], readaheadKiB: 15360 },
];
/** Where each variant is mounted on node2 (the site's mounts are stopped meanwhile). */
const VMP = "/var/tmp/modelshare-delivery.mnt";

const ROOT = "/srv/cw";
const MP = "/mnt/modelshare";
const CACHE = "/var/cache/modelshare";
const MODEL = "storage-models/models/checkpoints/delivery-bench.safetensors";
const LOCAL = "/var/tmp/modelshare-delivery.local";
const MARK = "/var/tmp/modelshare-delivery.mark";
const PORT = 47011;
const WORKER_TAPS = ["labtap2", "labtap3"];

const started = Date.now();
const DROP = "sync; echo 3 > /proc/sys/vm/drop_caches";
/** Runs CMD on the node and prints the nanoseconds it took (the node's clock). */
const timed = (cmd: string) => `s=$(date +%s%N); ${cmd}; e=$(date +%s%N); echo $((e - s))`;
const mbs = (bytes: number, ns: number) => bytes / (ns / 1e9) / 1e6;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
/** Each run as it ends, on stderr (the figures on stdout are the medians). */
const progress = (what: string, rate: number, extra = "") =>
  console.error(`delivery run ${what} MB_s=${f1(rate)}${extra ? ` ${extra}` : ""} at_s=${f1((Date.now() - started) / 1000)}`);
const line = (name: string, runs: number[], extra = "") =>
  console.log(`delivery ${name} MB_s=${f1(median(runs))}${extra} runs=${runs.map(f1).join(",")} size_MiB=${MIB}`);

// ------------------------------------------------------------------ the site

const stack = () =>
  labStack((s) => {
    s["modelshare:nfs"] = { enabled: true, cache: { enabled: true } };
  });

async function converge(): Promise<void> {
  const t0 = Date.now();
  await run(await declare({ stack: "lab", ...stack() }, () => new Site("site", loadSite())));
  const opts = (await onNode("node2", `findmnt -n -M ${quote(MP)} -o OPTIONS`)).trim();
  if (!opts.split(",").includes("fsc")) throw new Error(`node2 mounts ${MP} without fsc after the converge (options: ${opts}): the cache is not in use`);
  const bound = (await onNode("node2", "grep -cw modelshare /proc/fs/fscache/caches || true")).trim();
  if (bound !== "1") throw new Error("node2's FS-Cache has no cache tagged modelshare after the converge (cachefilesd is not bound)");
  const shown = ["rsize", "wsize", "nconnect"].map((k) => `${k}=${opts.match(new RegExp(`(?:^|,)${k}=(\\d+)`))?.[1] ?? "-"}`);
  const ra = (await onNode("node2", `cat "/sys/class/bdi/$(mountpoint -d ${quote(MP)})/read_ahead_kb"`)).trim();
  console.log(`delivery mount opts=default converge_s=${f1((Date.now() - t0) / 1000)} ${shown.join(" ")} read_ahead_kb=${ra}`);
}

// ------------------------------------------------------------------ measurements on the nodes

/**
 * python3 (the byte stream's ends, the mmap reader): not in the lab image's base, but in its
 * offline apt repository (a dependency of python3-yaml there); the converge has updated apt's lists.
 */
const ensurePython = (node: string) =>
  onNode(
    node,
    [
      "command -v python3 >/dev/null && exit 0",
      "export DEBIAN_FRONTEND=noninteractive",
      "log=$(mktemp)",
      'apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 python3 >"$log" 2>&1 ||',
      '  { apt-get update -q && apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 python3; } >"$log" 2>&1 ||',
      '  { tail -n 5 "$log" >&2; exit 1; }',
    ].join("\n"),
  );

/** L: the local file on node2's disk, page cache dropped, read with dd. */
async function localRead(): Promise<number> {
  const ns = Number(await onNode("node2", `set -e; ${DROP}; ${timed(`timeout 600 dd if=${quote(LOCAL)} of=/dev/null bs=1M status=none`)}`));
  return mbs(SIZE, ns);
}

const RECEIVER = `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(60)
c, _ = s.accept()
c.settimeout(300)
buf = bytearray(1 << 20)
n = 0
t = None
while True:
    k = c.recv_into(buf)
    if t is None:
        t = time.monotonic()
    if k == 0:
        break
    n += k
print(int((time.monotonic() - t) * 1e9), n)
`;

const SENDER = `
import socket, sys, time
for _ in range(300):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("the receiver on " + sys.argv[1] + " never listened")
c.settimeout(300)
chunk = b"\\0" * (1 << 20)
for _ in range(int(sys.argv[3])):
    c.sendall(chunk)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
`;

/** N: a plain TCP byte stream from node1 to node2, timed by the receiver from first byte to EOF. */
async function network(): Promise<number> {
  const to = addressOf("node2");
  // The sender retries until the receiver listens: both start at once.
  const [received] = await Promise.all([
    onNode("node2", `timeout 600 python3 - ${quote(to)} ${PORT}`, RECEIVER),
    onNode("node1", `timeout 600 python3 - ${quote(to)} ${PORT} ${MIB}`, SENDER),
  ]);
  const [ns, bytes] = received.trim().split(" ").map(Number);
  if (bytes !== SIZE) throw new Error(`the byte stream node1 -> node2 carried ${bytes} bytes, not ${SIZE}`);
  return mbs(bytes, ns);
}

const addressOf = (name: string) => {
  const n = labNodes().find((x) => x.name === name);
  if (!n) throw new Error(`no lab node ${name}`);
  return n.address;
};

/** Prints the bytes node2's NFS client has read from the server over the mount (mountstats' serverreadbytes). */
// (MP is a constant path without quotes or spaces: an awk string as it is.)
const serverReadBytes = (mp: string) =>
  `awk '$1 == "device" { on = ($5 == "${mp}") } on && $1 == "bytes:" { print $6; found = 1; exit } END { if (!found) print "none" }' /proc/self/mountstats`;

const MMAP = `
import mmap, sys, time
t = time.monotonic()
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    n = len(m)
    s = 0
    for i in range(0, n, 4096):
        s += m[i]
    m.close()
print(int((time.monotonic() - t) * 1e9), n)
`;

type Reader = "seq" | "mmap";

/**
 * Reads the model on node2 over the mount (page cache dropped there first); MB/s and the MiB
 * the server sent meanwhile. One command: an SSH login under emulation takes a while.
 */
async function mountRead(how: Reader, mp = MP): Promise<{ rate: number; netMiB: number }> {
  const path = quote(`${mp}/${MODEL}`);
  const read = how === "seq" ? timed(`timeout 900 dd if=${path} of=/dev/null bs=1M status=none`) : `timeout 900 python3 - ${path}`;
  const out = await onNode("node2", `set -e; ${serverReadBytes(mp)}; ${DROP}; ${read}; ${serverReadBytes(mp)}`, how === "mmap" ? MMAP : undefined);
  const [before, result, after] = out.trim().split("\n");
  if (before === "none") throw new Error(`node2's /proc/self/mountstats has no NFS mount at ${mp}`);
  const [ns, seen] = result.split(" ").map(Number);
  if (how === "mmap" && seen !== SIZE) throw new Error(`mmap saw ${seen} bytes of ${mp}/${MODEL}, not ${SIZE}`);
  return { rate: mbs(SIZE, ns), netMiB: (Number(after) - Number(before)) / 2 ** 20 };
}

/**
 * Makes node2's next read cold: the file touched on node1 as its owner (its change attribute
 * moves, so node2's cached copy is stale and thrown away), page cache dropped on node1, and a
 * mark on node2 that the copy the cold read leaves in the cache will be newer than.
 */
async function makeCold(): Promise<void> {
  await onNode("node1", `set -e; setpriv --reuid=1000 --regid=1000 --clear-groups -- touch -- ${quote(`${ROOT}/${MODEL}`)}; ${DROP}`);
  await onNode("node2", `set -e; touch ${quote(MARK)}; ${DROP}`);
}

/**
 * Waits until FS-Cache on node2 holds the whole file: a file in the cache's tree written since
 * the mark with at least 99% of its blocks. Dropping node2's caches evicts the NFS inode, so
 * FS-Cache commits the copy at once (else only when the cookie leaves its LRU).
 */
async function waitCached(): Promise<number> {
  const blocks = Math.floor((SIZE / 512) * 0.99);
  const out = await onNode(
    "node2",
    [
      "set -u",
      DROP,
      "for i in $(seq 360); do",
      `  have=$(find ${quote(`${CACHE}/cache`)} -type f -newer ${quote(MARK)} -printf '%b\\n' 2>/dev/null | sort -n | tail -n 1)`,
      `  if [ "\${have:-0}" -ge ${blocks} ]; then echo "$i"; exit 0; fi`,
      "  if [ $((i % 10)) -eq 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi",
      "  sleep 0.5",
      "done",
      `echo "FS-Cache on node2 did not hold the file within 180 s (largest new cache file: \${have:-0} blocks of 512 bytes, want ${blocks}; du of ${CACHE}: $(du -sm ${quote(CACHE)} | cut -f1) MiB)" >&2`,
      "exit 1",
    ].join("\n"),
  );
  return Number(out.trim()) * 0.5;
}

/** C and W (and, with mmap, M_cold and M_warm) over the current mount, RUNS times. */
async function coldWarm(how: Reader) {
  const cold: number[] = [];
  const warm: number[] = [];
  const coldNet: number[] = [];
  const warmNet: number[] = [];
  const waits: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await makeCold();
    const c = await mountRead(how);
    cold.push(c.rate);
    coldNet.push(c.netMiB);
    progress(`${how} cold #${i + 1}`, c.rate, `net_MiB=${c.netMiB.toFixed(0)}`);
    // Not a speed check: a read that was not what it is named would make its figure meaningless.
    if (c.netMiB < 0.9 * MIB) console.log(`delivery warning: ${how} cold read #${i + 1} got only ${c.netMiB.toFixed(0)} MiB from the server (not cold)`);
    waits.push(await waitCached());
    const w = await mountRead(how);
    warm.push(w.rate);
    warmNet.push(w.netMiB);
    if (w.netMiB > 0.1 * MIB)
      console.log(`delivery warning: ${how} warm read #${i + 1} got ${w.netMiB.toFixed(0)} MiB from the server (not all from the cache)`);
    progress(`${how} warm #${i + 1}`, w.rate, `net_MiB=${w.netMiB.toFixed(0)} cache_wait_s=${f1(waits[i])}`);
  }
  return { cold, warm, coldNet, warmNet, waits };
}

/** Cold reads only (without the cache a second read is a cold one), sequential and mmap, RUNS times each. */
async function coldOnly(name: string) {
  const r = { seq: [] as number[], mmap: [] as number[], seqNet: [] as number[], mmapNet: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    for (const how of ["seq", "mmap"] as const) {
      await makeCold();
      const c = await mountRead(how, VMP);
      r[how].push(c.rate);
      r[`${how}Net`].push(c.netMiB);
      progress(`${how} uncached ${name} #${i + 1}`, c.rate, `net_MiB=${c.netMiB.toFixed(0)}`);
    }
  }
  return r;
}

/**
 * Stops every NFS mount on node2 (nconnect belongs to the client's connection to a server,
 * which mounts of the same server share), then mounts the variant at VMP, uncached.
 */
async function mountVariant(v: Variant): Promise<string> {
  const opts = ["nfsvers=4.2", "hard", "ro", ...v.options].join(",");
  // After udev: Debian 12's nfs-common sets every new NFS mount's readahead from nfs.conf
  // (nfsrahead, on the bdi's add event), which would undo a value written before it ran.
  const ra = `udevadm settle --timeout=30; echo ${v.readaheadKiB} > "/sys/class/bdi/$(mountpoint -d ${quote(VMP)})/read_ahead_kb"`;
  const out = await onNode(
    "node2",
    [
      "set -euo pipefail",
      `src=$(findmnt -n -M ${quote(MP)} -o SOURCE || cat ${quote(`${VMP}.source`)})`,
      `echo "$src" > ${quote(`${VMP}.source`)}`,
      `{ findmnt -rn -t nfs,nfs4 -o TARGET || true; } | while read -r t; do timeout 60 systemctl stop "$(systemd-escape --path --suffix=mount "$t")" || umount "$t"; done`,
      `mkdir -p ${quote(VMP)}`,
      `mount -t nfs -o ${quote(opts)} "$src" ${quote(VMP)}`,
      ra,
      `findmnt -n -M ${quote(VMP)} -o OPTIONS`,
      `cat "/sys/class/bdi/$(mountpoint -d ${quote(VMP)})/read_ahead_kb"`,
    ].join("\n"),
  );
  const [mounted, readahead] = out.trim().split("\n");
  if (readahead !== String(v.readaheadKiB))
    console.log(`delivery warning: variant ${v.name} asked for read_ahead_kb=${v.readaheadKiB}, the mount has ${readahead}`);
  const shown = ["rsize", "nconnect"].map((k) => `${k}=${mounted.match(new RegExp(`(?:^|,)${k}=(\\d+)`))?.[1] ?? "-"}`);
  return `${shown.join(" ")} read_ahead_kb=${readahead}`;
}

const nets = (xs: number[]) => ` net_MiB=${xs.map((x) => x.toFixed(0)).join(",")}`;

// ------------------------------------------------------------------ the link

function tc(args: string[]): void {
  const r = spawnSync("tc", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tc ${args.join(" ")}: ${r.stderr.trim() || `exit ${r.status}`}`);
}

/** tbf on the worker taps' egress (host side: what the server sends a worker), RATE bits a second. */
function limitLink(bits: number): void {
  const burst = Math.max(128 * 1024, Math.ceil(bits / 8 / 50)); // 20 ms of traffic, at least a GSO packet or two
  for (const tap of WORKER_TAPS)
    tc(["qdisc", "replace", "dev", tap, "root", "tbf", "rate", `${Math.floor(bits / 1000)}kbit`, "burst", String(burst), "latency", "100ms"]);
}

function unlimitLink(): void {
  for (const tap of WORKER_TAPS) spawnSync("tc", ["qdisc", "del", "dev", tap, "root"]);
}

// ------------------------------------------------------------------ the run

async function main() {
  console.log(`delivery setup size_MiB=${MIB} runs=${RUNS} (node2 measured; nfs.cache on for node2 and node3)`);
  await converge();
  const free = (await onNode("node2", `df -m --output=avail ${quote(CACHE)} | tail -n 1`)).trim();
  console.log(`delivery disk node2 free_MiB=${free}`);
  await Promise.all(["node1", "node2"].map(ensurePython));

  // L: the local limit.
  await onNode("node2", `head -c ${SIZE} /dev/urandom > ${quote(LOCAL)}`);
  const local: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    local.push(await localRead());
    progress(`L #${i + 1}`, local[i]);
  }
  const L = median(local);
  line("L", local);

  // The model on the storage node, the owner's.
  await onNode("node1", `setpriv --reuid=1000 --regid=1000 --clear-groups -- sh -c 'head -c "$1" /dev/urandom > "$2"' sh ${SIZE} ${quote(`${ROOT}/${MODEL}`)}`);

  const unlimited: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    unlimited.push(await network());
    progress(`N_unlimited #${i + 1}`, unlimited[i]);
  }
  line("N_unlimited", unlimited);

  const bits = Math.floor((L * 1e6 * 8) / 5);
  limitLink(bits);
  try {
    console.log(`delivery link tbf_rate_Mbit=${f1(bits / 1e6)} (L/5 = ${f1(L / 5)} MB_s) on ${WORKER_TAPS.join(",")}`);
    const network_: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      network_.push(await network());
      progress(`N #${i + 1}`, network_[i]);
    }
    const N = median(network_);
    line("N", network_);

    let t0 = Date.now();
    const seq = await coldWarm("seq");
    // What a variant costs, until one has run: these runs and a converge.
    let last = Date.now() - t0 + 60_000;
    line("C", seq.cold, ` opts=default${nets(seq.coldNet)}`);
    line("W", seq.warm, ` opts=default${nets(seq.warmNet)} cache_wait_s=${seq.waits.map(f1).join(",")}`);
    const map = await coldWarm("mmap");
    line("M_cold", map.cold, ` opts=default${nets(map.coldNet)}`);
    line("M_warm", map.warm, ` opts=default${nets(map.warmNet)}`);
    const C = median(seq.cold);
    const W = median(seq.warm);
    console.log(
      `delivery ratios opts=default N/L=${f2(N / L)} C/N=${f2(C / N)} W/L=${f2(W / L)} M_cold/C=${f2(median(map.cold) / C)} M_warm/W=${f2(median(map.warm) / W)} (targets: C/N >= 0.8, W/L >= 0.8)`,
    );

    // Uncached, as a worker mounts by default (nfs.cache off): each variant on a mount of its own.
    for (const v of VARIANTS) {
      t0 = Date.now();
      if (Date.now() - started + last > BUDGET_MS) {
        console.log(`delivery skipped variant=${v.name} (the run would pass MODELSHARE_DELIVERY_BUDGET_MIN=${BUDGET_MS / 60_000})`);
        continue;
      }
      const shown = await mountVariant(v);
      try {
        const u = await coldOnly(v.name);
        const [c, m] = [median(u.seq), median(u.mmap)];
        line("C_uncached", u.seq, ` variant=${v.name}${nets(u.seqNet)}`);
        line("M_uncached", u.mmap, ` variant=${v.name}${nets(u.mmapNet)}`);
        console.log(`delivery ratios variant=${v.name} ${shown} C/N=${f2(c / N)} M/C=${f2(m / c)} M/N=${f2(m / N)}`);
      } finally {
        await onNode("node2", `umount ${quote(VMP)}`);
      }
      last = Date.now() - t0;
    }
  } finally {
    unlimitLink();
    await onNode("node2", `rm -f ${quote(LOCAL)} ${quote(MARK)} ${quote(`${VMP}.source`)}`).catch(() => {});
  }
  console.log(`delivery total wall_s=${f1((Date.now() - started) / 1000)}`);
}

main().catch((e) => {
  unlimitLink();
  console.error(e);
  process.exit(1);
});
