import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { runProgram, type NodeTarget } from "../node/command";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import { ownerArgs } from "../storage/layout";
import type { Storage } from "../storage/schema";
import { firewallDropIn, firewallRules } from "./firewall";
import type { ContainerSpec } from "./spec";
import { legacySshDir, removeLegacySshFiles, removeSshFilesCommand, sshOpts, sshPlace, writeSshFiles } from "./sshFiles";

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
      removes: true,
      token: args.token,
    }, { parent: this });
    // The provider's inputs come from the install's output: it connects only after the install,
    // and a preview of a fresh site (output unknown) does not dial a daemon that is not there.
    const ready = <T>(value: pulumi.Input<T>) => pulumi.all([install.stdout, value]).apply(([, v]) => v);
    if (node.local) {
      this.provider = new docker.Provider(`${name}-provider`, { host: ready("unix:///var/run/docker.sock") }, { parent: this });
    } else {
      const project = pulumi.getProject();
      const stack = pulumi.getStack();
      const { dir, agent } = sshPlace(project, stack); // a tmpfs (or ssh-agent), else the run stops here
      const target = node;
      // The key is written from inside the secret; only the paths come out (they are not secret).
      const files = pulumi.unsecret(pulumi.secret(target.privateKey).apply((key) => {
        removeLegacySshFiles(legacySshDir(project, stack), (m) => void pulumi.log.info(m, this));
        return writeSshFiles(dir, target, agent ? undefined : key);
      }));
      // Deleted by the engine after the containers and the provider (which depend on it): its
      // delete removes the files, on destroy too. No create: the program writes them.
      const held = new command.local.Command(`${name}-ssh-files`, { delete: files.apply(removeSshFilesCommand) }, { parent: this });
      this.provider = new docker.Provider(`${name}-provider`, {
        host: ready(`ssh://${target.user}@${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`),
        sshOpts: ready(files.apply((f) => sshOpts(f, target.hostKey !== undefined))),
      }, { parent: this, dependsOn: [held] });
    }
    this.registerOutputs({});
  }
}

/** As root (the engine, its unit, the images): nothing inside the storage tree. */
export function renderDockerHost(dockerUser: string, containers: readonly ContainerSpec[], s: Storage, mountUnits: readonly string[]): string {
  const rules = firewallRules(containers);
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
