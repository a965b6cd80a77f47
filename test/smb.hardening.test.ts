import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseSite, type Site } from "../components/config";
import { categoryDir, modelStoreDir } from "../components/storage/paths";
import { renderSmbConf } from "../components/smb/conf";
import { renderSmbPasswords, renderSmbShare } from "../components/smb/share";
import { asOwner, decoy, OWNER } from "./helpers/attack";
import { tempRoot } from "./helpers/run";
import { SambaNode, sambaMissing } from "./helpers/smbd";

/**
 * The SMB share tried as an SMB user and the storage owner would try it, with a real smbd (root,
 * its own smb.conf in a private mount namespace, on 127.0.0.1) and the real programs: a model
 * deleted where Samba cannot move it into the bin, the bin smbd cannot make in root's share
 * root, a share named like one of the admin's sections, an admin's Samba account.
 */
const USERS = [
  { name: "artist", uid: 2901 },
  { name: "viewer", uid: 2902 },
];
const PW = { artist: "PW-SECRET 'q' $HOME", viewer: "viewer-pw" };
const OWNER_NAME = () =>
  readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.split(":")[2] === String(OWNER.uid))!
    .split(":")[0];

let node: SambaNode | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});
beforeAll(() => {
  expect(sambaMissing()).toBeUndefined();
});

function site(root: string, smb: Record<string, unknown> = {}): Site {
  return parseSite(
    {
      nodes: [{ name: "here", host: "localhost", roles: ["storage", "smb"] }],
      storage: { root, minFreeGB: 0, owner: OWNER },
      smb: {
        enabled: true,
        hostsAllow: ["127.0.0.1"],
        macos: false,
        users: [
          { name: "artist", passwordKey: "smbPasswordArtist" },
          { name: "viewer", passwordKey: "smbPasswordViewer", readOnly: true },
        ],
        ...smb,
      },
    },
    { homedir: "/nonexistent" },
  );
}

/**
 * The tree as the skeleton decision leaves it: the root and every folder above the leaves
 * root's, 0755; the leaves (categories, output/<UI>, input, workflows…) the owner's, 0775; the
 * upload links root's. Made here, not by the layout program, so these tests hold the SMB part
 * to the invariant by themselves.
 */
function skeleton(x: Site): void {
  const s = x.storage;
  const leaves = [
    ...s.categories.map((c) => categoryDir(s, c)),
    ...s.outputs.map((o) => join(s.root, s.user, "output", o)),
    join(s.root, s.user, "input"),
    join(s.root, s.user, "workflows"),
    join(s.root, s.ollamaModels),
    join(s.root, s.mediaCache),
  ];
  const skel = [s.root, join(s.root, s.user, "output"), join(s.root, s.projects), join(s.root, s.comfyuiCustomNodes), ...s.links.map((l) => join(s.root, l))];
  for (const d of [...skel, ...leaves]) {
    for (let p = d; p.startsWith(s.root) && !existsSync(p); p = posix.dirname(p)) mkdirSync(p, { recursive: true });
  }
  for (const d of [...skel, ...leaves.map(posix.dirname)]) {
    chownSync(d, 0, 0);
    chmodSync(d, 0o755);
  }
  for (const d of leaves) {
    chownSync(d, OWNER.uid, OWNER.gid);
    chmodSync(d, 0o775);
  }
  for (const l of s.links) for (const c of s.categories) symlinkSync(posix.relative(join(s.root, l), categoryDir(s, c)), join(s.root, l, c));
}

/** A model of the owner's in a category (as an upload would leave it). */
function model(x: Site, category: string, name: string, inside?: SambaNode): string {
  const path = join(categoryDir(x.storage, category), name);
  const make = `printf 'model-bytes %s' ${name} > ${path} && chown ${OWNER.uid}:${OWNER.gid} ${path}`;
  if (inside) inside.sh(make);
  else asOwner(`printf 'model-bytes %s' ${name} > ${path}`);
  return path;
}

