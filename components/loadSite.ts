/** `pulumi up`'s view of the stack config (index.ts): the only module that reads the Pulumi runtime's config. */
import * as pulumi from "@pulumi/pulumi";
import { SiteConfigError, type Site } from "./config";
import { siteFromConfig } from "./stackConfig";

// Pulumi marks which config keys were `secure:` in the stack file; the check is exported by
// the runtime but not typed, so reach it through a narrow cast.
const isConfigSecret = (key: string): boolean => (pulumi.runtime as unknown as { isConfigSecret(k: string): boolean }).isConfigSecret(key);

/** The program's view (index.ts): the SSH keys become secret Outputs straight away. */
export function loadSite(): {
  config: Site;
  sshKeys: Record<string, pulumi.Output<string>>;
  smbPasswords: Record<string, pulumi.Output<string>>;
  convergeToken?: string;
  kubeconfig?: pulumi.Output<string>;
} {
  const { config, sshKeys, smbPasswords, convergeToken, kubeconfig } = readConfig();
  const secret = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, pulumi.secret(v)]));
  return {
    config,
    sshKeys: secret(sshKeys),
    smbPasswords: secret(smbPasswords),
    convergeToken,
    kubeconfig: kubeconfig === undefined ? undefined : pulumi.secret(kubeconfig),
  };
}

/**
 * A bad config stops the program as a RunError: the engine prints its message alone, once,
 * without a stack trace (a plain Error is printed with its trace, the problems twice).
 */
function readConfig() {
  try {
    return siteFromConfig(pulumi.runtime.allConfig(), isConfigSecret);
  } catch (e) {
    if (e instanceof SiteConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}
