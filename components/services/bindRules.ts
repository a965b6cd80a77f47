import { isIPv4 } from "node:net";
import { coversEveryone, isEveryone, networkProblem } from "../node/netRules";
import type { Add } from "../concern";

/**
 * Where a service's ports listen (`bind`) and who may connect (`allowFrom`). Docker publishes on
 * `bind` only; for any address but loopback the node keeps an iptables chain in DOCKER-USER that
 * drops new connections from outside `allowFrom` (host.ts). IPv4 only: docker publishes an IPv4
 * address through its NAT rules, which DOCKER-USER filters; an IPv6 listener goes through
 * docker-proxy, which no FORWARD rule sees.
 */

const octets = (a: string) => a.split(".").map(Number);
const isLoopback = (a: string) => octets(a)[0] === 127;

/** The value alone: "node", or one unicast IPv4 address. */
export function bindProblem(v: string): string | undefined {
  if (v === "node") return undefined;
  if (!isIPv4(v)) return `"${v}" is not an IPv4 address; write 127.0.0.1 (only the node itself), node (the node's own address) or one IPv4 address of the node`;
  const [a] = octets(v);
  if (v === "0.0.0.0") return "0.0.0.0 publishes on every address of the node; name one: 127.0.0.1, node, or the address of the network that should reach it";
  if (a === 0 || a >= 224) return `"${v}" is not a unicast address of a node; write 127.0.0.1, node, or one address of the node`;
  return undefined;
}

/** One allowFrom entry: an IPv4 address or network (the node's firewall is IPv4). */
export function allowFromProblem(v: string): string | undefined {
  const problem = networkProblem(v);
  if (problem) return problem;
  if (!isIPv4(v.split("/")[0])) return `"${v}" is IPv6; bind is an IPv4 address, so list IPv4 addresses and networks`;
  if (isEveryone(v)) return `"${v}" is every address there is; list the networks that should reach the service`;
  return undefined;
}

interface SiteNodeHost {
  name: string;
  host: string;
}

/**
 * What `bind` means on one node: loopback and literal addresses as written, `node` the node's
 * own address (checked by checkServiceAccess to be an IPv4 address).
 */
export const bindAddress = (bind: string, node: { host: string }): string => (bind === "node" ? node.host : bind);

/** The rules that need the service's nodes. */
export function checkServiceAccess(
  at: string,
  svc: { bind: string; allowFrom: readonly string[]; nodes: ReadonlyArray<{ name: string }> },
  nodes: readonly SiteNodeHost[],
  add: Add,
): void {
  if (bindProblem(svc.bind) || svc.allowFrom.some((e) => allowFromProblem(e))) return; // said already
  if (svc.bind === "node") {
    for (const entry of svc.nodes) {
      const node = nodes.find((n) => n.name.toLowerCase() === entry.name.toLowerCase());
      if (node && (!isIPv4(node.host) || isLoopback(node.host))) {
        add(
          `${at}.bind`,
          `is node, but nodes[].host of ${node.name} ("${node.host}") is not an IPv4 address of the node on the site network; write that address in nodes[].host, or bind to one address (the service then runs on one node)`,
        );
      }
    }
  } else if (!isLoopback(svc.bind) && svc.nodes.length > 1) {
    add(
      `${at}.bind`,
      `${svc.bind} is one node's address, but the service runs on ${svc.nodes.length} nodes; use bind: node (each node's own address), or 127.0.0.1`,
    );
  }
  const loopback = svc.bind !== "node" && isLoopback(svc.bind);
  if (loopback && svc.allowFrom.length > 0) {
    add(
      `${at}.allowFrom`,
      `lists addresses, but bind ${svc.bind} is reachable from the node itself only; set bind (node, or an address of the node) to open the service to them, or remove allowFrom`,
    );
  }
  if (!loopback && svc.allowFrom.length === 0) {
    add(
      `${at}.allowFrom`,
      `is empty, but bind ${svc.bind} is reachable from the network, and ComfyUI and Ollama ask for no password; list the addresses or networks that may connect, e.g. ["192.168.0.0/24"]`,
    );
  }
  if (svc.allowFrom.length > 0 && coversEveryone(svc.allowFrom)) {
    add(`${at}.allowFrom`, "together covers every IPv4 address; list the networks that should reach the service");
  }
}
