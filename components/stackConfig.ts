import { homedir } from "node:os";
import { isLocal, parseSite, SECTIONS, SiteConfigError, type Site } from "./config";
import { closest } from "./spelling";

export { closest } from "./spelling";

/**
 * Reads a stack's `modelshare:*` keys: validates the sections with parseSite and loads each SSH
 * node's private key from its secret config key. Every problem is reported at once, before any
 * resource is declared or any node is checked. `pulumi up` reads the keys from the Pulumi
 * runtime (loadSite.ts); the check tool from the stack's config (Automation API), or the lab's.
 * Pure: no Pulumi here, so the check tool loads none.
 */
const NAMESPACE = "modelshare";
/** `pulumi config set modelshare:convergeToken <new value>` re-runs every program (repair). */
export const TOKEN_KEY = "convergeToken";

const PRIVATE_KEY = /^-----BEGIN ([A-Z0-9]+ )?PRIVATE KEY-----\r?\n[\s\S]+\n-----END ([A-Z0-9]+ )?PRIVATE KEY-----\s*$/;

export interface StackSite {
  config: Site;
  /** Each SSH node's private key, by node name (plain: callers keep it secret). */
  sshKeys: Record<string, string>;
  /** Each SMB user's password, by user name (plain: callers keep it secret). */
  smbPasswords: Record<string, string>;
  convergeToken?: string;
  /** The cluster's kubeconfig (kubernetes.kubeconfigKey; plain: callers keep it secret). Unset: the ambient one. */
  kubeconfig?: string;
}

/**
 * `values`: the stack's config as `modelshare:<key>` -> value (objects as JSON text, as the
 * engine passes them); `isSecret` tells which keys were stored encrypted.
 */
