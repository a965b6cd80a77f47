import { planItem, type Concern } from "../concern";
import { isLocal } from "../node/hostRules";
import { checkSmbSection, smbSchema } from "./schema";
import { renderSmbPasswords, renderSmbShare, shareFolders } from "./share";

const sections = { smb: smbSchema };

/** The SMB share on the storage node, with its users' accounts and passwords. */
export const smb: Concern<typeof sections> = {
  name: "smb",
  sections,
  check(site, add, ctx) {
    const smb = site.smb;
    if (!smb.enabled) return;
    if (!site.nodes.some((n) => n.roles.includes("smb"))) add("smb.enabled", "is true, but no node has the smb role; add smb to the storage node's roles");
    checkSmbSection(smb, site.storage, add);
    // A password key is a config key of its own: not a section, not the token, not an SSH key.
    const sshKeys = new Set(site.nodes.filter((n) => !isLocal(n)).map((n) => n.sshKey));
    smb.users.forEach((u, i) => {
      const k = u.passwordKey;
      const example = `smbPassword${u.name.replace(/[^a-z0-9]/g, "").replace(/^./, (c) => c.toUpperCase())}`;
      if (ctx.sections.includes(k) || k === "convergeToken")
        add(`smb.users[${i}].passwordKey`, `"${k}" is a modelshare setting of its own; name the key after the user, e.g. ${example}`);
      else if (sshKeys.has(k)) add(`smb.users[${i}].passwordKey`, `"${k}" holds a node's SSH key; give the password a key of its own, e.g. ${example}`);
    });
  },
  plan(site, ctx) {
    const node = site.nodes.find((n) => n.roles.includes("smb"));
    if (!site.smb.enabled || !node) return [];
    const s = site.storage;
    // Two programs: the share itself (packages, accounts, Samba's configuration, smbd), whose
    // text `pulumi preview --diff` shows; then the passwords, whose stdin is secret (its diff
    // shows only that something changed). After the layout and the links: the share shows them.
    return [
      planItem({
        kind: "smb",
        type: "modelshare:smb:SmbShare",
        name: `${node.name}-smb`,
        node,
        after: ctx.ready(ctx.storageNode, true),
        programs: [
          { text: renderSmbShare(site.smb, s), removes: true },
          { suffix: "passwords", text: renderSmbPasswords(site.smb, s), removes: true, smbPasswords: site.smb.users.map((u) => u.name) },
        ],
        outputs: shareFolders(node.host, site.smb, s),
      }),
    ];
  },
};
