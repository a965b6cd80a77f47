import { posix } from "node:path";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";
import { exportsOf, MARKER, markerText, renderGaneshaExports, renderKernelExports } from "./exports";
import type { Nfs } from "./schema";

const SERVER = shellLib(__dirname, "server");
const WAY = shellLib(__dirname, "way");

/**
 * As root: the package, the exported folders checked (nothing on the way the owner could swap
 * for a link), the exports, the server. The marker file at the export's root: root writes it
 * in the skeleton's root-owned root folder, the owner in a root folder it can write.
 */
export function renderNfsServer(nfs: Nfs, s: Storage, clients: readonly string[], host: string): string {
  const kernel = nfs.server === "kernel";
  const exported = exportsOf(nfs, s);
  const marker = [posix.join(s.root, MARKER), markerText(host, s)];
  return renderProgram({
    title: `NFS export of ${s.root} (${nfs.server})`,
    libs: [SYSTEM, WAY, SERVER],
    storage: s,
    converge: {
      privileged: [
        kernel ? call("ensure_packages", "nfs-kernel-server") : call("ensure_packages", "nfs-ganesha", "nfs-ganesha-vfs", "rpcbind"),
        ...exported.map((e) => call("nfs_export_path", e.path)),
        ...(kernel
          ? // Switching servers: the other one's exports of modelshare's go; the other server must
            // not hold port 2049.
            [
              "nfs_ganesha_unexport",
              "nfs_no_ganesha",
              call("ensure_service", "nfs-server"),
              call("nfs_kernel_exports", renderKernelExports(nfs, s, clients), ...exported.map((e) => e.path)),
            ]
          : ["nfs_kernel_unexport", "nfs_no_kernel_server", call("nfs_ganesha_exports", renderGaneshaExports(nfs, s, clients))]),
        call("nfs_root_marker", ...marker),
      ],
      owner: [call("nfs_owner_marker", ...marker)],
    },
    // The marker stays: it is one small file, and a worker still mounted must not lose it.
    remove: { privileged: [kernel ? "nfs_kernel_unexport" : "nfs_ganesha_unexport"] },
  });
}
