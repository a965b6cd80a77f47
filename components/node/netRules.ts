import { isIPv4, isIPv6 } from "node:net";
import { ipv6Groups } from "./hostRules";
import type { Add } from "../concern";

/**
 * Client addresses and networks (SMB `hostsAllow`, NFS `clients`, services' `allowFrom`): parsed
 * to numbers, never matched as text, so every spelling of one network means the same to these
 * rules as it does to smbd, exportfs or iptables. Checks return a problem sentence (without the
 * key) or undefined. A network is `address/prefix` with no host bits set, so what the admin
 * wrote is exactly what the server will allow; one spelling of a number only (no leading zeros).
 */

export interface Network {
  v4: boolean;
  /** The network address as a number (32 or 128 bits). */
  bits: bigint;
  /** Prefix length; 32 or 128 for a single address. */
  prefix: number;
}

const V4_WIDTH = 32;
const V6_WIDTH = 128;
const width = (v4: boolean) => (v4 ? V4_WIDTH : V6_WIDTH);

export const v4Bits = (a: string): bigint => a.split(".").reduce((n, x) => (n << 8n) | BigInt(Number(x)), 0n);
export const v6Bits = (a: string): bigint => ipv6Groups(a).reduce((n, g) => (n << 16n) | BigInt(g), 0n);
const v4Text = (n: bigint) => [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join(".");

/** `a.b.c.d` with numbers written plainly, none above 255: what the hint says to write. */
const DOTTED = /^\d+\.\d+\.\d+\.\d+$/;

/** `entry` as a network, or the sentence saying why it is not one. */
export function parseNetwork(entry: string): Network | string {
  const [address, prefix, extra] = entry.split("/");
  if (address.includes("%")) {
    return `"${entry}" holds an IPv6 zone id (${address.slice(address.indexOf("%"))}), which names an interface of one machine, not a client; write the address without it (a link-local fe80:: client is better named by its global or fd00:: address)`;
  }
  const v4 = isIPv4(address);
  if (extra !== undefined || !(v4 || isIPv6(address))) {
    if (DOTTED.test(address)) return `"${entry}" is not an IPv4 address: each of its four numbers is 0-255, written without leading zeros (e.g. 192.168.0.20)`;
    return `"${entry}" is not an IP address or network: write an address (192.168.0.20) or a network (192.168.0.0/24)`;
  }
  const w = width(v4);
  const bits = v4 ? v4Bits(address) : v6Bits(address);
  if (prefix === undefined) return { v4, bits, prefix: w };
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > w) return `"${entry}" has the prefix length /${prefix}; it must be a number from 0 to ${w}`;
  if (prefix.length > 1 && prefix.startsWith("0")) return `"${entry}" writes its prefix length with a leading zero; write ${address}/${Number(prefix)}`;
  const hostBits = (1n << BigInt(w - Number(prefix))) - 1n;
  if ((bits & hostBits) !== 0n) {
    const net = bits & ~hostBits;
    return `"${entry}" has host bits set; the network is ${v4 ? `${v4Text(net)}/${prefix}` : "its network address"} (or write the single address without /${prefix})`;
  }
  return { v4, bits, prefix: Number(prefix) };
}

/** A single address no client has: the unspecified address, broadcast, multicast. */
function notAClient(n: Network): string | undefined {
  if (n.v4) {
    const first = Number(n.bits >> 24n);
    if (n.prefix === V4_WIDTH && first === 0) return 'is not a client\'s address (0.x is "this host" on the node)';
    if (n.prefix === V4_WIDTH && n.bits === 0xffffffffn) return "is the broadcast address, which no client connects from";
    if (n.prefix >= 4 && first >= 224 && first < 240) return "is multicast, which no client connects from";
    return undefined;
  }
  if (n.prefix === V6_WIDTH && n.bits === 0n) return "is the unspecified address (::), which no client has";
  if (n.prefix >= 8 && n.bits >> 120n === 0xffn) return "is multicast (ff00::/8), which no client connects from";
  return undefined;
}

/** A problem with one entry's spelling or meaning, or undefined (everyone is not a problem here). */
export function networkProblem(entry: string): string | undefined {
  const n = parseNetwork(entry);
  if (typeof n === "string") return n;
  const wrong = notAClient(n);
  return wrong ? `"${entry}" ${wrong}; list the addresses or networks your clients connect from` : undefined;
}

/** One entry that means every address there is: prefix 0 in any spelling, or NFS's `*`. */
export function isEveryone(entry: string): boolean {
  if (entry === "*") return true;
  const n = parseNetwork(entry);
  return typeof n !== "string" && n.prefix === 0;
}

type Range = [start: bigint, end: bigint];

/** Whether the ranges together cover 0 .. max. */
function covers(ranges: Range[], max: bigint): boolean {
  let next = 0n;
  for (const [start, end] of [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (start > next) return false;
    if (end + 1n > next) next = end + 1n;
    if (next > max) return true;
  }
  return next > max;
}

// ::ffff:0:0/96: how a dual-stack server sees IPv4 clients.
const MAPPED = 0xffffn << 32n;
const MAPPED_END = MAPPED | 0xffffffffn;

/**
 * The entries together cover every IPv4 or every IPv6 address (e.g. 0.0.0.0/1 with
 * 128.0.0.0/1, or ::/1 with 8000::/1). IPv6 networks over the IPv4-mapped range (::ffff:0:0/96)
 * count for the IPv4 addresses they cover. Entries that do not parse are left out.
 */
export function coversEveryone(entries: readonly string[]): boolean {
  const v4: Range[] = [];
  const v6: Range[] = [];
  for (const e of entries) {
    if (e === "*") return true;
    const n = parseNetwork(e);
    if (typeof n === "string") continue;
    const end = n.bits | ((1n << BigInt(width(n.v4) - n.prefix)) - 1n);
    (n.v4 ? v4 : v6).push([n.bits, end]);
    if (!n.v4 && n.bits <= MAPPED_END && end >= MAPPED) {
      v4.push([(n.bits > MAPPED ? n.bits : MAPPED) - MAPPED, (end < MAPPED_END ? end : MAPPED_END) - MAPPED]);
    }
  }
  return covers(v4, (1n << 32n) - 1n) || covers(v6, (1n << 128n) - 1n);
}

/**
 * The rule of an allow list with an opt-in (`smb.hostsAllow` with `smb.allowAnyHost`, `nfs.clients`
 * with `nfs.allowAnyClient`): each entry parses, and everyone (one entry, or all of them
 * together) needs the opt-in. `what` says what a client does ("connect", "mount the storage").
 */
export function checkAllowList(key: string, list: readonly string[], optIn: { key: string; value: boolean }, what: string, add: Add): void {
  let one = false;
  list.forEach((entry, i) => {
    if (isEveryone(entry)) {
      one = true;
      if (!optIn.value) add(`${key}[${i}]`, `"${entry}" lets every address ${what}; list your networks, or set ${optIn.key}: true if you mean it`);
      return;
    }
    const problem = networkProblem(entry);
    if (problem) add(`${key}[${i}]`, problem);
  });
  if (!one && !optIn.value && coversEveryone(list)) {
    add(
      key,
      `together covers every IPv4 or every IPv6 address (${list.join(", ")}), which lets every address ${what}; list your networks, or set ${optIn.key}: true if you mean it`,
    );
  }
}
