/**
 * What a folder path in the site config may be: pure checks that return a problem sentence
 * (without the key, which the caller adds) or undefined.
 */

/** Linux limits, in bytes: one name, and a whole path (PATH_MAX counts the closing NUL). */
export const NAME_MAX = 255;
export const PATH_MAX = 4095;

/**
 * Paths a storage root (or mount point) must never be, or be inside (the `true` ones): the
 * system's own trees, including the links Debian keeps to them (/var/run and /var/lock lead to
 * /run; /lib* and /bin, /sbin to /usr), and the kernel's and systemd's virtual filesystems.
 */
const SYSTEM_PATHS: ReadonlyArray<[string, boolean]> = [
  ["/", false],
  ["/bin", true],
  ["/boot", true],
  ["/dev", true],
  ["/efi", true],
  ["/etc", true],
  ["/home", false],
  ["/lib", true],
  ["/lib32", true],
  ["/lib64", true],
  ["/libx32", true],
  ["/lost+found", true],
  ["/media", false],
  ["/mnt", false],
  ["/opt", false],
  ["/proc", true],
  ["/root", true],
  ["/run", true],
  ["/sbin", true],
  ["/snap", true],
  ["/srv", false],
  ["/sys", true],
  ["/tmp", false],
  ["/usr", true],
  ["/var", false],
  ["/var/backups", true],
  ["/var/cache", true],
  ["/var/lib", true],
  ["/var/local", false],
  ["/var/lock", true],
  ["/var/log", true],
  ["/var/mail", true],
  ["/var/opt", false],
  ["/var/run", true],
  ["/var/spool", true],
  ["/var/tmp", false],
  ["/vol", false],
];

/**
 * Trees anyone may write (sticky, mode 1777) and systemd-tmpfiles empties: a mount point there
 * can be planted by any local user before the mount, and a mount left under them is cleaned.
 */
const SCRATCH_PATHS = ["/tmp", "/var/tmp", "/dev/shm"];

const within = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

// A folder name: letters, digits, space and . _ @ + , = -; not starting with "-" (it would
// read as an option) nor a space, and never "." or "..".
const SEGMENT = /^[\p{L}\p{N}_.@+,=][\p{L}\p{N} _.@+,=-]*$/u;

// Names Windows reserves for devices, with or without an extension ("CON", "nul.txt").
const DOS_DEVICE = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i;

export const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/** A path's shape: absolute or relative, clean segments, no shell or control characters. */
export function pathProblem(value: string, absolute: boolean): string | undefined {
  if (value.length === 0) return "must not be empty";
  if (bytes(value) > PATH_MAX) return `is ${bytes(value)} bytes long; Linux paths hold at most ${PATH_MAX}`;
  if (/[\u0000-\u001f\u007f]/.test(value)) return "contains a control character";
  if (absolute && !value.startsWith("/")) return "must be an absolute path (start with /)";
  if (!absolute && value.startsWith("/")) return "must be relative to storage.root (no leading /)";
  if (value.includes("//")) return "must not contain //";
  if (absolute && value === "/") return undefined;
  if (value.length > 1 && value.endsWith("/")) return "must not end with /";
  const segments = value.split("/").filter((_, i) => !(absolute && i === 0));
  for (const segment of segments) {
    if (segment === "." || segment === "..") return `must not contain a "${segment}" segment`;
    if (!SEGMENT.test(segment)) {
      return `has the folder name "${segment}": use letters, digits, space and . _ @ + , = - (not first: - or space); no shell characters`;
    }
    if (segment.startsWith(".")) return `has the hidden folder name "${segment}" (starting with a dot): SMB and Finder users would not see it; drop the dot`;
    if (bytes(segment) > NAME_MAX) return `has a folder name of ${bytes(segment)} bytes ("${segment.slice(0, 20)}…"); names hold at most ${NAME_MAX}`;
  }
  return undefined;
}

/**
 * A folder name Windows and macOS clients can use over SMB (the relative folders, which the
 * share shows): no trailing space or dot, no device name.
 */
export function smbNameProblem(value: string): string | undefined {
  for (const segment of value.split("/")) {
    if (/[ .]$/.test(segment))
      return `has the folder name "${segment}", which ends in a ${segment.endsWith(" ") ? "space" : "dot"}: Windows cannot open it; drop it`;
    if (DOS_DEVICE.test(segment)) return `has the folder name "${segment}", a device name Windows reserves; choose another`;
  }
  return undefined;
}

/**
 * An absolute folder of modelshare's own (the storage root, a mount point): a clean path,
 * never a system path or inside one, never a user's home folder itself. `example` goes into
 * the message.
 */
export function ownFolderProblem(path: string, example: string, opts: { mount?: boolean } = {}): string | undefined {
  const problem = pathProblem(path, true);
  if (problem) return problem;
  const hit = SYSTEM_PATHS.find(([p, subtree]) => path === p || (subtree && path.startsWith(`${p}/`)));
  if (hit) return `"${path}" is ${path === hit[0] ? "" : "inside "}the system path ${hit[0]}; choose a folder of its own such as ${example}`;
  const scratch = opts.mount ? SCRATCH_PATHS.find((p) => within(path, p)) : undefined;
  if (scratch) return `"${path}" is inside ${scratch}, which every local user may write and the system empties; choose a folder of its own such as ${example}`;
  if (/^\/home\/[^/]+$/.test(path)) return `"${path}" is a user's home folder itself; use a folder inside it such as ${path}/models`;
  return undefined;
}

/**
 * Where code may live (a ComfyUI checkout, its python): never the root, a virtual or runtime
 * tree (/proc, /sys, /dev, /run and its /var/run link), /etc or /boot. /usr/local, /opt, /srv,
 * /root and homes are fine; so is /tmp, as the checkout exists already (the sticky bit keeps
 * others from renaming it), unlike a mount point modelshare would make there.
 */
export function codePathProblem(path: string): string | undefined {
  if (path === "/") return "is the root folder; name the checkout's own folder, e.g. /opt/ComfyUI";
  const system = ["/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/etc", "/lost+found"].find((p) => within(path, p));
  if (system) return `is inside the system path ${system}; code lives in a folder of its own such as /opt/ComfyUI`;
  return undefined;
}

/** `path` is `dir` or inside it. */
export const isWithin = within;

/** Two spellings one SMB client sees as one name: case and Unicode normalisation folded. */
export const smbFold = (path: string): string => path.normalize("NFC").toLowerCase();
