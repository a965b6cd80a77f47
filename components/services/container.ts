import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";
import { SPEC_LABEL, type ContainerSpec } from "./spec";

const DOCKER = shellLib(__dirname, "docker");

/**
 * The check variant of a container (npm run check): it is there, runs, and carries the digest
 * of the declared spec. Never converged: the docker provider owns the container.
 */
export function renderContainerCheck(c: ContainerSpec, s: Storage): string {
  return renderProgram({
    title: `container ${c.name}`,
    // docker.sh leans on system.sh; the check runs none of that, but loads what it calls.
    libs: [SYSTEM, DOCKER],
    storage: s,
    converge: { privileged: [call("docker_container", c.name, c.labels.find((l) => l.label === SPEC_LABEL)?.value ?? "")] },
  });
}
