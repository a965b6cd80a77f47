import { posix } from "node:path";
import { z } from "zod";
import { systemAccountProblem } from "../node/accountRules";
import { checkAllowList } from "../node/netRules";
import { layoutDirs } from "../storage/paths";
import type { Storage } from "../storage/schema";
import type { Add } from "../concern";

/**
 * The `modelshare:smb` section: every key with its default and description, and the rules that
 * concern this section (config.ts composes the sections and checks the roles).
 */

/** Section names Samba gives a meaning of its own: a share by that name would not be ours. */
const RESERVED = ["global", "homes", "printers", "print$", "ipc$"];

const shareName = (what: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, _ . -")
    .refine((n) => !RESERVED.includes(n.toLowerCase()), { message: `is a section name Samba reserves (${RESERVED.join(", ")}); choose another name` })
    .describe(what);

const userSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name: 1-32 lowercase letters, digits, _ or -, starting with a letter or _")
    .superRefine((n, ctx) => {
      const problem = systemAccountProblem(n);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe("Login name; a system account (no login shell) is made for it if the node has none."),
  passwordKey: z
    .string({ error: "is missing: name the secret config key that holds this user's password (pulumi config set --secret smbPasswordArtist)" })
    .regex(/^[A-Za-z][A-Za-z0-9_]*$/, "must be the name of a config key")
    .describe("Name of the secret config key holding the password (`pulumi config set --secret <name>`)."),
  readOnly: z.boolean().default(false).describe("Only read and download (Samba's read list)."),
  adopt: z
    .boolean()
    .default(false)
    .describe(
      "Let modelshare take over a Samba account that existed before it (its password is replaced; destroy leaves the account). Without it such an account stops the run.",
    ),
});

export const ENCRYPTION = ["off", "if_required", "desired", "required"] as const;
export const MIN_PROTOCOLS = ["SMB2_10", "SMB3", "SMB3_11"] as const;

export const smbSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe("Serve the storage over SMB from the node with the smb role."),
    share: shareName("Share name: users open `\\\\host\\share` in Explorer, `smb://host/share` in Finder.").default("ki_Daten"),
    path: z
      .string()
      .default("")
      .describe("Folder the share shows, relative to storage.root; empty (the default) is the root itself, holding storage-user/ and storage-models/."),
    users: z.array(userSchema).default([]).describe("Who may connect: [{ name, passwordKey, readOnly, adopt }]; required when enabled."),
    hostsAllow: z
      .array(z.string())
      .default([])
      .describe(
        "Addresses and networks that may connect (192.168.0.0/24, 192.168.0.20); every other address is refused. Required when enabled. Parsed: no leading zeros, no zone ids, no host bits.",
      ),
    allowAnyHost: z
      .boolean()
      .default(false)
      .describe(
        "Opt in to everyone in hostsAllow: a prefix of 0 in any spelling (0.0.0.0/0, ::0/0), *, or networks that together cover every IPv4 or IPv6 address (0.0.0.0/1 with 128.0.0.0/1).",
      ),
    encryption: z
      .enum(ENCRYPTION, { error: `must be one of ${ENCRYPTION.join(", ")}` })
      .default("desired")
      .describe("Samba's `server smb encrypt` for the share: off, if_required, desired (encrypt when the client can), required (refuse clients that cannot)."),
    minProtocol: z
      .enum(MIN_PROTOCOLS, { error: `must be one of ${MIN_PROTOCOLS.join(", ")}` })
      .default("SMB2_10")
      .describe("Samba's `server min protocol`: a server-wide setting (it applies to the node's other shares too); SMB1 is never allowed."),
    macos: z
      .boolean()
      .default(true)
      .describe("Finder-friendly options (vfs fruit, catia, streams_xattr): macOS metadata kept in extended attributes, not ._ files."),
    recycle: z
      .strictObject({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            "Files deleted over SMB go to .recycle in the share instead of vanishing; every folder the share reaches must then be on the share's filesystem (the run refuses otherwise).",
          ),
        days: z
          .number()
          .int()
          .min(1)
          .max(3650)
          .default(30)
          .describe("Days a deleted file stays in .recycle before a daily timer (running as the storage owner) removes it."),
      })
      .default({ enabled: true, days: 30 })
      .describe("The share's recycle bin."),
    audit: z.boolean().default(true).describe("Log creates, renames, deletes and new folders to syslog (tag smbd_audit) with user, client address and path."),
    modelsShare: shareName("Name of a second, read-only share of the model store (download only); unset: no second share.").optional(),
  })
  .default({
    enabled: false,
    share: "ki_Daten",
    path: "",
    users: [],
    hostsAllow: [],
    allowAnyHost: false,
    encryption: "desired",
    minProtocol: "SMB2_10",
    macos: true,
    recycle: { enabled: true, days: 30 },
    audit: true,
  });

