import { posix } from "node:path";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";
import type { Cache } from "./schema";

const CACHE = shellLib(__dirname, "cache");

/**
 * modelshare's own cachefilesd: its unit and config beside Debian's (whose init script stays
 * off: RUN= is unset in /etc/default/cachefilesd), so destroy takes exactly what it added.
 */
export const CACHE_UNIT = "modelshare-cachefilesd.service";
export const CACHE_CONF = "/etc/modelshare/cachefilesd.conf";
/** The cache's tag: FS-Cache lists it in /proc/fs/fscache/caches once cachefilesd bound it. */
export const CACHE_TAG = "modelshare";

/** cachefilesd.conf(5): the folder, the tag, and the same free-space limits for blocks and files. */
export function renderCachefilesdConf(cache: Cache): string {
  const { run, cull, stop } = cache.freePercent;
  return [
    "# Written by modelshare (nfs.cache): rewritten on every converge, removed on destroy.",
    `dir ${cache.dir}`,
    `tag ${CACHE_TAG}`,
    ...["b", "f"].flatMap((x) => [`${x}run ${run}%`, `${x}cull ${cull}%`, `${x}stop ${stop}%`]),
  ].join("\n");
}

/**
 * The daemon in the foreground (-n) logging to the journal (-s), the module loaded first. It
 * comes up before remote filesystems, so that a worker's NFS mount finds its cache at boot.
 */
export function renderCacheUnit(): string {
  return [
    "# Written by modelshare (nfs.cache): removed on destroy.",
    "[Unit]",
    "Description=modelshare: the local cache of NFS reads (cachefilesd)",
    "After=local-fs.target",
    "Before=remote-fs-pre.target",
    "Wants=remote-fs-pre.target",
    "",
    "[Service]",
    "ExecStartPre=/sbin/modprobe -q cachefiles",
    `ExecStart=/sbin/cachefilesd -n -s -f ${CACHE_CONF}`,
    "Restart=on-failure",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

/**
 * On an NFS worker, as root: the kernel's support (without it, one note and nothing else), the
 * package, the folder, the config and unit, the daemon with its cache bound. `check` also
 * reports the cache's size and the free space beside it. Remove stops the daemon and empties
 * the folder it made (cached copies only: the models stay on the storage node).
 */
export function renderNfsCache(cache: Cache, s: Storage): string {
  return renderProgram({
    title: `local cache of NFS reads in ${cache.dir}`,
    libs: [SYSTEM, CACHE],
    storage: s,
    converge: {
      privileged: [
        "cache_kernel",
        // The folder first: its refusals come before anything is installed.
        call("cache_dir", cache.dir),
        call("cache_previous", CACHE_CONF),
        call("cache_packages", posix.dirname(CACHE_CONF)),
        call("cache_file", CACHE_CONF, "0644", renderCachefilesdConf(cache)),
        call("cache_unit", CACHE_UNIT, renderCacheUnit()),
        call("cache_service", CACHE_UNIT, CACHE_TAG),
        call("cache_moved", cache.dir),
      ],
    },
    report: { privileged: [call("cache_report", cache.dir)] },
    remove: {
      privileged: [
        call("cache_previous", CACHE_CONF),
        call("remove_unit", CACHE_UNIT),
        call("remove_file", CACHE_CONF),
        call("remove_system_dir", posix.dirname(CACHE_CONF)),
        call("cache_emptied", cache.dir),
        // A folder an earlier config named, if the converge that moved it did not get to it.
        call("cache_moved", cache.dir),
      ],
    },
  });
}
