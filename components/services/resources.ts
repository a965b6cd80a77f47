import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { runProgram, type NodeTarget } from "../node/command";
import type { PlannedProgram } from "../concern";
import { type ContainerSpec } from "./spec";
import { legacySshDir, removeLegacySshFiles, removeSshFilesCommand, sshOpts, sshPlace, writeSshFiles } from "./sshFiles";

/**
 * The services' own resources: docker's provider and the containers it makes are not programs,
 * so they keep a component each (the plan still decides which, where and after what).
 */
export interface DockerHostArgs {
  node: NodeTarget;
  /** The install (the plan's docker item's program). */
  program: PlannedProgram;
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
    // A component's dependsOn does not reach its children by itself: the install waits too.
    const install = runProgram(
      args.program.name,
      node,
      { text: args.program.text, removes: args.program.removes, token: args.token },
      { parent: this, dependsOn: opts?.dependsOn },
    );
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
      const files = pulumi.unsecret(
        pulumi.secret(target.privateKey).apply((key) => {
          removeLegacySshFiles(legacySshDir(project, stack), (m) => void pulumi.log.info(m, this));
          return writeSshFiles(dir, target, agent ? undefined : key);
        }),
      );
      // Deleted by the engine after the containers and the provider (which depend on it): its
      // delete removes the files, on destroy too. No create: the program writes them.
      const held = new command.local.Command(`${name}-ssh-files`, { delete: files.apply(removeSshFilesCommand) }, { parent: this });
      this.provider = new docker.Provider(
        `${name}-provider`,
        {
          host: ready(`ssh://${target.user}@${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`),
          sshOpts: ready(files.apply((f) => sshOpts(f, target.hostKey !== undefined))),
        },
        { parent: this, dependsOn: [held] },
      );
    }
    this.registerOutputs({});
  }
}

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
    const container = new docker.Container(
      `${name}-container`,
      {
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
      },
      { parent: this, provider: args.provider, deleteBeforeReplace: true },
    );
    this.containerName = container.name;
    this.registerOutputs({ containerName: this.containerName });
  }
}
