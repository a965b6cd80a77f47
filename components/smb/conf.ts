import { posix } from "node:path";
import { layoutDirs, linkFolders, modelStoreDir, uploadCategoryDir, uploadDir } from "../storage/paths";
import type { Storage } from "../storage/schema";
import type { Smb } from "./schema";

/**
 * What modelshare writes for Samba: /etc/samba/modelshare.conf (its shares, and the few
 * [global] lines they need) and the recycle bin's expiry timer. Pure text; the owner's account
 * names are filled in on the node (`@owner_user@`…), where they are known.
 */

const inside = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

export const sharePath = (smb: Smb, s: Storage) => (smb.path ? posix.join(s.root, smb.path) : s.root);

/**
 * Samba follows a link whose target is inside the share with its defaults. Only when a links
 * folder is in the share and what its links lead to (the model store, or the staging area with
 * intake: staging) is not do the links need `wide links` (and
 * `unix extensions = no` in [global], without which Samba silently disables wide links).
 */
export function needsWideLinks(smb: Smb, s: Storage): boolean {
  const path = sharePath(smb, s);
  return !inside(uploadDir(s), path) && linkFolders(s).some((f) => inside(f.folder, path));
}

/**
 * The folders whose files an SMB user can delete through the share: every folder of the layout
 * inside it, and the category (or staging) folders its links lead to outside it (wide links). Samba's recycle
 * module renames a deleted file into the share's .recycle and, when that rename fails (another
 * filesystem or mount: EXDEV), deletes the file for good; so with the bin on, the program
 * refuses any of these that is not on the share's filesystem and mount (smb_one_filesystem).
 */
export function reachedFolders(smb: Smb, s: Storage): string[] {
  const path = sharePath(smb, s);
  const within = layoutDirs(s)
    .map((d) => d.path)
    .filter((d) => d !== path && inside(d, path));
  const outside = needsWideLinks(smb, s) ? s.categories.map((c) => uploadCategoryDir(s, c)) : [];
  return [...within, ...outside];
}

/** The mode of the share's folders: the model store's inside it, the user area's elsewhere. */
export const shareMode = (smb: Smb, s: Storage) => (inside(sharePath(smb, s), modelStoreDir(s)) ? s.modes.models : s.modes.user);

/** "0775" -> "0775", "2775" -> "2775"; the files' mode is the folders' without x and setgid. */
const fileMode = (dirMode: string) => `0${(parseInt(dirMode, 8) & 0o666).toString(8)}`;
const dirMode = (mode: string) => mode.padStart(4, "0");

