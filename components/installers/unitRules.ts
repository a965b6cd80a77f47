import { codePathProblem, isWithin } from "../pathRules";

/**
 * What a ComfyUI install may name: its systemd service (the installer writes a drop-in that
 * rewrites ExecStart and restarts it, so naming a system unit would replace sshd's or docker's
 * command line), and where its code lives (never where data uploaders write).
 */

/** Units of the system, and of what modelshare itself or its other installers own. */
const SYSTEM_UNITS = new Set([
  "ssh",
  "sshd",
  "docker",
  "containerd",
  "smbd",
  "nmbd",
  "samba",
  "winbind",
  "rpcbind",
  "networking",
  "cron",
  "anacron",
  "dbus",
  "getty",
  "serial-getty",
  "console-getty",
  "container-getty",
  "autovt",
  "user",
  "user-runtime-dir",
  "ollama",
  "nfs-ganesha",
  "ganesha",
  "rsyslog",
  "auditd",
  "apparmor",
  "ufw",
  "nftables",
  "iptables",
  "netfilter-persistent",
  "chrony",
  "ntp",
  "ntpsec",
  "polkit",
  "unattended-upgrades",
  "apt-daily",
  "apt-daily-upgrade",
  "man-db",
  "e2scrub_all",
  "fstrim",
  "logrotate",
  "emergency",
  "rescue",
  "kmod",
  "kmod-static-nodes",
  "ifup",
  "NetworkManager",
  "wpa_supplicant",
  "avahi-daemon",
  "postfix",
  "exim4",
  "nvidia-persistenced",
  "lvm2",
  "mdmonitor",
  "zfs",
  "multipathd",
  "udisks2",
  "accounts-daemon",
  "cloud-init",
  "qemu-guest-agent",
  "atd",
]);
const SYSTEM_PREFIXES = ["systemd-", "nfs-", "rpc-", "rpc_", "samba", "modelshare", "dbus-", "getty", "lvm2-", "zfs-", "cloud-"];

/** The service name's own part: "getty@tty1.service" -> "getty", "sshd.service" -> "sshd". */
const baseName = (unit: string) => unit.replace(/\.service$/, "").replace(/@.*$/, "");

export function serviceUnitProblem(unit: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,240}\.service$/.test(unit) || unit.includes("..")) {
    return "must be a systemd service name of letters, digits and _ . @ : - (not starting with one of them), such as comfyui.service";
  }
  const base = baseName(unit);
  const lower = base.toLowerCase();
  if (SYSTEM_UNITS.has(base) || SYSTEM_UNITS.has(lower) || SYSTEM_PREFIXES.some((p) => lower.startsWith(p.toLowerCase()))) {
    return `"${unit}" is a system service (or one modelshare or another installer owns); the installer rewrites its ExecStart and restarts it. Name ComfyUI's own unit, e.g. comfyui.service`;
  }
  return undefined;
}

/**
 * A checkout's folder or its python: a code path (pathRules), and never inside the storage tree
 * as the node sees it, nor holding it: whatever SMB users, containers or the owner can write
 * must not become code the service runs.
 */
export function codeLocationProblem(path: string, tree: { path: string; key: string } | undefined, file = false): string | undefined {
  const system = codePathProblem(path);
  if (system) return system;
  if (!tree) return undefined;
  if (isWithin(path, tree.path)) {
    return `is inside ${tree.path} (${tree.key}), where SMB users, containers and the storage owner write; code must live apart from the data: move it to a folder such as /opt/ComfyUI`;
  }
  if (!file && isWithin(tree.path, path)) return `holds ${tree.path} (${tree.key}) inside it; keep the checkout and the storage in separate folders`;
  return undefined;
}
