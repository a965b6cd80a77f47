import { planItem, type Concern, type PlanItem } from "../concern";
import { isLocal } from "../node/hostRules";
import { mountsOf, mountUnitName } from "../nfs/exports";
import { nfsServerNode } from "../nfs/nodes";
import { renderContainerCheck } from "./container";
import { renderDockerHost } from "./host";
import { checkServices } from "./rules";
import { SERVICES, servicesSchema } from "./schema";
import { containerSpec } from "./spec";

const sections = { services: servicesSchema };

/**
 * Each node that runs services: docker (one per node), then one container per service. The
 * storage node gives its containers the local folders; a worker, its NFS mount.
 */
export const services: Concern<typeof sections> = {
  name: "services",
  sections,
  check: (site, add) => checkServices(site, add),
  plan(site, ctx) {
    const s = site.storage;
    const server = nfsServerNode(site);
    const out: PlanItem[] = [];
    for (const node of site.nodes) {
      const local = node.name === ctx.storageNode.name;
      const containers = SERVICES.flatMap((service) => {
        const svc = site.services[service];
        const entry = svc.enabled ? svc.nodes.find((n) => n.name.toLowerCase() === node.name.toLowerCase()) : undefined;
        return entry ? [containerSpec(service, svc, entry.gpus, s, ctx.base(node), node.host)] : [];
      });
      if (containers.length === 0) continue;
      const mountUnits = local || !server ? [] : mountsOf(site.nfs, s, server.host).map((m) => mountUnitName(m.where));
      // Who talks to the daemon: the SSH user; on a local node, whoever runs the program ("").
      const dockerUser = isLocal(node) ? "" : node.user;
      // Docker waits for the node's storage: the NFS mount on a worker, the layout and links on
      // the storage node. Every container on the node waits for docker, and so for both.
      const docker = planItem({
        kind: "docker",
        type: "modelshare:services:DockerHost",
        name: `${node.name}-docker`,
        node,
        after: ctx.ready(node, true),
        programs: [{ text: renderDockerHost(dockerUser, containers, s, mountUnits), removes: true }],
      });
      out.push(docker);
      for (const spec of containers) {
        // The container is the docker provider's; its program is only checked (npm run check).
        out.push(
          planItem({
            kind: "service",
            type: "modelshare:services:ServiceContainer",
            name: `${node.name}-${spec.service}`,
            node,
            spec,
            after: [docker.name, ...(local ? [] : ctx.ready(node))],
            programs: [{ suffix: "container", text: renderContainerCheck(spec, s), removes: false, converges: false }],
          }),
        );
      }
    }
    return out;
  },
};
