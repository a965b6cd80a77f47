import { homedir } from "node:os";
import * as pulumi from "@pulumi/pulumi";
import { isLocal, parseSite, SECTIONS, SiteConfigError, type Site } from "./config";

/**
 * The one module that reads pulumi.Config: it gathers the stack's `modelshare:*` keys, validates
 * them with parseSite and loads each SSH node's private key from its secret config key. Every
 * problem is reported at once, before any resource is declared.
 */
const NAMESPACE = "modelshare";

// Pulumi marks which config keys were `secure:` in the stack file; the check is exported by
// the runtime but not typed, so reach it through a narrow cast.
const isConfigSecret = (key: string): boolean =>
  (pulumi.runtime as unknown as { isConfigSecret(k: string): boolean }).isConfigSecret(key);

const PRIVATE_KEY = /^-----BEGIN ([A-Z0-9]+ )?PRIVATE KEY-----\r?\n[\s\S]+\n-----END ([A-Z0-9]+ )?PRIVATE KEY-----\s*$/;

export function loadSite(): { config: Site; sshKeys: Record<string, pulumi.Output<string>> } {
  const cfg = new pulumi.Config(NAMESPACE);
  const raw: Record<string, unknown> = {};
  for (const section of SECTIONS) {
    const value = cfg.getObject<unknown>(section);
    if (value !== undefined) raw[section] = value;
  }
  const config = parseSite(raw, { homedir: homedir() });

  const problems: string[] = [];
  const keyNames = new Set(config.nodes.filter((n) => !isLocal(n)).map((n) => n.sshKey));
  for (const key of Object.keys(pulumi.runtime.allConfig())) {
    const [ns, name] = key.split(":");
    if (ns === NAMESPACE && !(SECTIONS as readonly string[]).includes(name) && !keyNames.has(name)) {
      problems.push(`${key}: is not a modelshare setting (known: ${[...SECTIONS, ...keyNames].join(", ")}); fix the spelling or remove it`);
    }
  }
  const sshKeys: Record<string, pulumi.Output<string>> = {};
  for (const name of keyNames) {
    const users = config.nodes.filter((n) => n.sshKey === name).map((n) => n.name).join(", ");
    const value = cfg.get(name);
    const fix = `pulumi config set --secret ${name} < ~/.ssh/id_ed25519`;
    if (value === undefined) {
      problems.push(`${NAMESPACE}:${name}: missing; node(s) ${users} need their SSH private key there: ${fix}`);
    } else if (!isConfigSecret(`${NAMESPACE}:${name}`)) {
      problems.push(`${NAMESPACE}:${name}: is stored in plain text; store the private key as a secret instead: pulumi config rm ${name} && ${fix}`);
    } else if (!PRIVATE_KEY.test(value)) {
      problems.push(`${NAMESPACE}:${name}: does not hold a private key (expected the whole file, from -----BEGIN … PRIVATE KEY----- to its END line)`);
    }
  }
  if (problems.length > 0) throw new SiteConfigError(problems);
  for (const node of config.nodes.filter((n) => !isLocal(n))) {
    sshKeys[node.name] = cfg.requireSecret(node.sshKey);
  }
  return { config, sshKeys };
}
