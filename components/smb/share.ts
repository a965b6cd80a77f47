import { posix } from "node:path";
import { call, callRows } from "../shell/quote";
import { chmodMode, DIRS, renderProgram, shellLib, SYSTEM } from "../shell/script";
import { linkFolders, modelStoreDir } from "../storage/paths";
import type { Storage } from "../storage/schema";
import { reachedFolders, renderRecycleUnits, renderSmbConf, shareMode, sharePath } from "./conf";
import type { Smb } from "./schema";

const SAMBA = shellLib(__dirname, "samba");
const PASSWORDS = shellLib(__dirname, "passwords");

/** Where a user finds one folder of a share: Explorer's path and Finder's URL. */
export interface ShareFolder {
  windows: string;
  finder: string;
}

/**
 * Packages, the owner's account and the users' accounts, share names the admin's configuration
 * does not hold, the recycle bin (one filesystem, the bin made before smbd needs it), Samba's
 * configuration, smbd.
 */
export function renderSmbShare(smb: Smb, s: Storage): string {
  const units = renderRecycleUnits(smb, s);
  const path = sharePath(smb, s);
  const bin = smb.recycle.enabled
    ? [
        callRows(
          "smb_one_filesystem",
          reachedFolders(smb, s).map((f) => [f]),
          [path],
        ),
        call("smb_bin", path, chmodMode(shareMode(smb, s))),
      ]
    : [];
  return renderProgram({
    title: `SMB share ${smb.share} of ${path}`,
    libs: [SYSTEM, DIRS, SAMBA, PASSWORDS],
    storage: s,
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
    storage: s,
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
  const wanted = [...linkFolders(s).map((f) => f.folder), posix.join(user, "output"), posix.join(user, "input"), posix.join(user, "workflows")].filter((f) =>
    f.startsWith(`${base}/`),
  );
  const folders = Object.fromEntries(
    wanted.map((f) => {
      const rel = posix.relative(base, f);
      return [rel, { windows: `${unc}\\${rel.split("/").join("\\")}\\`, finder: `${url}/${rel.split("/").map(encodeURIComponent).join("/")}/` }];
    }),
  );
  return { unc, url, folders };
}
