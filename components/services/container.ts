import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { call } from "../shell/quote";
import { renderProgram, shellLib } from "../shell/script";
import { ownerArgs } from "../storage/layout";
import type { Storage } from "../storage/schema";
import { SPEC_LABEL, type ContainerSpec } from "./spec";

const DOCKER = shellLib(__dirname, "docker");

export interface ServiceContainerArgs {
  spec: ContainerSpec;
  /** The node's docker provider (DockerHost). */
  provider: docker.Provider;
}

/**
 * One service on one node: a docker.Container made exactly from its spec (bind mounts, so a
 * missing storage path fails the container instead of becoming an empty folder). Its name is
 * fixed per node, so a changed spec replaces it delete-first. Destroy removes the container;
 * everything it wrote is on the shared storage and stays.
 */
export class ServiceContainer extends pulumi.ComponentResource {
  readonly containerName: pulumi.Output<string>;

  constructor(name: string, args: ServiceContainerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:services:ServiceContainer", name, {}, opts);
    const c = args.spec;
    const container = new docker.Container(`${name}-container`, {
      name: c.name,
      image: c.image,
      user: c.user,
      envs: c.envs,
      mounts: c.mounts,
      ports: c.ports,
      restart: c.restart,
      deviceRequests: c.deviceRequests,
      labels: c.labels,
      mustRun: true,
    }, { parent: this, provider: args.provider, deleteBeforeReplace: true });
    this.containerName = container.name;
    this.registerOutputs({ containerName: this.containerName });
  }
}

/**
 * The check variant of a container (npm run check): it is there, runs, and carries the digest
 * of the declared spec. Never converged: the docker provider owns the container.
 */
export function renderContainerCheck(c: ContainerSpec, s: Storage): string {
  return renderProgram({
    title: `container ${c.name}`,
    libs: [DOCKER],
    root: s.root,
    owner: ownerArgs(s),
    converge: { privileged: [call("docker_container", c.name, c.labels.find((l) => l.label === SPEC_LABEL)?.value ?? "")] },
  });
}
