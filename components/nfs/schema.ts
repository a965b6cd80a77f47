import { z } from "zod";
import { checkAllowList } from "../node/netRules";
import { ownFolderProblem } from "../pathRules";
import type { Storage } from "../storage/schema";
import type { Add } from "../concern";
import { cacheSchema } from "../cache/schema";

/**
 * The `modelshare:nfs` section: every key with its default and description, and the rules that
 * concern this section (config.ts composes the sections and checks the roles).
 */

/** Mount options a site may add, by name (`=N` for the numeric ones); the rest are ours. */
const MOUNT_FLAGS = ["noatime", "nodiratime", "relatime"];
const MOUNT_NUMBERS = ["nconnect", "rsize", "wsize", "timeo", "retrans", "actimeo"];
const MOUNT_OPTIONS_HELP = `${MOUNT_FLAGS.join(", ")}, ${MOUNT_NUMBERS.map((o) => `${o}=N`).join(", ")}`;

export const nfsSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe("Export the storage root over NFS from the nfs-server node and mount it on every worker."),
    server: z
      .enum(["kernel", "ganesha"], { error: "must be kernel or ganesha" })
      .default("kernel")
      .describe("NFS server: kernel (nfs-kernel-server) or ganesha (nfs-ganesha, in user space, for hosts without kernel nfsd)."),
    clients: z
      .array(z.string())
      .default([])
      .describe("Addresses and networks that may mount, besides the worker nodes' hosts (always included); parsed like smb.hostsAllow."),
    allowAnyClient: z
      .boolean()
      .default(false)
      .describe("Opt in to everyone in clients: a prefix of 0 in any spelling, *, or networks that together cover every IPv4 or IPv6 address."),
    mountPoint: z
      .string()
      .default("/mnt/modelshare")
      .describe("Where workers mount the storage root: not a system path (/run, /var/run, /usr…) nor under /tmp, /var/tmp or /dev/shm."),
    rootSquash: z
      .boolean()
      .default(true)
      .describe(
        "Map root on a client to nobody (root_squash). false (no_root_squash) is the explicit opt-in that lets every client's root act as root on the storage.",
      ),
    modelsReadOnly: z
      .boolean()
      .default(false)
      .describe("Workers get the model store read-only (a second, ro export mounted over it). Off by default: services that download models need to write."),
    version: z
      .enum(["4.2", "4.1"], { error: 'must be "4.2" or "4.1" (quoted)' })
      .default("4.2")
      .describe("NFS version the workers mount (4.1 where the server lacks 4.2)."),
    mountOptions: z.array(z.string()).default([]).describe(`Extra mount options from: ${MOUNT_OPTIONS_HELP}.`),
    readAheadKiB: z
      .number({ error: "must be a whole number of KiB, e.g. 15360" })
      .int({ error: "must be a whole number of KiB, e.g. 15360" })
      // The kernel keeps whole pages (up to 64 KiB on some CPUs): any other value reads back
      // rounded, and would never match what a converge asked for.
      .refine((n) => n === 0 || (n >= 128 && n <= 1048576 && n % 64 === 0), {
        error: "must be 0 (set none) or a multiple of 64 from 128 to 1048576 KiB, e.g. 15360",
      })
      .default(15360)
      .describe(
        "How far ahead a worker reads its NFS mounts, in KiB (the kernel's default is 128): one loading model file is read far ahead of the loader, which keeps the link busy. Set worker-wide for NFSv4 mounts in /etc/nfs.conf.d/modelshare.conf (Debian's nfsrahead applies it to each new mount). 0: modelshare sets none.",
      ),
    fsid: z
      .number()
      .int()
      .min(1)
      .max(2147483647)
      .default(4711)
      .describe("The export's fsid (explicit, so file handles survive a reboot or a disk rename); the models export uses fsid + 1."),
    cache: cacheSchema,
  })
  .default({
    enabled: false,
    server: "kernel",
    clients: [],
    allowAnyClient: false,
    mountPoint: "/mnt/modelshare",
    rootSquash: true,
    modelsReadOnly: false,
    version: "4.2",
    mountOptions: [],
    readAheadKiB: 15360,
    fsid: 4711,
    cache: cacheSchema.parse(undefined),
  });

export type Nfs = z.output<typeof nfsSchema>;

// What an export path and a mount point may hold: exports, systemd's What=/Where= and the
// mount command all take these bytes as they are.
const PLAIN_PATH = /^[A-Za-z0-9._/@+,=-]+$/;

/** The nfs section's own rules. The mount point is checked even when off (its default is used). */
export function checkNfsSection(nfs: Nfs, storage: Storage, add: Add): void {
  const mountProblem = ownFolderProblem(nfs.mountPoint, "/mnt/modelshare", { mount: true });
  if (mountProblem) add("nfs.mountPoint", mountProblem);
  if (!nfs.enabled) return;
  if (!mountProblem && !PLAIN_PATH.test(nfs.mountPoint))
    add("nfs.mountPoint", "may hold only letters, digits and . _ / @ + , = - (no spaces): mount units and exports take it as it is");
  const root = storage.root;
  if (!mountProblem && (nfs.mountPoint === root || nfs.mountPoint.startsWith(`${root}/`) || root.startsWith(`${nfs.mountPoint}/`))) {
    add("nfs.mountPoint", `"${nfs.mountPoint}" overlaps storage.root (${root}); workers mount the storage elsewhere, e.g. /mnt/modelshare`);
  }
  if (!root.startsWith("~/") && !PLAIN_PATH.test(root)) {
    add("storage.root", "is exported over NFS, so it may hold only letters, digits and . _ / @ + , = - (no spaces)");
  }
  checkAllowList("nfs.clients", nfs.clients, { key: "nfs.allowAnyClient", value: nfs.allowAnyClient }, "mount the storage", add);
  // The models export's path is resolved again at every exportfs -r: only the skeleton a managed
  // owner gets (root's above the leaves) keeps the owner from swapping it between converges.
  if (nfs.modelsReadOnly && storage.owner === "unmanaged") {
    add(
      "nfs.modelsReadOnly",
      "needs storage.owner: {uid, gid}: with owner: unmanaged the folders above the model store are the owner's, who could swap the export for a link between converges; set the owner, or modelsReadOnly: false",
    );
  }
  nfs.mountOptions.forEach((o, i) => {
    const [name, value, extra] = o.split("=");
    const ok = extra === undefined && (value === undefined ? MOUNT_FLAGS.includes(name) : MOUNT_NUMBERS.includes(name) && /^[1-9]\d{0,6}$/.test(value));
    if (!ok) add(`nfs.mountOptions[${i}]`, `"${o}" is not a supported option; use ${MOUNT_OPTIONS_HELP} (modelshare sets nfsvers, hard and the rest itself)`);
  });
}
