import { planItem, type Concern } from "../concern";
import { cacheItemName } from "../cache/index";
import { isLocal } from "../node/hostRules";
import { mountCommand, remote } from "./exports";
import { renderNfsMount } from "./mount";
import { nfsServerNode, nfsWorkers } from "./nodes";
import { checkNfsSection, nfsSchema } from "./schema";
import { renderNfsServer } from "./server";

const sections = { nfs: nfsSchema };

/** The storage root exported from the storage node (kernel nfsd or nfs-ganesha), mounted by each worker. */
export const nfs: Concern<typeof sections> = {
  name: "nfs",
  sections,
  check(site, add) {
    checkNfsSection(site.nfs, site.storage, add);
    if (!site.nfs.enabled) return;
    const server = site.nodes.find((n) => n.roles.includes("nfs-server"));
    if (!server) {
      add("nfs.enabled", "is true, but no node has the nfs-server role; add nfs-server to the storage node's roles");
      return;
    }
    const workers = nfsWorkers(site);
    if (workers.length > 0 && isLocal(server))
      add("nfs.enabled", `the storage node's host is ${server.host}, which workers cannot reach; give it the address they use`);
    workers.forEach((w) => {
      if (isLocal(w)) add("nfs.enabled", `worker ${w.name}'s host is ${w.host}, which cannot be an export's client; give it its address on the network`);
    });
  },
  plan(site, ctx) {
    const server = nfsServerNode(site);
    if (!server) return [];
    const s = site.storage;
    const workers = nfsWorkers(site);
    // Who may mount: the workers' hosts, then nfs.clients. After the layout and the links.
    const clients = [...new Set([...workers.map((w) => w.host), ...site.nfs.clients])];
    const exported = planItem({
      kind: "nfs-server",
      type: "modelshare:nfs:NfsServer",
      name: `${server.name}-nfs-export`,
      node: server,
      after: ctx.ready(ctx.storageNode, true),
      programs: [{ text: renderNfsServer(site.nfs, s, clients, server.host), removes: true }],
      outputs: { export: remote(server.host, s.root), mountCommand: mountCommand(site.nfs, s, server.host) },
    });
    // Every mount waits for the export (and its marker).
    const mounts = workers.map((w) =>
      planItem({
        kind: "nfs-mount",
        type: "modelshare:nfs:NfsMount",
        name: `${w.name}-nfs-mount`,
        node: w,
        // With nfs.cache, after the worker's cache, so that the first mount already uses it.
        after: [exported.name, ...(site.nfs.cache.enabled ? [cacheItemName(w)] : [])],
        programs: [{ text: renderNfsMount(site.nfs, s, server.host), removes: true }],
        outputs: { mountPoint: site.nfs.mountPoint },
      }),
    );
    return [exported, ...mounts];
  },
};