export function renderSmbConf(smb: Smb, s: Storage): string {
  const path = sharePath(smb, s);
  const wide = needsWideLinks(smb, s);
  const mode = shareMode(smb, s);
  const users = smb.users.map((u) => u.name);
  const readers = smb.users.filter((u) => u.readOnly).map((u) => u.name);
  const vfs = [...(smb.audit ? ["full_audit"] : []), ...(smb.recycle.enabled ? ["recycle"] : []), ...(smb.macos ? ["catia", "fruit", "streams_xattr"] : [])];
  const access = [
    `valid users = ${users.join(" ")}`,
    ...(readers.length ? [`read list = ${readers.join(" ")}`] : []),
    "guest ok = no",
    `hosts allow = ${smb.hostsAllow.join(" ")}`,
    "hosts deny = ALL",
    `server smb encrypt = ${smb.encryption}`,
    "force user = @owner_user@",
    "force group = @owner_group@",
  ];
  const macos = smb.macos
    ? [
        "fruit:metadata = stream",
        "fruit:posix_rename = yes",
        "fruit:veto_appledouble = no",
        "fruit:wipe_intentionally_left_blank_rfork = yes",
        "fruit:delete_empty_adfiles = yes",
      ]
    : [];
  const audit = smb.audit
    ? [
        "full_audit:prefix = %U|%I|%S",
        "full_audit:success = create_file mkdirat renameat unlinkat",
        "full_audit:failure = none",
        "full_audit:facility = LOCAL5",
        "full_audit:priority = NOTICE",
      ]
    : [];
  const section = (name: string, lines: string[]) => [`[${name}]`, ...lines.map((l) => `   ${l}`)];
  return [
    "# Written by modelshare: rewritten on every converge, removed on destroy. Edit the site",
    "# config instead; your own shares and settings belong in smb.conf, above its include line.",
    ...section("global", [
      `server min protocol = ${smb.minProtocol}`,
      // Without these, macOS clients could change a file's Unix mode through NFS ACEs.
      ...(smb.macos ? ["fruit:aapl = yes", "fruit:nfs_aces = no"] : []),
      ...(wide ? ["unix extensions = no"] : []),
    ]),
    "",
    ...section(smb.share, [
      "comment = modelshare: models upload, outputs, inputs, workflows",
      `path = ${path}`,
      "read only = no",
      ...access,
      `create mask = ${fileMode(mode)}`,
      `force create mode = ${fileMode(mode)}`,
      `directory mask = ${dirMode((parseInt(mode, 8) & 0o777).toString(8))}`,
      `force directory mode = ${dirMode(mode)}`,
      "follow symlinks = yes",
      `wide links = ${wide ? "yes" : "no"}`,
      ...(vfs.length ? [`vfs objects = ${vfs.join(" ")}`] : []),
      ...(smb.recycle.enabled
        ? [
            "recycle:repository = .recycle",
            "recycle:keeptree = yes",
            "recycle:versions = yes",
            "recycle:exclude_dir = .recycle",
            `recycle:directory_mode = ${dirMode(mode)}`,
          ]
        : []),
      ...macos,
      ...audit,
    ]),
    ...(smb.modelsShare
      ? [
          "",
          ...section(smb.modelsShare, [
            "comment = modelshare: the model store, read-only",
            `path = ${modelStoreDir(s)}`,
            "read only = yes",
            ...access,
            "follow symlinks = yes",
            "wide links = no",
            ...(smb.macos ? ["vfs objects = catia fruit streams_xattr", ...macos] : []),
          ]),
        ]
      : []),
  ].join("\n");
}

/** A path as one systemd ExecStart argument (the config's path rules keep out quotes and %). */
const unitArg = (p: string) => `"${p.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%")}"`;

/**
 * The recycle bin's expiry: a daily timer whose service runs `find` as the storage owner (never
 * root: .recycle is inside the tree) and deletes what has been in the bin longer than
 * recycle.days. A move into the bin is a rename, which sets the file's ctime: the day it was
 * deleted. find never follows a link (-P) nor leaves the filesystem (-xdev).
 */
export function renderRecycleUnits(smb: Smb, s: Storage): { service: string; timer: string } {
  const bin = posix.join(sharePath(smb, s), ".recycle");
  const minutes = smb.recycle.days * 1440;
  const find = `/usr/bin/find -P ${unitArg(bin)} -xdev -mindepth 1`;
  return {
    service: [
      "# Written by modelshare; removed on destroy.",
      "[Unit]",
      `Description=modelshare: empty the SMB recycle bin of what was deleted over ${smb.recycle.days} days ago`,
      `ConditionPathIsDirectory=${bin}`,
      "",
      "[Service]",
      "Type=oneshot",
      "User=@owner_uid@",
      "Group=@owner_gid@",
      "NoNewPrivileges=yes",
      `ExecStart=${find} ( -type f -o -type l ) -cmin +${minutes} -delete`,
      `ExecStart=${find} -depth -type d -empty -cmin +${minutes} -delete`,
    ].join("\n"),
    timer: [
      "# Written by modelshare; removed on destroy.",
      "[Unit]",
      "Description=modelshare: empty the SMB recycle bin daily",
      "",
      "[Timer]",
      "OnCalendar=daily",
      "Persistent=true",
      "RandomizedDelaySec=1h",
      "",
      "[Install]",
      "WantedBy=timers.target",
    ].join("\n"),
  };
}