describe("no silent purge: a file deleted over SMB is in the bin, or the share does not go live", () => {
  it("a category on another filesystem: converge refuses naming it and the fixes, writes no Samba configuration", () => {
    const x = site(tempRoot());
    skeleton(x);
    node = new SambaNode(USERS);
    const checkpoints = categoryDir(x.storage, "checkpoints");
    node.sh(`mount -t tmpfs -o uid=${OWNER.uid},gid=${OWNER.gid},mode=0775 second ${checkpoints}`);
    const r = node.run(renderSmbShare(x.smb, x.storage));
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toContain(`${checkpoints} (a mount point)`);
    expect(r.stderr).toMatch(
      /deletes it for good\. Put them on the filesystem of .*, or share that filesystem on its own \(smb\.path\), or set smb\.recycle\.enabled: false/,
    );
    expect(
      node.sh("test -e /etc/samba/modelshare.conf && echo written || echo none; grep -c '^include = /etc/samba/modelshare.conf' /etc/samba/smb.conf || true"),
    ).toBe("none\n0\n");
    // check names it too, every time it runs (a disk mounted after the last converge).
    expect(node.run(renderSmbShare(x.smb, x.storage), "check").stderr).toContain(`${checkpoints} (a mount point)`);
    // Two mounts of one filesystem (a bind mount) fail a rename the same way: also refused.
    node.sh(`umount ${checkpoints} && mount --bind ${checkpoints} ${checkpoints}`);
    expect(node.run(renderSmbShare(x.smb, x.storage)).stderr).toContain(`${checkpoints} (a mount point)`);
    // Turning the bin off is the admin's conscious choice: then the share converges.
    const off = site(x.storage.root, { recycle: { enabled: false } });
    const ok = node.run(renderSmbShare(off.smb, off.storage));
    expect(ok.code, ok.stderr).toBe(0);
    expect(node.sh("grep -c 'vfs objects.*recycle' /etc/samba/modelshare.conf || true")).toBe("0\n");
  });

  it("a share of storage-user reaches the store through its links: the store on another filesystem is refused too", () => {
    const x = site(tempRoot(), { path: "storage-user" });
    skeleton(x);
    node = new SambaNode(USERS);
    node.sh(`mount -t tmpfs -o mode=0755 second ${modelStoreDir(x.storage)} && mkdir ${x.storage.categories.map((c) => categoryDir(x.storage, c)).join(" ")}`);
    const r = node.run(renderSmbShare(x.smb, x.storage));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`on another filesystem or mount: ${categoryDir(x.storage, "checkpoints")}, ${categoryDir(x.storage, "loras")}`);
  });

  it("why: Samba itself purges a model deleted on another filesystem (the share as it would be without the refusal)", async () => {
    const x = site(tempRoot());
    skeleton(x);
    node = new SambaNode(USERS);
    const checkpoints = categoryDir(x.storage, "checkpoints");
    node.sh(`mount -t tmpfs -o uid=${OWNER.uid},gid=${OWNER.gid},mode=0775 second ${checkpoints}`);
    const path = model(x, "checkpoints", "sdxl.safetensors", node);
    // The configuration modelshare would write, put live by hand, with its bin made.
    const conf = renderSmbConf(x.smb, x.storage).replaceAll("@owner_user@", OWNER_NAME()).replaceAll("@owner_group@", OWNER_NAME());
    node.sh(
      `cat > /etc/samba/modelshare.conf <<'EOF'\n${conf}\nEOF\necho 'include = /etc/samba/modelshare.conf' >> /etc/samba/smb.conf && install -d -o ${OWNER.uid} -g ${OWNER.gid} -m 0775 ${x.storage.root}/.recycle`,
    );
    node.sh(`printf '%s\\n%s\\n' 'pw' 'pw' | smbpasswd -s -a artist >/dev/null`);
    node.startSmbd();
    const del = node.client("artist", "pw", "ki_Daten", "cd storage-models/models/checkpoints; del sdxl.safetensors");
    expect(del.code, del.out).toBe(0);
    expect(node.sh(`test -e ${path} && echo kept || echo gone; find ${x.storage.root}/.recycle -type f | wc -l`)).toBe("gone\n0\n");
  });

  it("one filesystem: root makes the bin as the owner's leaf before smbd needs it; uploads land in the store, deletes in the bin, the share root refuses new names", async () => {
    const x = site(tempRoot());
    skeleton(x);
    const outside = decoy();
    const before = outside.digest();
    node = new SambaNode(USERS);
    const program = renderSmbShare(x.smb, x.storage);
    const first = node.run(program);
    expect(first.code, first.stderr).toBe(0);
    const bin = join(x.storage.root, ".recycle");
    expect(first.stdout).toContain(`changed: created the recycle bin ${bin} (owner ${OWNER.uid}:${OWNER.gid}, mode 00775)`);
    const st = statSync(bin);
    expect([st.uid, st.gid, (st.mode & 0o7777).toString(8)]).toEqual([OWNER.uid, OWNER.gid, "775"]);
    expect(node.run(program).changed).toBe(0);
    // The owner cannot rename the bin away or put a link in its place: the share root is root's.
    expect(() => asOwner(`mv ${bin} ${bin}.x`)).toThrow(/Permission denied/);
    expect(node.run(renderSmbPasswords(x.smb, x.storage), "converge", `${PW.artist}\n${PW.viewer}\n`).code).toBe(0);
    node.startSmbd();
    writeFileSync(join(node.dir, "upload.bin"), "uploaded model");
    const put = node.client("artist", PW.artist, "ki_Daten", "cd storage-user/models-upload/checkpoints; put upload.bin");
    expect(put.code, put.out).toBe(0);
    const landed = join(categoryDir(x.storage, "checkpoints"), "upload.bin");
    expect([readFileSync(landed, "utf8"), statSync(landed).uid]).toEqual(["uploaded model", OWNER.uid]);
    model(x, "loras", "style.safetensors");
    const del = node.client(
      "artist",
      PW.artist,
      "ki_Daten",
      "cd storage-models/models/loras; del style.safetensors; cd /storage-user/models-upload/checkpoints; del upload.bin",
    );
    expect(del.code, del.out).toBe(0);
    expect(readFileSync(join(bin, "storage-models/models/loras/style.safetensors"), "utf8")).toBe("model-bytes style.safetensors");
    // Samba names a file deleted through a link by its real place: the store.
    expect(readFileSync(join(bin, "storage-models/models/checkpoints/upload.bin"), "utf8")).toBe("uploaded model");
    // The skeleton: no new name at the share root or in a folder above the leaves.
    for (const dir of ["", "storage-models", "storage-user"]) {
      expect(node.client("artist", PW.artist, "ki_Daten", `${dir ? `cd ${dir}; ` : ""}put upload.bin planted.bin`).out, dir).toMatch(/NT_STATUS_ACCESS_DENIED/);
      expect(node.client("artist", PW.artist, "ki_Daten", `${dir ? `cd ${dir}; ` : ""}mkdir planted`).out, dir).toMatch(/NT_STATUS_ACCESS_DENIED/);
    }
    expect(existsSync(join(x.storage.root, "planted.bin"))).toBe(false);
    // A bin removed by hand (root) is drift for check, and converge makes it again.
    node.sh(`rm -rf ${bin}`);
    const check = node.run(program, "check");
    expect(check.stdout).toContain(`drift: the recycle bin ${bin} is missing`);
    expect(node.run(program).stdout).toContain(`changed: created the recycle bin ${bin}`);
    expect(outside.digest()).toEqual(before);
  });

  it("a share of storage-user (wide links): a model deleted through its upload link is in the bin", () => {
    const x = site(tempRoot(), { path: "storage-user" });
    skeleton(x);
    node = new SambaNode(USERS);
    const r = node.run(renderSmbShare(x.smb, x.storage));
    expect(r.code, r.stderr).toBe(0);
    node.sh("printf '%s\\n%s\\n' pw pw | smbpasswd -s -a artist >/dev/null");
    const path = model(x, "clip", "clip.safetensors");
    node.startSmbd();
    const del = node.client("artist", "pw", "ki_Daten", "cd models-upload/clip; del clip.safetensors");
    expect(del.code, del.out).toBe(0);
    expect(existsSync(path)).toBe(false);
    // Through wide links the bin keeps the path the user saw.
    expect(node.sh(`cd ${x.storage.root} && find . -path '*.recycle*' -type f`)).toBe("./storage-user/.recycle/models-upload/clip/clip.safetensors\n");
  });

  it("why the bin is made beforehand: smbd, forced to the owner, cannot make it in root's share root, and purges", () => {
    const x = site(tempRoot());
    skeleton(x);
    node = new SambaNode(USERS);
    expect(node.run(renderSmbShare(x.smb, x.storage)).code).toBe(0);
    node.sh(`rmdir ${x.storage.root}/.recycle && printf '%s\\n%s\\n' pw pw | smbpasswd -s -a artist >/dev/null`);
    const path = model(x, "vae", "vae.safetensors");
    node.startSmbd();
    expect(node.client("artist", "pw", "ki_Daten", "cd storage-models/models/vae; del vae.safetensors").code).toBe(0);
    expect([existsSync(path), existsSync(join(x.storage.root, ".recycle"))]).toEqual([false, false]);
  });

  it("a share of a leaf: the owner makes the bin (root never acts in the owner's folder); a link planted there is refused", () => {
    const x = site(tempRoot(), { path: "storage-user/input" });
    skeleton(x);
    const outside = decoy();
    const before = outside.digest();
    node = new SambaNode(USERS);
    const input = join(x.storage.root, "storage-user/input");
    asOwner(`ln -s ${outside.open} ${input}/.recycle`);
    const r = node.run(renderSmbShare(x.smb, x.storage));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`modelshare: ${input}/.recycle is a symbolic link \\(to ${outside.open}\\)`));
    asOwner(`rm ${input}/.recycle`);
    const ok = node.run(renderSmbShare(x.smb, x.storage));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`changed: created folder ${input}/.recycle`);
    expect(statSync(join(input, ".recycle")).uid).toBe(OWNER.uid);
    expect(outside.digest()).toEqual(before);
  });
});

