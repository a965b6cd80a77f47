import { isIPv4, isIPv6 } from "node:net";
import { ipv6Groups } from "./hostRules";

/**
 * Client addresses and networks (SMB `hostsAllow`, NFS `clients`): pure checks returning a
 * problem sentence (without the key) or undefined. A network is `address/prefix` with no host
 * bits set, so what the admin wrote is exactly what the server will allow.
 */

const v4Bits = (a: string): bigint => a.split(".").reduce((n, x) => (n << 8n) | BigInt(Number(x)), 0n);
const v6Bits = (a: string): bigint => ipv6Groups(a).reduce((n, g) => (n << 16n) | BigInt(g), 0n);

export function networkProblem(entry: string): string | undefined {
  const [address, prefix, extra] = entry.split("/");
  const v4 = isIPv4(address);
  if (extra !== undefined || !(v4 || isIPv6(address))) {
    return `"${entry}" is not an IP address or network: write an address (192.168.0.20) or a network (192.168.0.0/24)`;
  }
  if (prefix === undefined) return undefined;
  const width = v4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > width) return `"${entry}" has the prefix length /${prefix}; it must be a number from 0 to ${width}`;
  const bits = v4 ? v4Bits(address) : v6Bits(address);
  const hostBits = (1n << BigInt(width - Number(prefix))) - 1n;
  if ((bits & hostBits) !== 0n) {
    const net = bits & ~hostBits;
    const text = v4 ? [24n, 16n, 8n, 0n].map((s) => String((net >> s) & 255n)).join(".") : "its network address";
    return `"${entry}" has host bits set; the network is ${v4 ? `${text}/${prefix}` : text} (or write the single address without /${prefix})`;
  }
  return undefined;
}

/** `0.0.0.0/0`, `::/0`: every address there is. */
export const isEveryone = (entry: string): boolean => /^(0\.0\.0\.0|::)\/0$/.test(entry) || entry === "*";
