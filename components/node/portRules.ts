/**
 * Ports a node already uses for what modelshare (or the system it sets up) runs there, so a
 * service port or an SSH port on one of them would fail to bind or take the port from sshd,
 * smbd, nfsd or Ollama. Checked for tcp and udp alike: one number, one owner, on each node.
 */

import type { Add } from "../concern";

interface PortNode {
  name: string;
  port: number;
  roles: readonly string[];
}

interface PortSite {
  nodes: readonly PortNode[];
  smb: { enabled: boolean };
  nfs: { enabled: boolean };
  ollama: { nodes: readonly string[] };
  services: Record<string, { enabled: boolean; nodes: ReadonlyArray<{ name: string }>; ports: ReadonlyArray<{ host: number }> }>;
}

/** Samba (smbd 445 and 139; nmbd 137 and 138, which Debian's samba package starts too). */
export const SMB_PORTS = [137, 138, 139, 445];
/** NFSv4 (2049) and rpcbind (111), which nfs-kernel-server and nfs-ganesha bring. */
export const NFS_PORTS = [2049, 111];
/** The host Ollama the ollama installer points at the storage (its default OLLAMA_HOST). */
export const OLLAMA_PORT = 11434;

/** What holds each port on a node that is not a service's: [port, the key that fixes it, what]. */
function systemPorts(site: PortSite, i: number, withSsh: boolean): Array<[number, string, string]> {
  const node = site.nodes[i];
  const out: Array<[number, string, string]> = [];
  if (withSsh) out.push([node.port, `nodes[${i}].port`, `${node.name}'s SSH port`]);
  if (site.smb.enabled && node.roles.includes("smb")) SMB_PORTS.forEach((p) => out.push([p, "smb.enabled", `an SMB port (Samba on ${node.name})`]));
  if (site.nfs.enabled && node.roles.includes("nfs-server"))
    NFS_PORTS.forEach((p) => out.push([p, "nfs.enabled", `an NFS port (the NFS server on ${node.name})`]));
  const o = site.ollama.nodes.findIndex((n) => n.toLowerCase() === node.name.toLowerCase());
  if (o >= 0) out.push([OLLAMA_PORT, `ollama.nodes[${o}]`, `the port of the host Ollama on ${node.name}`]);
  return out;
}

export function checkPorts(site: PortSite, add: Add): void {
  site.nodes.forEach((node, i) => {
    const hit = systemPorts(site, i, false).find(([p]) => p === node.port);
    if (hit) add(`nodes[${i}].port`, `${node.port} is ${hit[2]} (${hit[1]}); sshd cannot listen there too: choose another SSH port`);
  });
  for (const [service, svc] of Object.entries(site.services)) {
    if (!svc.enabled) continue;
    for (const entry of svc.nodes) {
      const i = site.nodes.findIndex((n) => n.name.toLowerCase() === entry.name.toLowerCase());
      if (i < 0) continue; // said by checkServices
      const taken = systemPorts(site, i, true);
      svc.ports.forEach((p, j) => {
        const hit = taken.find(([port]) => port === p.host);
        if (hit) add(`services.${service}.ports[${j}].host`, `${p.host} is ${hit[2]} (${hit[1]}); publish the service on another port`);
      });
    }
  }
}