describe("share names against the admin's own Samba configuration", () => {
  it("Samba merges two sections whose names differ only in case (what the refusal prevents)", () => {
    node = new SambaNode(USERS, "[Models]\n   path = /srv/theirs\n   read only = yes\n[models]\n   path = /srv/ours\n");
    expect(node.sh("testparm -s 2>/dev/null | grep -ci '^\\[models\\]'; testparm -s --section-name=Models --parameter-name=path 2>/dev/null")).toBe(
      "1\n/srv/ours\n",
    );
  });

  // prettier-ignore
  it.each([
    ["the share", { share: "ki_Daten" }, "[KI_daten]", "smb.share"],
    ["the models share", { modelsShare: "ki_Models" }, "[KI_MODELS]", "smb.modelsShare"],
  ])("%s named like an admin's section (any case) stops the run naming both, and writes nothing", (_what, smb, section, key) => {
    const x = site(tempRoot(), smb);
    skeleton(x);
    node = new SambaNode(USERS, `${section}\n   path = /srv\n`);
    const r = node.run(renderSmbShare(x.smb, x.storage));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is already a section of this node's Samba configuration, ${section}`);
    expect(r.stderr).toContain(`Choose another ${key}, or rename or remove ${section} in /etc/samba/smb.conf`);
    expect(node.sh("test -e /etc/samba/modelshare.conf && echo written || echo none")).toBe("none\n");
  });

  it("modelshare's own include is not the admin's: a second converge of the same names passes", () => {
    const x = site(tempRoot(), { modelsShare: "ki_Models" });
    skeleton(x);
    node = new SambaNode(USERS);
    expect(node.run(renderSmbShare(x.smb, x.storage)).code).toBe(0);
    const again = node.run(renderSmbShare(x.smb, x.storage));
    expect([again.code, again.changed], again.stderr).toEqual([0, 0]);
  });
});

