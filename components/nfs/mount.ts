import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";
import { markerText, mountsOf, mountUnitName, renderMountUnit, renderReadAheadConf } from "./exports";
import type { Nfs } from "./schema";

const MOUNT = shellLib(__dirname, "mount");
const WAY = shellLib(__dirname, "way");

/**
 * All as root (system files and mounts), reading the marker as the storage owner. First the
 * units of mounts no longer configured go; each unit is enabled at boot only after its mount
 * converged in this run.
 */
export function renderNfsMount(nfs: Nfs, s: Storage, server: string): string {
  const mounts = mountsOf(nfs, s, server);
  const [root, ...inner] = mounts;
  const units = mounts.map((m) => mountUnitName(m.where));
  return renderProgram({
    title: `NFS mount of ${root.what} at ${nfs.mountPoint}`,
    libs: [SYSTEM, WAY, MOUNT],
    storage: s,
    converge: {
      privileged: [
        call("ensure_packages", "nfs-common"),
        // Before the mounts, so that a new one gets its readahead from udev as at boot.
        nfs.readAheadKiB ? call("nfs_readahead_conf", renderReadAheadConf(nfs.readAheadKiB)) : "nfs_readahead_conf",
        call("nfs_stale_units", ...units),
        call("nfs_mount", root.where, root.what, units[0], renderMountUnit(root), markerText(server, s)),
        ...inner.map((m, i) => call("nfs_models_mount", m.where, m.what, units[i + 1], renderMountUnit(m), root.where)),
        ...(nfs.readAheadKiB ? [call("nfs_readahead", String(nfs.readAheadKiB), ...mounts.map((m) => m.where))] : []),
      ],
    },
    // Every mount unit modelshare wrote on this node, inner mounts first; then this config's
    // own (a unit written without the tag). The files on the server are never touched.
    remove: {
      privileged: ["nfs_stale_units", ...[...mounts].reverse().map((m) => call("nfs_unmounted", m.where, mountUnitName(m.where))), "nfs_readahead_conf"],
    },
  });
}
