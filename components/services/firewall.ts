import type { ContainerSpec } from "./spec";

/**
 * Who may reach the published ports, as iptables rules. Docker publishes a port with NAT rules
 * that bypass the INPUT chain (and so any host firewall); DOCKER-USER is where docker lets the
 * admin filter what it forwards to containers. It sees packets after DNAT, so the rules match
 * conntrack's original destination (the bind address and published port), and only a
 * connection's first packet (NEW: replies and allowed flows pass).
 *
 * Every published port gets a DROP for new connections from anywhere else; a loopback bind
 * allows no one from outside, which also closes docker's NAT path to 127.0.0.1 from a
 * neighbour on the same link (the node's own clients reach it through docker-proxy, never
 * through FORWARD).
 */
export const CHAIN = "MODELSHARE-SERVICES";
export const IPTABLES = "/usr/sbin/iptables";

/** An address as `iptables -S` prints it (no /32). */
const net = (entry: string) => entry.replace(/\/32$/, "");

/** The chain's rules, exactly as `iptables -S CHAIN` prints them (after its -N line). */
export function firewallRules(containers: readonly ContainerSpec[]): string[] {
  const rules: string[] = [];
  for (const c of containers) {
    for (const p of c.ports) {
      const match = `-p ${p.protocol} -m conntrack --ctstate NEW`;
      const to = `--ctorigdst ${p.ip} --ctorigdstport ${p.external}`;
      for (const from of c.allowFrom) rules.push(`-A ${CHAIN} ${match} --ctorigsrc ${net(from)} ${to} -j RETURN`);
      rules.push(`-A ${CHAIN} ${match} ${to} -j DROP`);
    }
  }
  return rules;
}

/**
 * A drop-in for docker.service that writes the chain before dockerd starts (and so before it
 * restarts containers at boot, when the kernel's tables are empty). A failure stops docker:
 * no container runs unfiltered.
 */
export function firewallDropIn(rules: readonly string[]): string {
  return [
    "# modelshare: who may reach the service ports, in place before docker starts its containers",
    "[Service]",
    `ExecStartPre=-${IPTABLES} -w -N DOCKER-USER`,
    `ExecStartPre=-${IPTABLES} -w -N ${CHAIN}`,
    `ExecStartPre=${IPTABLES} -w -F ${CHAIN}`,
    ...rules.map((r) => `ExecStartPre=${IPTABLES} -w ${r}`),
    `ExecStartPre=/bin/sh -c '${IPTABLES} -w -C DOCKER-USER -j ${CHAIN} 2>/dev/null || ${IPTABLES} -w -I DOCKER-USER -j ${CHAIN}'`,
  ].join("\n");
}
