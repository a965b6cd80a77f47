import type { Nfs } from "../nfs/schema";
import type { Storage } from "../storage/schema";
import { SERVICE_INFO, SERVICES, type Services } from "./schema";
import { checkServiceAccess } from "./bindRules";
import { ownEnv } from "./spec";
import { isRootUser, parseUser } from "./userRules";
import type { Add } from "../concern";

interface NodeRoles {
  name: string;
  host: string;
  roles: readonly string[];
}

/**
 * The services' rules that need the rest of the site: each service's nodes are workers that have
 * the storage (the storage node itself, or a worker that mounts it over NFS), ports are free,
 * the container has a uid to write as and an output folder to write to.
 */
export function checkServices(site: { nodes: readonly NodeRoles[]; storage: Storage; nfs: Nfs; services: Services }, add: Add): void {
  const ports = new Map<string, string>();
  for (const service of SERVICES) {
    const svc = site.services[service];
    const at = `services.${service}`;
    const seen = new Set<string>();
    svc.nodes.forEach((entry, i) => {
      const key = `${at}.nodes[${i}]`;
      const node = site.nodes.find((n) => n.name.toLowerCase() === entry.name.toLowerCase());
      if (!node) return add(key, `no node is named "${entry.name}"`);
      if (seen.has(node.name)) return add(key, `lists ${node.name} twice`);
      seen.add(node.name);
      if (!node.roles.includes("worker")) return add(key, `node "${node.name}" has no worker role; add worker to its roles, or run the service elsewhere`);
      if (!svc.enabled) return;
      const storageNode = node.roles.includes("storage");
      if (!storageNode && !site.nfs.enabled)
        add(
          key,
          `${node.name} is not the storage node and nfs.enabled is false, so it has no storage to give the container; enable nfs or run the service on the storage node`,
        );
      if (svc.modelsWritable && site.storage.intake === "staging")
        add(
          `${at}.modelsWritable`,
          "is true, but storage.intake is staging: only the intake writes the model store, so that services see validated models only; drop modelsWritable (downloads belong in staging), or use intake: direct",
        );
      else if (!storageNode && site.nfs.enabled && site.nfs.modelsReadOnly && svc.modelsWritable)
        add(`${at}.modelsWritable`, `is true, but nfs.modelsReadOnly gives ${node.name} the models read-only; drop one of them`);
      svc.ports.forEach((p, j) => {
        const id = `${node.name}/${p.host}/${p.protocol}`;
        const other = ports.get(id);
        if (other) add(`${at}.ports[${j}].host`, `${p.protocol} port ${p.host} on ${node.name} is already ${other}'s; choose another`);
        else ports.set(id, `${at}.ports[${j}]`);
      });
    });
    if (!svc.enabled) continue;
    if (svc.nodes.length === 0 && svc.target === "nodes") add(`${at}.nodes`, "is empty; list the worker nodes that run the service, or set enabled: false");
    checkServiceAccess(at, svc, site.nodes, add);
    if (service !== "ollama" && !svc.image) {
      add(
        `${at}.image`,
        `is required: modelshare names no default image for ${SERVICE_INFO[service].title}; name the one you use (the README lists widely used ones and the folders each expects)`,
      );
    }
    // Decided on the numbers docker gets: the user as written, else the storage owner's ids.
    const owner = site.storage.owner;
    const ids = svc.user !== undefined ? parseUser(svc.user) : owner === "unmanaged" ? undefined : owner;
    if (typeof ids === "object" && isRootUser(ids) && !svc.allowRootUser) {
      add(
        `${at}.user`,
        svc.user !== undefined
          ? `"${svc.user}" runs the container with root's uid or gid; its writes through the shared folders would be root's. Use the storage owner's uid:gid (the default), or set allowRootUser: true if the image cannot run otherwise`
          : `is unset, so the container runs as the storage owner, ${ids.uid}:${ids.gid}: root's uid or gid. Set user to an unprivileged uid:gid such as "1000:1000", or set allowRootUser: true if you mean it`,
      );
    }
    if (!svc.user && site.storage.owner === "unmanaged") {
      add(`${at}.user`, 'is required while storage.owner is unmanaged: modelshare cannot tell which uid owns the files; set it, e.g. user: "1000:1000"');
    }
    const output = SERVICE_INFO[service].output;
    if (output && !site.storage.outputs.includes(output)) {
      add(
        `${at}.enabled`,
        `${SERVICE_INFO[service].title} writes to ${site.storage.user}/output/${output}, which storage.outputs does not list; add "${output}" to storage.outputs`,
      );
    }
    for (const name of Object.keys(ownEnv(service, svc))) {
      if (name in svc.env) add(`${at}.env.${name}`, `is set by modelshare (from ${at}.paths.models); remove it here`);
    }
    const paths = Object.entries(svc.paths);
    paths.forEach(([k, p], i) =>
      paths.slice(i + 1).forEach(([k2, p2]) => {
        if (p === p2 || p2.startsWith(`${p}/`) || p.startsWith(`${p2}/`))
          add(`${at}.paths.${k2}`, `"${p2}" overlaps paths.${k} ("${p}"); give each a folder of its own`);
      }),
    );
  }
}