export type Smb = z.output<typeof smbSchema>;

/** The folders a share may show: the root and every folder of the layout, relative to the root. */
function sharePathChoices(s: Storage): string[] {
  return layoutDirs(s).map((d) => posix.relative(s.root, d.path));
}

/** The smb section's own rules (only when enabled: a switched-off section is not checked). */
export function checkSmbSection(smb: Smb, storage: Storage, add: Add): void {
  if (!smb.enabled) return;
  const choices = sharePathChoices(storage);
  if (!choices.includes(smb.path)) {
    add("smb.path", `"${smb.path}" is not a folder the storage layout makes; use "" (the root) or one of ${choices.filter(Boolean).slice(0, 6).join(", ")}, …`);
  }
  if (smb.users.length === 0) add("smb.users", "lists no one; add at least one user: [{ name: artist, passwordKey: smbPasswordArtist }]");
  const names = new Map<string, number>();
  smb.users.forEach((u, i) => {
    const j = names.get(u.name.toLowerCase());
    if (j !== undefined) add(`smb.users[${i}].name`, `"${u.name}" is already smb.users[${j}]; list each user once`);
    else names.set(u.name.toLowerCase(), i);
  });
  if (smb.hostsAllow.length === 0) {
    add("smb.hostsAllow", "is required: list the addresses or networks your users connect from (e.g. [192.168.0.0/24])");
  }
  checkAllowList("smb.hostsAllow", smb.hostsAllow, { key: "smb.allowAnyHost", value: smb.allowAnyHost }, "connect", add);
  checkSmbConfText(smb, storage, add);
  if (smb.modelsShare && smb.modelsShare.toLowerCase() === smb.share.toLowerCase()) {
    add("smb.modelsShare", `"${smb.modelsShare}" is already the name of smb.share (share names compare case-insensitively); choose another`);
  }
}

/**
 * The paths that go into modelshare's smb.conf as they are: `@name@` is the placeholder text
 * the node fills in (the owner's account, conf.ts), `%` Samba's own substitutions (kept out by
 * the path rules already), and Samba drops a value's trailing spaces (another folder).
 */
function checkSmbConfText(smb: Smb, storage: Storage, add: Add): void {
  const paths: Array<[string, string]> = [
    ["storage.root", storage.root],
    ["smb.path", smb.path],
  ];
  if (smb.modelsShare) paths.push(["storage.models", storage.models]);
  for (const [key, value] of paths) {
    if (value.includes("@"))
      add(key, `"${value}" holds @, which modelshare's smb.conf uses for the names it fills in on the node (@owner_user@); rename the folder without @`);
    else if (value.includes("%")) add(key, `"${value}" holds %, which Samba reads as a substitution (%U, %m…) in smb.conf; rename the folder without %`);
  }
  if (/\s$/.test(storage.root))
    add("storage.root", `"${storage.root}" ends in a space, which Samba drops from smb.conf's path (it would share another folder); rename the folder`);
}