export function siteFromConfig(
  values: Record<string, string>,
  isSecret: (key: string) => boolean,
  opts: { opaque?: (key: string) => boolean } = {},
): StackSite {
  // A secret still encrypted (npm run validate reads the stack file itself): present, its content unknown.
  const opaque = opts.opaque ?? (() => false);
  const get = (key: string): string | undefined => values[`${NAMESPACE}:${key}`];
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const section of SECTIONS) {
    const value = get(section);
    if (value === undefined) continue;
    try {
      raw[section] = JSON.parse(value);
    } catch {
      problems.push(`${NAMESPACE}:${section}: is not structured YAML (a map or a list); write it as in the README's example`);
    }
  }
  if (problems.length > 0) throw new SiteConfigError(problems);
  const config = parseWithSpelling(raw, values);

  const keyNames = new Set(config.nodes.filter((n) => !isLocal(n)).map((n) => n.sshKey));
  const smbUsers = config.smb.enabled ? config.smb.users : [];
  const kubeKey = config.kubernetes.enabled ? config.kubernetes.kubeconfigKey : undefined;
  const known = [...SECTIONS, TOKEN_KEY, ...keyNames, ...smbUsers.map((u) => u.passwordKey), ...(kubeKey ? [kubeKey] : [])];
  for (const key of Object.keys(values)) {
    const [ns, name] = key.split(":");
    if (ns === NAMESPACE && !known.includes(name)) {
      const near = closest(name, known);
      problems.push(
        near
          ? `${key}: is not a modelshare setting; did you mean ${NAMESPACE}:${near}? (known: ${known.join(", ")})`
          : `${key}: is not a modelshare setting (known: ${known.join(", ")}); fix the spelling or remove it`,
      );
    }
  }
  const token = get(TOKEN_KEY);
  if (token !== undefined && !/^[\x20-\x7e]{1,200}$/.test(token)) {
    problems.push(`${NAMESPACE}:${TOKEN_KEY}: must be one line of at most 200 printable characters (npm run repair sets it to the time of the repair)`);
  }
  for (const name of keyNames) {
    const users = config.nodes
      .filter((n) => n.sshKey === name)
      .map((n) => n.name)
      .join(", ");
    const value = get(name);
    const fix = `pulumi config set --secret ${name} < ~/.ssh/id_ed25519`;
    if (value === undefined) {
      problems.push(`${NAMESPACE}:${name}: missing; node(s) ${users} need their SSH private key there: ${fix}`);
    } else if (!isSecret(`${NAMESPACE}:${name}`)) {
      problems.push(`${NAMESPACE}:${name}: is stored in plain text; store the private key as a secret instead: pulumi config rm ${name} && ${fix}`);
    } else if (!opaque(`${NAMESPACE}:${name}`) && !PRIVATE_KEY.test(value)) {
      problems.push(`${NAMESPACE}:${name}: does not hold a private key (expected the whole file, from -----BEGIN … PRIVATE KEY----- to its END line)`);
    }
  }
  for (const user of smbUsers) {
    const key = `${NAMESPACE}:${user.passwordKey}`;
    const fix = `pulumi config set --secret ${user.passwordKey}`;
    const value = get(user.passwordKey);
    // Never the value itself in a message: only what is wrong with it.
    if (value === undefined) problems.push(`${key}: missing; the SMB user ${user.name} needs a password there: ${fix}`);
    else if (!isSecret(key))
      problems.push(`${key}: is stored in plain text; store the password as a secret instead: pulumi config rm ${user.passwordKey} && ${fix}`);
    else if (opaque(key)) continue;
    else if (value.length === 0 || value.length > 128) problems.push(`${key}: must hold 1 to 128 characters (it holds ${value.length}): ${fix}`);
    else if (/[\u0000-\u001f\u007f]/.test(value))
      problems.push(`${key}: holds a control character (a line break?), which Samba's smbpasswd cannot take; set it again: ${fix}`);
  }
  if (kubeKey) {
    const key = `${NAMESPACE}:${kubeKey}`;
    const fix = `pulumi config set --secret ${kubeKey} < ~/.kube/config`;
    const value = get(kubeKey);
    if (value === undefined) problems.push(`${key}: missing; kubernetes.kubeconfigKey names it for the cluster's kubeconfig: ${fix}`);
    else if (!isSecret(key)) problems.push(`${key}: is stored in plain text; store the kubeconfig as a secret instead: pulumi config rm ${kubeKey} && ${fix}`);
    else if (!opaque(key) && !/^clusters:/m.test(value))
      problems.push(`${key}: does not hold a kubeconfig (no clusters: in it); set it again from the whole file: ${fix}`);
  }
  if (problems.length > 0) throw new SiteConfigError(problems);
  const smbPasswords = Object.fromEntries(smbUsers.map((u) => [u.name, get(u.passwordKey) as string]));
  const sshKeys = Object.fromEntries(config.nodes.filter((n) => !isLocal(n)).map((n) => [n.name, get(n.sshKey) as string]));
  return { config, sshKeys, smbPasswords, convergeToken: token, kubeconfig: kubeKey ? get(kubeKey) : undefined };
}

/**
 * parseSite, but a section written under a misspelt key (`modelshare:storge`) is named as such,
 * with the section it most likely meant, instead of that section being reported missing.
 */
function parseWithSpelling(raw: Record<string, unknown>, values: Record<string, string>): Site {
  const misspelt = new Map<string, string>();
  for (const key of Object.keys(values)) {
    const [ns, name] = key.split(":");
    if (ns !== NAMESPACE || SECTIONS.includes(name) || name === TOKEN_KEY) continue;
    const near = closest(name, SECTIONS);
    if (near && values[`${NAMESPACE}:${near}`] === undefined) misspelt.set(near, key);
  }
  try {
    return parseSite(raw, { homedir: homedir() });
  } catch (e) {
    if (!(e instanceof SiteConfigError) || misspelt.size === 0) throw e;
    const named = [...misspelt].map(
      ([section, key]) => `${key}: is not a modelshare setting; did you mean ${NAMESPACE}:${section}? (known: ${SECTIONS.join(", ")})`,
    );
    throw new SiteConfigError([...named, ...e.problems.filter((p) => ![...misspelt.keys()].some((section) => p.startsWith(`${section}: `)))]);
  }
}
