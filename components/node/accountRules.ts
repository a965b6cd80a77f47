/**
 * Account names a person's SMB login must not take: the accounts Debian 12 (base-passwd and the
 * packages a modelshare node runs) makes for its own services, and the patterns of system
 * accounts. Giving one a Samba password would hand a service's identity to whoever holds it,
 * and modelshare would manage (and on destroy, forget) an account the system depends on.
 */
// prettier-ignore
const SYSTEM_ACCOUNTS = new Set([
  // base-passwd (uid < 100 and nobody)
  "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
  "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup",
  // the services of a Debian 12 server, and those modelshare installs or works beside
  "sshd", "messagebus", "polkitd", "avahi", "avahi-autoipd", "uuidd", "tcpdump", "tss", "dnsmasq",
  "usbmux", "rtkit", "colord", "pulse", "saned", "lightdm", "geoclue", "ntp", "ntpsec", "postfix",
  "statd", "rpc", "rpcuser", "nfsnobody", "ganesha", "samba", "smbguest", "guest", "winbind",
  "ollama", "docker", "dockremap", "containerd", "nvidia-persistenced", "libvirt-qemu",
  "libvirt-dnsmasq", "mysql", "postgres", "redis", "syslog", "landscape", "lxd", "ftp", "sddm",
  "adm", "admin", "operator", "halt", "shutdown", "sudo", "wheel", "staff", "users", "input",
]);

/** A problem sentence for a system account's name, or undefined for a person's or a dedicated one. */
export function systemAccountProblem(name: string): string | undefined {
  const system = SYSTEM_ACCOUNTS.has(name) || name.startsWith("_") || name.startsWith("systemd-") || name.startsWith("debian-");
  return system
    ? `"${name}" is a system account's name (Debian makes it for a service); SMB users get an account of their own: pick a person's name or a dedicated one such as artist`
    : undefined;
}
