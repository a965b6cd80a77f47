/** `pulumi up`'s view of the stack config (index.ts): the only module that reads the Pulumi runtime's config. */
import * as pulumi from "@pulumi/pulumi";
import type { Site } from "./config";
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
} {
  const { config, sshKeys, smbPasswords, convergeToken } = siteFromConfig(pulumi.runtime.allConfig(), isConfigSecret);
  const secret = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, pulumi.secret(v)]));
  return { config, sshKeys: secret(sshKeys), smbPasswords: secret(smbPasswords), convergeToken };
}
