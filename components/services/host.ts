import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";
import { firewallDropIn, firewallRules } from "./firewall";
import type { ContainerSpec } from "./spec";

const DOCKER = shellLib(__dirname, "docker");

/** As root (the engine, its unit, the images): nothing inside the storage tree. */
export function renderDockerHost(dockerUser: string, containers: readonly ContainerSpec[], s: Storage, mountUnits: readonly string[]): string {
  const rules = firewallRules(containers);
  const images = [...new Map(containers.filter((c) => c.local).map((c) => [c.image, c.service])).entries()];
  return renderProgram({
    title: `docker for ${containers.map((c) => c.service).join(", ")}`,
    libs: [SYSTEM, DOCKER],
    storage: s,
    converge: {
      privileged: [
        call("ensure_packages", "docker.io"),
        ...(mountUnits.length > 0 ? [call("docker_after_mount", mountUnits.join(" "))] : []),
        call("ensure_service", "docker"),
        call("docker_user", dockerUser),
        ...images.map(([image, service]) => call("docker_image", image, service)),
        // Who may reach the ports: written before the provider makes the containers.
        call("docker_firewall", firewallDropIn(rules), ...rules),
        // Docker (root) resolves bind sources itself, at every start: a folder the owner could
        // swap for a link would mount whatever the link points at. Each source is checked here,
        // and so is the skeleton above it (nobody but root can rename a folder on the way).
        ...[...new Set(containers.flatMap((c) => c.mounts.map((m) => m.source)))].map((src) => call("docker_bind_source", src)),
      ],
    },
    // Docker stays installed (other containers may use it); modelshare's drop-ins and chain go.
    remove: { privileged: ["docker_no_firewall", ...(mountUnits.length > 0 ? ["docker_no_drop_in"] : [])] },
  });
}