describe("a Samba account that existed before modelshare", () => {
  const entry = (n: SambaNode, name: string) => n.try(`pdbedit -L -w -u ${name} 2>/dev/null`).stdout;
  const passwords = (x: Site, verb: "converge" | "remove" = "converge") =>
    node!.run(renderSmbPasswords(x.smb, x.storage), verb, `${PW.artist}\n${PW.viewer}\n`);

  it("is refused without adopt, naming the account and the key; its password stays the admin's and none is printed", () => {
    const x = site(tempRoot());
    node = new SambaNode(USERS);
    node.sh("printf '%s\\n%s\\n' admins-pw admins-pw | smbpasswd -s -a artist >/dev/null");
    const before = entry(node, "artist");
    const says = /modelshare: the Samba account artist existed before modelshare \(pdbedit -L lists it\).*set smb\.users\[0\]\.adopt: true/;
    // The share first: the account never reaches modelshare's share with someone else's password.
    skeleton(x);
    const share = node.run(renderSmbShare(x.smb, x.storage));
    expect([share.code, share.stderr]).toEqual([1, expect.stringMatching(says)]);
    expect(node.sh("test -e /etc/samba/modelshare.conf && echo written || echo none")).toBe("none\n");
    const r = passwords(x);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(says);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/PW-SECRET|admins-pw|viewer-pw/);
    expect(entry(node, "artist")).toBe(before);
  });

  it("adopted, its password is the stack's; destroy deletes only the account modelshare created", () => {
    const x = site(tempRoot(), {
      users: [
        { name: "artist", passwordKey: "smbPasswordArtist", adopt: true },
        { name: "viewer", passwordKey: "smbPasswordViewer" },
      ],
    });
    node = new SambaNode(USERS);
    node.sh("printf '%s\\n%s\\n' admins-pw admins-pw | smbpasswd -s -a artist >/dev/null");
    const before = entry(node, "artist");
    const r = passwords(x);
    expect(r.code, r.stderr).toBe(0);
    expect(entry(node, "artist")).not.toBe(before);
    expect(node.sh("for u in artist viewer; do sed -n 4p /var/lib/modelshare/smb-passwords/$u; done")).toBe("adopted\ncreated\n");
    expect(passwords(x).changed).toBe(0);
    const gone = passwords(x, "remove");
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toContain("changed: let go of the adopted Samba account artist (the account and its password stay)");
    expect(gone.stdout).toContain("changed: removed the SMB password of viewer");
    expect([entry(node, "artist") !== "", entry(node, "viewer")]).toEqual([true, ""]);
  });

  it("a record written before modelshare kept the origin counts as created (destroy deletes it, as before)", () => {
    const x = site(tempRoot());
    node = new SambaNode(USERS);
    expect(passwords(x).code).toBe(0);
    node.sh("sed -i 4d /var/lib/modelshare/smb-passwords/artist");
    expect(passwords(x).changed).toBe(0);
    passwords(x, "remove");
    expect(entry(node, "artist")).toBe("");
  });
});
