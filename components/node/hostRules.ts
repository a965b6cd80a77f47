import { isIPv4, isIPv6 } from "node:net";

/**
 * Hosts and host keys in the site config: pure checks returning a problem sentence (without
 * the key) or undefined, and the canonical form that decides "one machine, one node".
 */

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

// A part of an IPv4 address as inet_aton (and so ssh, ping, getaddrinfo) reads it: decimal,
// octal (leading 0) or hex (0x). A name made only of these is an address in disguise.
const NUMERIC = /^(0x[0-9a-f]*|\d+)$/i;

export function hostProblem(h: string): string | undefined {
  if (/^\[.*\]$/.test(h)) return `"${h}": write an IPv6 address without the brackets (${h.slice(1, -1)})`;
  if (h.includes("%")) return `"${h}" holds an IPv6 zone id; give the node an address that needs none (its global or fd00:: address)`;
  const port = /^(.+):(\d{1,5})$/.exec(h);
  if (port && !isIPv6(h)) return `"${h}" holds a port: set host: ${port[1]} and port: ${port[2]}`;
  if (isIPv4(h) || isIPv6(h)) return addressProblem(h);
  const labels = h.split(".");
  if (labels.every((l) => NUMERIC.test(l)) || /^\d+$/.test(labels[labels.length - 1])) {
    return /^\d+\.\d+\.\d+\.\d+$/.test(h)
      ? `"${h}" is not a hostname or IP address: an IPv4 address is four numbers 0-255, written without leading zeros`
      : `"${h}" is not a hostname, and ssh would read it as a shorthand IPv4 address; write the address as four numbers 0-255 (e.g. 192.168.0.20)`;
  }
  const ok = h.length <= 253 && labels.every((l) => LABEL.test(l));
  return ok ? undefined : `"${h}" is not a hostname or IP address`;
}

/**
 * An address that cannot be a node: the unspecified address (0.0.0.0, ::: ssh reaches this
 * machine through it, a node in disguise), broadcast, multicast, the reserved 240/4, and IPv6
 * link-local (reachable only with a zone id). IPv4-mapped IPv6 addresses are judged as IPv4.
 */
function addressProblem(h: string): string | undefined {
  const canonical = canonicalHost(h);
  if (canonical === "localhost") return undefined;
  const fix = "give the node's own address on the network (or localhost for this machine)";
  if (isIPv4(canonical)) {
    const [a] = canonical.split(".").map(Number);
    if (a === 0) return `"${h}" is not a node's address (0.x means "this host": ssh would reach this machine); ${fix}`;
    if (canonical === "255.255.255.255") return `"${h}" is the broadcast address; ${fix}`;
    if (a >= 224 && a < 240) return `"${h}" is a multicast address; ${fix}`;
    if (a >= 240) return `"${h}" is in the reserved range 240.0.0.0/4; ${fix}`;
    return undefined;
  }
  const g = ipv6Groups(h);
  if (g.every((x) => x === 0)) return `"${h}" is the unspecified address (::: ssh would reach this machine); ${fix}`;
  if (g[0] >> 8 === 0xff) return `"${h}" is a multicast address; ${fix}`;
  if (g.slice(0, 6).every((x) => x === 0)) return `"${h}" is an IPv4-compatible IPv6 address (deprecated, unroutable); write the IPv4 address itself`;
  if ((g[0] & 0xffc0) === 0xfe80) return `"${h}" is link-local (fe80::/10), reachable only with a zone id; give the node's global or fd00:: address`;
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (a valid one: checked by isIPv6 first). */
export function ipv6Groups(h: string): number[] {
  let text = h.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1].split(".").map(Number);
    text = `${text.slice(0, -v4[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array(8 - left.length - right.length).fill("0");
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16));
}

/**
 * The machine a host names, as far as the config can tell: `localhost`, any 127.x address and
 * ::1 are this machine ("localhost"); an IPv4-mapped IPv6 address is its IPv4 address; IPv6
 * addresses compare in one spelling; names compare case-insensitively.
 */
export function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  let v4: string | undefined = isIPv4(h) ? h : undefined;
  if (!v4 && isIPv6(h)) {
    const g = ipv6Groups(h);
    if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) v4 = `${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`;
    else if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "localhost";
    else return g.map((x) => x.toString(16)).join(":");
  }
  if (v4) return v4.startsWith("127.") ? "localhost" : v4;
  return h === "localhost" ? "localhost" : h;
}

/** A node whose commands run here, without SSH. */
export const isLocalHost = (host: string): boolean => canonicalHost(host) === "localhost";

/** A node reached without SSH: its commands run on this machine. */
export const isLocal = (node: { host: string }): boolean => isLocalHost(node.host);

const KEY_TYPES: Record<string, number | undefined> = {
  "ssh-ed25519": 32,
  "ssh-rsa": undefined,
  "ecdsa-sha2-nistp256": undefined,
  "ecdsa-sha2-nistp384": undefined,
  "ecdsa-sha2-nistp521": undefined,
  "sk-ssh-ed25519@openssh.com": undefined,
  "sk-ecdsa-sha2-nistp256@openssh.com": undefined,
};

/** `type base64 [comment]`: the base64 must decode to a key blob of that same type. */
export function hostKeyProblem(value: string): string | undefined {
  const [type, data] = value.split(" ");
  if (!(type in KEY_TYPES) || !data || !/^[A-Za-z0-9+/]+={0,3}$/.test(data)) {
    return 'must be the node\'s SSH host public key, e.g. "ssh-ed25519 AAAA…" (ssh-keyscan -t ed25519 HOST, without the host name)';
  }
  const blob = Buffer.from(data, "base64");
  const copyHint = "copy the whole line ssh-keyscan prints, after the host name";
  if (blob.length < 4) return `does not decode to an SSH key; ${copyHint}`;
  const nameLength = blob.readUInt32BE(0);
  const inner = blob.subarray(4, 4 + nameLength).toString("latin1");
  if (inner !== type) return `says ${type}, but its base64 holds ${/^[\x20-\x7e]{1,64}$/.test(inner) ? `a ${inner} key` : "no SSH key"}; ${copyHint}`;
  const size = KEY_TYPES[type];
  if (size !== undefined) {
    const at = 4 + nameLength;
    if (blob.length < at + 4 || blob.readUInt32BE(at) !== size || blob.length !== at + 4 + size) {
      return `is not a whole ${type} key (its base64 is cut short or too long); ${copyHint}`;
    }
  }
  return undefined;
}
