import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { runProgram, type NodeTarget } from "../node/command";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import { ownerArgs } from "../storage/layout";
import type { Storage } from "../storage/schema";
import type { ContainerSpec } from "./spec";
import { sshDir, sshOpts, writeSshFiles } from "./sshFiles";

const DOCKER = shellLib(__dirname, "docker");

export interface DockerHostArgs {
  node: NodeTarget;
  storage: Storage;
  /** The node's containers (their images that must already be there). */
  containers: ContainerSpec[];
  /** The NFS mount units the storage arrives by on a worker; none on the storage node. */
  mountUnits: string[];
  /** The user the provider talks to the daemon as: the SSH user, "" for whoever runs a local program. */
  dockerUser: string;
  token?: string;
}

/**
 * Docker on one node: the engine installed and running (and started after the NFS mount at
 * boot), then one docker provider that reaches it, configured only once the install has run.
 */
export class DockerHost extends pulumi.ComponentResource {
  readonly provider: docker.Provider;

  constructor(name: string, args: DockerHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:services:DockerHost", name, {}, opts);
    const node = args.node;
    const install = runProgram(`${name}-converge`, node, {
      text: renderDockerHost(args.dockerUser, args.containers, args.storage, args.mountUnits),
      removes: args.mountUnits.length > 0,
      token: args.token,
    }, { parent: this });
    // The provider's inputs come from the install's output: it connects only after the install,
    // and a preview of a fresh site (output unknown) does not dial a daemon that is not there.
    const ready = <T>(value: pulumi.Input<T>) => pulumi.all([install.stdout, value]).apply(([, v]) => v);
    if (node.local) {
      this.provider = new docker.Provider(`${name}-provider`, { host: ready("unix:///var/run/docker.sock") }, { parent: this });
    } else {
      const dir = sshDir(pulumi.getProject(), pulumi.getStack());
      const target = node;
      // The key is written from inside the secret; only the paths come out (they are not secret).
      const files = pulumi.unsecret(pulumi.secret(target.privateKey).apply((key) => writeSshFiles(dir, target, key)));
      this.provider = new docker.Provider(`${name}-provider`, {
        host: ready(`ssh://${target.user}@${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`),
        sshOpts: ready(files.apply((f) => sshOpts(f, target.hostKey !== undefined))),
      }, { parent: this });
    }
    this.registerOutputs({});
  }
}

/** As root (the engine, its unit, the images): nothing inside the storage tree. */
export function renderDockerHost(dockerUser: string, containers: readonly ContainerSpec[], s: Storage, mountUnits: readonly string[]): string {
  const images = [...new Map(containers.filter((c) => c.local).map((c) => [c.image, c.service])).entries()];
  return renderProgram({
    title: `docker for ${containers.map((c) => c.service).join(", ")}`,
    libs: [SYSTEM, DOCKER],
    root: s.root,
    owner: ownerArgs(s),
    converge: {
      privileged: [
        call("ensure_packages", "docker.io"),
        ...(mountUnits.length > 0 ? [call("docker_after_mount", mountUnits.join(" "))] : []),
        call("ensure_service", "docker"),
        call("docker_user", dockerUser),
        ...images.map(([image, service]) => call("docker_image", image, service)),
        // Docker (root) resolves bind sources itself: a folder the owner swapped for a link
        // would mount whatever the link points at. Each source is checked here, link by link.
        ...[...new Set(containers.flatMap((c) => c.mounts.map((m) => m.source)))].map((src) => call("require_no_link", src)),
      ],
    },
    // Docker stays installed (other containers may use it); only modelshare's drop-in goes.
    remove: mountUnits.length > 0 ? { privileged: ["docker_no_drop_in"] } : undefined,
  });
}
