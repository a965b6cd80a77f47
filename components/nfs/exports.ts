import { posix } from "node:path";
import { CACHE_UNIT } from "../cache/cachefilesd";
import { modelStoreDir } from "../storage/paths";
import type { Storage } from "../storage/schema";
import type { Nfs } from "./schema";

/**
 * What modelshare writes for NFS: the kernel server's exports file, or ganesha's exports; the
 * workers' mount units; the marker that proves a mount shows this site's export. Pure text.
 */

export interface Export {
  path: string;
  fsid: number;
  readOnly: boolean;
}

/** The storage root, rw; with modelsReadOnly also the model store, ro (mounted over it). */
export function exportsOf(nfs: Nfs, s: Storage): Export[] {
  return [{ path: s.root, fsid: nfs.fsid, readOnly: false }, ...(nfs.modelsReadOnly ? [{ path: modelStoreDir(s), fsid: nfs.fsid + 1, readOnly: true }] : [])];
}

/** One line per export, every client with the same options. */
export function renderKernelExports(nfs: Nfs, s: Storage, clients: readonly string[]): string {
  const lines = exportsOf(nfs, s).map((e) => {
    const options = [e.readOnly ? "ro" : "rw", "sync", "no_subtree_check", nfs.rootSquash ? "root_squash" : "no_root_squash", `fsid=${e.fsid}`, "sec=sys"].join(
      ",",
    );
    return `${e.path} ${clients.map((c) => `${c}(${options})`).join(" ")}`;
  });
  return ["# Written by modelshare: rewritten on every converge, removed on destroy.", ...lines].join("\n");
}

export function renderGaneshaExports(nfs: Nfs, s: Storage, clients: readonly string[]): string {
  const blocks = exportsOf(nfs, s).flatMap((e) => [
    "EXPORT {",
    // Ids of their own (the fsids), away from the small ids of the admin's exports.
    `  Export_Id = ${((e.fsid - 1) % 65534) + 1};`,
    `  Path = "${e.path}";`,
    `  Pseudo = "${e.path}";`,
    "  Protocols = 4;",
    "  Transports = TCP;",
    "  SecType = sys;",
    `  Squash = ${nfs.rootSquash ? "Root_Squash" : "No_Root_Squash"};`,
    `  Filesystem_Id = ${e.fsid}.${e.fsid};`,
    "  Access_Type = None;",
    `  CLIENT { Clients = ${clients.join(", ")}; Access_Type = ${e.readOnly ? "RO" : "RW"}; }`,
    "  FSAL { Name = VFS; }",
    "}",
  ]);
  return ["# Written by modelshare: rewritten on every converge, removed on destroy.", ...blocks].join("\n");
}

/** The marker's content: this site's export (server and path), so a mount can prove it. */
export const markerText = (server: string, s: Storage) => `modelshare export ${server}:${s.root}`;
export const MARKER = ".modelshare-export";

/** `server:/path`, IPv6 servers in brackets (as mount and findmnt write them). */
export const remote = (server: string, path: string) => `${server.includes(":") ? `[${server}]` : server}:${path}`;

/** `fsc` with nfs.cache: the kernel keeps what the mount reads in the worker's FS-Cache. */
export function mountOptions(nfs: Nfs, readOnly: boolean): string {
  return [`nfsvers=${nfs.version}`, "hard", readOnly ? "ro" : "rw", "_netdev", ...(nfs.cache.enabled ? ["fsc"] : []), ...nfs.mountOptions].join(",");
}

export interface Mount {
  where: string;
  what: string;
  options: string;
  /** Through the worker's local cache (nfs.cache): the unit waits for cachefilesd. */
  cached: boolean;
}

/** A worker's mounts: the root at mountPoint; with modelsReadOnly the store, ro, over its place. */
export function mountsOf(nfs: Nfs, s: Storage, server: string): Mount[] {
  return exportsOf(nfs, s).map((e) => ({
    where: posix.join(nfs.mountPoint, posix.relative(s.root, e.path)),
    what: remote(server, e.path),
    options: mountOptions(nfs, e.readOnly),
    cached: nfs.cache.enabled,
  }));
}

/**
 * A mount unit's name, as `systemd-escape --path --suffix=mount` derives it: the path without
 * its leading /, each / a -, every byte outside [A-Za-z0-9:_.] (and a . first of all) as \xHH.
 */
export function mountUnitName(path: string): string {
  const trimmed = path.replace(/\/+/g, "/").replace(/^\/|\/$/g, "");
  if (trimmed === "") return "-.mount";
  const escaped = [...Buffer.from(trimmed, "utf8")]
    .map((b, i) => {
      const c = String.fromCharCode(b);
      if (c === "/") return "-";
      return /[A-Za-z0-9:_.]/.test(c) && !(i === 0 && c === ".") ? c : `\\x${b.toString(16).padStart(2, "0")}`;
    })
    .join("");
  return `${escaped}.mount`;
}

/**
 * The first line of every mount unit modelshare writes: a later converge removes the units that
 * carry it and are no longer configured, destroy all of them (mount.sh holds the same text).
 */
export const UNIT_TAG = "# modelshare: an NFS mount of the storage; rewritten by every converge, removed when no longer configured and on destroy.";

/**
 * The mount unit: after the network (and the cache's daemon, with nfs.cache). systemd orders a mount inside another (the read-only model
 * store inside the root) after it, and makes it require it, by itself.
 */
export function renderMountUnit(m: Mount): string {
  return [
    UNIT_TAG,
    "[Unit]",
    `Description=modelshare: the storage node's files (${m.what})`,
    `Wants=network-online.target${m.cached ? ` ${CACHE_UNIT}` : ""}`,
    `After=network-online.target${m.cached ? ` ${CACHE_UNIT}` : ""}`,
    "",
    "[Mount]",
    `What=${m.what}`,
    `Where=${m.where}`,
    "Type=nfs4",
    `Options=${m.options}`,
    "TimeoutSec=30",
    "",
    "[Install]",
    "WantedBy=remote-fs.target",
  ].join("\n");
}

/**
 * The first line of the worker's readahead setting (/etc/nfs.conf.d/modelshare.conf, a path
 * mount.sh holds), by which a later run or destroy knows the file is modelshare's.
 */
export const READAHEAD_TAG = "# modelshare (nfs.readAheadKiB): the readahead of this worker's NFSv4 mounts; rewritten by every converge, removed on destroy.";

/**
 * nfs.conf(5)'s [nfsrahead] section: udev runs nfsrahead for every new NFS mount and sets its
 * readahead from it (nfs4, the type of modelshare's mounts). The kernel's own is 128 KiB.
 */
export function renderReadAheadConf(kib: number): string {
  return [READAHEAD_TAG, "[nfsrahead]", `nfs4=${kib}`].join("\n");
}

/** What a user types on another Linux machine to mount the export. */
export const mountCommand = (nfs: Nfs, s: Storage, server: string) =>
  `sudo mount -t nfs4 -o nfsvers=${nfs.version},hard ${remote(server, s.root)} ${nfs.mountPoint}`;
