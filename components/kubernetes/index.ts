import type { Concern } from "../concern";
import { checkKubernetes, kubernetesSchema } from "./schema";

const sections = { kubernetes: kubernetesSchema };

/**
 * Services in an existing Kubernetes cluster: its section and rules. It plans nothing on the
 * nodes (its objects are the cluster's, made by the site's ClusterServices component).
 */
export const kubernetes: Concern<typeof sections> = {
  name: "kubernetes",
  sections,
  check(site, add) {
    checkKubernetes(site, add);
  },
  plan() {
    return [];
  },
};
