import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ClusterObjects } from "./objects";

export interface ClusterServicesArgs {
  /** What the cluster gets (objects.ts). */
  objects: ClusterObjects;
  /** The kubeconfig (secret); unset: the ambient one (KUBECONFIG, ~/.kube/config). */
  kubeconfig?: pulumi.Input<string>;
  /** The kubeconfig's context (default: its current one). */
  context?: string;
}

/**
 * The site's services in an existing cluster: one provider for it, then each volume and its
 * claim, and each service's Deployment (after its claims) and Service. The objects are declared
 * as objects.ts gives them, names included: a second site in the same namespace would meet its
 * own names, not modelshare's.
 */
export class ClusterServices extends pulumi.ComponentResource {
  /** Each service's URL inside the cluster. */
  readonly urls: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ClusterServicesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:kubernetes:ClusterServices", name, {}, opts);
    const provider = new k8s.Provider(`${name}-provider`, { kubeconfig: args.kubeconfig, context: args.context }, { parent: this });
    const claims = new Map<string, pulumi.Resource>();
    for (const v of args.objects.volumes) {
      const claim = v.claim.metadata.name as string;
      const volume = new k8s.core.v1.PersistentVolume(`${name}-pv-${claim}`, v.volume, { parent: this, provider });
      claims.set(claim, new k8s.core.v1.PersistentVolumeClaim(`${name}-pvc-${claim}`, v.claim, { parent: this, provider, dependsOn: [volume] }));
    }
    for (const s of args.objects.services) {
      const uses = (s.deployment.spec.template.spec.volumes as Array<{ name: string }>).map((v) => claims.get(v.name) as pulumi.Resource);
      new k8s.apps.v1.Deployment(`${name}-${s.service}`, s.deployment as k8s.apps.v1.DeploymentArgs, { parent: this, provider, dependsOn: uses });
      new k8s.core.v1.Service(`${name}-${s.service}-service`, s.svc, { parent: this, provider });
    }
    this.urls = pulumi.output(Object.fromEntries(args.objects.services.map((s) => [s.service, s.url])));
    this.registerOutputs({ urls: this.urls });
  }
}
