import { posix } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { runProgram, type NodeTarget } from "../node/command";
import { call, callRows } from "../shell/quote";
import { DIRS, renderProgram, shellLib, SYSTEM } from "../shell/script";
import { chmodMode, ownerArgs } from "../storage/layout";
import { linkFolders, modelStoreDir } from "../storage/paths";
import type { Storage } from "../storage/schema";
import { reachedFolders, renderRecycleUnits, renderSmbConf, shareMode, sharePath } from "./conf";
import type { Smb } from "./schema";

const SAMBA = shellLib(__dirname, "samba");
const PASSWORDS = shellLib(__dirname, "passwords");

export interface SmbShareArgs {
  node: NodeTarget;
  /** How users reach the node (its `host`): the stack outputs' UNC paths and URLs use it. */
  host: string;
  smb: Smb;
  storage: Storage;
  /** Each user's password (secret), by user name. */
  passwords: Record<string, pulumi.Input<string>>;
  token?: string;
}

/** Where a user finds one folder of a share: Explorer's path and Finder's URL. */
export interface ShareFolder {
  windows: string;
  finder: string;
}

/**
 * The SMB share on the storage node. Two commands: the share itself (packages, accounts,
 * Samba's configuration, smbd), whose program `pulumi preview --diff` shows; and the passwords,
 * whose input is secret (so its diff shows only that something changed).
 */
export class SmbShare extends pulumi.ComponentResource {
  readonly unc: pulumi.Output<string>;
  readonly url: pulumi.Output<string>;
  readonly folders: pulumi.Output<Record<string, ShareFolder>>;

  constructor(name: string, args: SmbShareArgs, opts?: pulumi.ComponentResourceOptions) {
    super("modelshare:smb:SmbShare", name, {}, opts);
    const { smb, storage } = args;
    const share = runProgram(`${name}-converge`, args.node, { text: renderSmbShare(smb, storage), removes: true, token: args.token }, { parent: this });
    const missing = smb.users.find((u) => args.passwords[u.name] === undefined);
    if (missing) throw new Error(`modelshare: no SMB password was loaded for ${missing.name}`);
    runProgram(`${name}-passwords`, args.node, {
      text: renderSmbPasswords(smb, storage),
      removes: true,
      token: args.token,
      input: passwordInput(smb.users.map((u) => args.passwords[u.name])),
    }, { parent: this, dependsOn: [share] });
    const where = shareFolders(args.host, smb, storage);
    this.unc = pulumi.output(where.unc);
    this.url = pulumi.output(where.url);
    this.folders = pulumi.output(where.folders);
    this.registerOutputs({ unc: this.unc, url: this.url, folders: this.folders });
  }
}

/** The passwords as the program reads them after itself on stdin: one line each, in order. */
export const passwordInput = (passwords: pulumi.Input<string>[]): pulumi.Output<string> =>
  pulumi.secret(pulumi.all(passwords).apply((p) => p.map((x) => `${x}\n`).join("")));

/**
 * Packages, the owner's account and the users' accounts, share names the admin's configuration
 * does not hold, the recycle bin (one filesystem, the bin made before smbd needs it), Samba's
 * configuration, smbd.
 */
export function renderSmbShare(smb: Smb, s: Storage): string {
  const units = renderRecycleUnits(smb, s);
  const path = sharePath(smb, s);
  const bin = smb.recycle.enabled
    ? [callRows("smb_one_filesystem", reachedFolders(smb, s).map((f) => [f]), [path]), call("smb_bin", path, chmodMode(shareMode(smb, s)))]
    : [];
  return renderProgram({
    title: `SMB share ${smb.share} of ${path}`,
    libs: [SYSTEM, DIRS, SAMBA, PASSWORDS],
    root: s.root,
    owner: ownerArgs(s),
    converge: {
      privileged: [
        call("ensure_packages", "samba", "samba-vfs-modules"),
        "smb_owner",
        call("smb_accounts", ...smb.users.map((u) => u.name)),
        callRows("smb_adoptions", adoptRows(smb)),
        call("smb_folders", path, ...(smb.modelsShare ? [modelStoreDir(s)] : [])),
        call("smb_names", "smb.share", smb.share, ...(smb.modelsShare ? ["smb.modelsShare", smb.modelsShare] : [])),
        ...bin,
        call("smb_conf", renderSmbConf(smb, s)),
        smb.recycle.enabled ? call("smb_recycle", units.service, units.timer) : "smb_no_recycle",
        "smb_live",
      ],
    },
    remove: { privileged: ["smb_no_recycle", "smb_unconf"] },
  });
}

/** Each user: name, whether a Samba account that existed before modelshare may be taken over, the key that says so. */
const adoptRows = (smb: Smb) => smb.users.map((u, i) => [u.name, u.adopt ? "adopt" : "create", `smb.users[${i}].adopt`]);

/** Each user's password from the input, set only when it is not the one set last. */
export function renderSmbPasswords(smb: Smb, s: Storage): string {
  return renderProgram({
    title: `SMB passwords of ${smb.users.map((u) => u.name).join(", ")}`,
    libs: [PASSWORDS],
    root: s.root,
    owner: ownerArgs(s),
    converge: { privileged: [callRows("smb_passwords", adoptRows(smb))] },
    remove: { privileged: ["smb_forget_all"] },
    input: true,
  });
}

/** `\\host\share\a\b\` and `smb://host/share/a/b/` (IPv6: Windows' ipv6-literal.net name). */
export function shareFolders(host: string, smb: Smb, s: Storage): { unc: string; url: string; folders: Record<string, ShareFolder> } {
  const v6 = host.includes(":");
  const uncHost = v6 ? `${host.replace(/:/g, "-").replace(/%/g, "s")}.ipv6-literal.net` : host;
  const urlHost = v6 ? `[${host}]` : host;
  const unc = `\\\\${uncHost}\\${smb.share}`;
  const url = `smb://${urlHost}/${encodeURIComponent(smb.share)}`;
  const base = sharePath(smb, s);
  const user = posix.join(s.root, s.user);
  const wanted = [
    ...linkFolders(s).map((f) => f.folder),
    posix.join(user, "output"), posix.join(user, "input"), posix.join(user, "workflows"),
  ].filter((f) => f.startsWith(`${base}/`));
  const folders = Object.fromEntries(wanted.map((f) => {
    const rel = posix.relative(base, f);
    return [rel, { windows: `${unc}\\${rel.split("/").join("\\")}\\`, finder: `${url}/${rel.split("/").map(encodeURIComponent).join("/")}/` }];
  }));
  return { unc, url, folders };
}
