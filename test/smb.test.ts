import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { call } from "../components/shell/quote";
import { DIRS, renderProgram, shellLib, SYSTEM } from "../components/shell/script";
import { needsWideLinks, renderRecycleUnits, renderSmbConf } from "../components/smb/conf";
import { renderSmbPasswords, renderSmbShare, shareFolders } from "../components/smb/share";
import { Site } from "../components/site";
import { siteFromConfig } from "../components/stackConfig";
import { loadSite } from "../components/loadSite";
import { declare, isSecretValue, reveal, type Declared } from "./harness/declare";
import { runProgram } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";
import { flatConfig, PRIVATE_KEY, SEEDS_ROOT, seedsLinks, seedsSite } from "./fixtures/site";

const PASSWORD = "PW-SECRET 'q' $HOME";

/** The seeds' storage node with its SMB share: an artist uploads, a viewer downloads. */
function seeds(smb: Record<string, unknown> = {}): any {
  return {
    ...seedsSite(),
    storage: { root: SEEDS_ROOT, links: seedsLinks() },
    smb: {
      enabled: true,
      users: [
        { name: "artist", passwordKey: "smbPasswordArtist" },
        { name: "viewer", passwordKey: "smbPasswordViewer", readOnly: true },
      ],
      hostsAllow: ["192.168.0.0/24"],
      ...smb,
    },
  };
}
const parse = (raw: unknown) => parseSite(raw, { homedir: "/home/ada" });
const problems = (mutate: (site: any) => void) => problemsOf(seeds, mutate);

describe("modelshare:smb", () => {
  it("fills in the documented defaults", () => {
    expect(parse(seeds()).smb).toEqual({
      enabled: true,
      share: "ki_Daten",
      path: "",
      allowAnyHost: false,
      encryption: "desired",
      minProtocol: "SMB2_10",
      macos: true,
      recycle: { enabled: true, days: 30 },
      audit: true,
      hostsAllow: ["192.168.0.0/24"],
      users: [
        { name: "artist", passwordKey: "smbPasswordArtist", readOnly: false, adopt: false },
        { name: "viewer", passwordKey: "smbPasswordViewer", readOnly: true, adopt: false },
      ],
    });
  });

  it("accepts single addresses, IPv6 networks, any host with its opt-in, and a folder of the layout as path", () => {
    expect(() => parse(seeds({ hostsAllow: ["192.168.0.20", "fd00:1::/64", "10.0.0.0/8"] }))).not.toThrow();
    expect(() => parse(seeds({ hostsAllow: ["0.0.0.0/0"], allowAnyHost: true }))).not.toThrow();
    expect(() => parse(seeds({ path: "storage-user" }))).not.toThrow();
  });

  // prettier-ignore
  const rejected: Rejected[] = [
    ["a share name Samba reserves", (s) => { s.smb.share = "Homes"; }, "smb.share", /reserves/],
    ["a share name with a $", (s) => { s.smb.share = "print$"; }, "smb.share", /letters, digits/],
    ["a models share named like the share", (s) => { s.smb.modelsShare = "KI_DATEN"; }, "smb.modelsShare", /already the name of smb\.share/],
    ["an upper-case user name", (s) => { s.smb.users[0].name = "Artist"; }, "smb.users[0].name", /Linux user name/],
    ["root as an SMB user", (s) => { s.smb.users[0].name = "root"; }, "smb.users[0].name", /system account/],
    ["a user without a password key", (s) => { delete s.smb.users[1].passwordKey; }, "smb.users[1].passwordKey", /missing: name the secret config key/],
    ["a user listed twice", (s) => { s.smb.users[1].name = "artist"; }, "smb.users[1].name", /already smb\.users\[0\]/],
    ["no users", (s) => { s.smb.users = []; }, "smb.users", /at least one user/],
    ["a password key that is a section", (s) => { s.smb.users[0].passwordKey = "storage"; }, "smb.users[0].passwordKey", /setting of its own; name the key after the user, e.g\. smbPasswordArtist/],
    ["a password key that holds an SSH key", (s) => { s.smb.users[0].passwordKey = "sshKey"; }, "smb.users[0].passwordKey", /holds a node's SSH key/],
    ["no hostsAllow", (s) => { s.smb.hostsAllow = []; }, "smb.hostsAllow", /is required/],
    ["a hostsAllow entry that is a name", (s) => { s.smb.hostsAllow = ["office.lan"]; }, "smb.hostsAllow[0]", /not an IP address or network/],
    ["a network with host bits set", (s) => { s.smb.hostsAllow = ["192.168.0.1/24"]; }, "smb.hostsAllow[0]", /host bits set; the network is 192\.168\.0\.0\/24/],
    ["a prefix too long", (s) => { s.smb.hostsAllow = ["10.0.0.0/33"]; }, "smb.hostsAllow[0]", /from 0 to 32/],
    ["an IPv6 network with host bits set", (s) => { s.smb.hostsAllow = ["fd00::1/64"]; }, "smb.hostsAllow[0]", /host bits set/],
    ["every address without the opt-in", (s) => { s.smb.hostsAllow = ["0.0.0.0/0"]; }, "smb.hostsAllow[0]", /allowAnyHost/],
    ["every IPv6 address without the opt-in", (s) => { s.smb.hostsAllow = ["::/0"]; }, "smb.hostsAllow[0]", /allowAnyHost/],
    ["an unknown encryption", (s) => { s.smb.encryption = "yes"; }, "smb.encryption", /off, if_required, desired, required/],
    ["SMB1 as the minimum", (s) => { s.smb.minProtocol = "NT1"; }, "smb.minProtocol", /SMB2_10, SMB3, SMB3_11/],
    ["a path the layout does not make", (s) => { s.smb.path = "elsewhere"; }, "smb.path", /not a folder the storage layout makes/],
    ["a recycle bin kept 0 days", (s) => { s.smb.recycle = { days: 0 }; }, "smb.recycle.days", /.+/],
    ["an SMB share and no node with the smb role", (s) => { s.nodes[0].roles = ["storage"]; }, "smb.enabled", /no node has the smb role/],
    ["the smb role off the storage node", (s) => { s.nodes[1].roles = ["worker", "smb"]; }, "nodes[1].roles", /must be on the storage node/],
    ["an unknown key", (s) => { s.smb.guest = true; }, "smb", /guest/],
  ];
  it.each(rejected)("rejects %s, naming the key", (_what, mutate, key, says) => {
    expectProblem(problems(mutate), key, says);
  });
});

/** The stack's config as the engine hands it over: sections as JSON, secrets by key. */
const values = (smb?: Record<string, unknown>, passwords: Record<string, string> = { smbPasswordArtist: PASSWORD, smbPasswordViewer: "viewer-pw" }) =>
  flatConfig(seeds(smb), { sshKey: PRIVATE_KEY, ...passwords });
const SECRET_KEYS = ["modelshare:sshKey", "modelshare:smbPasswordArtist", "modelshare:smbPasswordViewer"];

describe("SMB passwords in the stack config", () => {
  it("loads each user's password from its secret key", () => {
    expect(siteFromConfig(values(), (k) => SECRET_KEYS.includes(k)).smbPasswords).toEqual({ artist: PASSWORD, viewer: "viewer-pw" });
  });

  // prettier-ignore
  it.each([
    ["stored in plain text", values(), (k: string) => k !== "modelshare:smbPasswordArtist", /modelshare:smbPasswordArtist: is stored in plain text; .*pulumi config rm smbPasswordArtist && pulumi config set --secret smbPasswordArtist/],
    ["missing", values(undefined, { smbPasswordArtist: PASSWORD } as any), (k: string) => SECRET_KEYS.includes(k), /modelshare:smbPasswordViewer: missing; the SMB user viewer needs a password there/],
    ["holding a line break", values(undefined, { smbPasswordArtist: `${PASSWORD}\n`, smbPasswordViewer: "v" }), (k: string) => SECRET_KEYS.includes(k), /modelshare:smbPasswordArtist: holds a control character/],
    ["empty", values(undefined, { smbPasswordArtist: "", smbPasswordViewer: "v" }), (k: string) => SECRET_KEYS.includes(k), /modelshare:smbPasswordArtist: must hold 1 to 128 characters/],
  ])("refuses a password %s, without ever showing it", (_what, config, isSecret, says) => {
    let message = "";
    try {
      siteFromConfig(config, isSecret);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(says);
    expect(message).not.toContain("PW-SECRET");
  });
});

/** The lines of one section of a rendered smb.conf, without their indentation. */
const section = (conf: string, name: string) => {
  const lines = conf.split("\n");
  const start = lines.indexOf(`[${name}]`);
  expect(start, `no [${name}]`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && /^\[/.test(l));
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .map((l) => l.trim())
    .filter(Boolean);
};

describe("what modelshare writes for Samba", () => {
  it("the seeds' share: no guests, listed users and hosts only, uploads forced to the storage owner with the layout's modes, no wide links", () => {
    const site = parse(seeds({ modelsShare: "ki_Models" }));
    const conf = renderSmbConf(site.smb, site.storage);
    expect(section(conf, "global")).toEqual(["server min protocol = SMB2_10", "fruit:aapl = yes", "fruit:nfs_aces = no"]);
    const share = section(conf, "ki_Daten");
    expect(share).toEqual(
      expect.arrayContaining([
        "path = /vol/service/cw",
        "read only = no",
        "valid users = artist viewer",
        "read list = viewer",
        "guest ok = no",
        "hosts allow = 192.168.0.0/24",
        "hosts deny = ALL",
        "server smb encrypt = desired",
        "force user = @owner_user@",
        "force group = @owner_group@",
        "create mask = 0664",
        "force create mode = 0664",
        "directory mask = 0775",
        "force directory mode = 0775",
        "follow symlinks = yes",
        "wide links = no",
        "vfs objects = full_audit recycle catia fruit streams_xattr",
        "recycle:repository = .recycle",
        "full_audit:prefix = %U|%I|%S",
      ]),
    );
    expect(section(conf, "ki_Models")).toEqual(
      expect.arrayContaining([
        "path = /vol/service/cw/storage-models/models",
        "read only = yes",
        "valid users = artist viewer",
        "hosts deny = ALL",
        "wide links = no",
      ]),
    );
    expect(conf).not.toMatch(/allow insecure wide links|guest ok = yes|map to guest/);
  });

  it("wide links only when the share holds links into a model store outside it, and then unix extensions off in [global]", () => {
    const user = parse(seeds({ path: "storage-user" }));
    expect(needsWideLinks(user.smb, user.storage)).toBe(true);
    const conf = renderSmbConf(user.smb, user.storage);
    expect(section(conf, "global")).toContain("unix extensions = no");
    expect(section(conf, "ki_Daten")).toEqual(expect.arrayContaining(["path = /vol/service/cw/storage-user", "wide links = yes"]));
    for (const path of ["", "storage-models/models", "storage-user/output"]) {
      const site = parse(seeds({ path }));
      expect(needsWideLinks(site.smb, site.storage), path).toBe(false);
      expect(renderSmbConf(site.smb, site.storage)).not.toContain("unix extensions");
    }
  });

  it("options switched off leave their modules out; setgid folder modes carry over", () => {
    const raw = seeds({ macos: false, recycle: { enabled: false }, audit: false, encryption: "required", minProtocol: "SMB3" });
    raw.storage.modes = { models: "2775", user: "2770" };
    const site = parse(raw);
    const conf = renderSmbConf(site.smb, site.storage);
    expect(conf).not.toMatch(/vfs objects|fruit|recycle|full_audit/);
    expect(section(conf, "global")).toEqual(["server min protocol = SMB3"]);
    expect(section(conf, "ki_Daten")).toEqual(
      expect.arrayContaining(["server smb encrypt = required", "create mask = 0660", "directory mask = 0770", "force directory mode = 2770"]),
    );
    const program = renderSmbShare(site.smb, site.storage);
    expect(program).toContain("\n  smb_no_recycle\n");
  });

  it("the recycle bin empties as the storage owner, never following a link or leaving the filesystem", () => {
    const site = parse(seeds({ recycle: { days: 7 } }));
    const { service, timer } = renderRecycleUnits(site.smb, site.storage);
    expect(service.split("\n")).toEqual(
      expect.arrayContaining([
        "User=@owner_uid@",
        "Group=@owner_gid@",
        "NoNewPrivileges=yes",
        'ExecStart=/usr/bin/find -P "/vol/service/cw/.recycle" -xdev -mindepth 1 ( -type f -o -type l ) -cmin +10080 -delete',
      ]),
    );
    expect(timer).toContain("OnCalendar=daily");
  });

  it("the share program: packages, accounts and configuration as root, nothing as the owner; both programs are shellcheck-clean", () => {
    const site = parse(seeds({ modelsShare: "ki_Models" }));
    const share = renderSmbShare(site.smb, site.storage);
    const passwords = renderSmbPasswords(site.smb, site.storage);
    expect(share).toContain(
      "\n  ensure_packages 'samba' 'samba-vfs-modules'\n  smb_owner\n  smb_accounts 'artist' 'viewer'\n  smb_adoptions \\\n  'artist' 'create' 'smb.users[0].adopt' \\\n  'viewer' 'create' 'smb.users[1].adopt'\n  smb_folders '/vol/service/cw' '/vol/service/cw/storage-models/models'\n" +
        "  smb_names 'smb.share' 'ki_Daten' 'smb.modelsShare' 'ki_Models'\n  smb_one_filesystem '/vol/service/cw' \\\n  '/vol/service/cw/storage-models' \\\n",
    );
    expect(share).toContain("\n  '/vol/service/cw/storage-user/output/Forge'\n  smb_bin '/vol/service/cw' '00775'\n  smb_conf '# Written by modelshare");
    expect(share).toContain("\nowner_steps=no\n");
    expect(share).toContain("\nremove_privileged() {\n  smb_no_recycle\n  smb_unconf\n");
    expect(passwords).toContain("\n  smb_passwords \\\n  'artist' 'create' 'smb.users[0].adopt' \\\n  'viewer' 'create' 'smb.users[1].adopt'\n");
    expect(passwords).toContain('\nmodelshare_main "$@" 3<&0 </dev/null\n');
    expect(shellcheck([share, passwords])).toBe("");
  });

  it("the stack outputs' paths: Explorer's UNC path and Finder's URL for each user folder in the share", () => {
    const site = parse(seeds());
    const where = shareFolders("192.168.0.6", site.smb, site.storage);
    expect(where.unc).toBe("\\\\192.168.0.6\\ki_Daten");
    expect(where.url).toBe("smb://192.168.0.6/ki_Daten");
    expect(where.folders["storage-user/models-upload"]).toEqual({
      windows: "\\\\192.168.0.6\\ki_Daten\\storage-user\\models-upload\\",
      finder: "smb://192.168.0.6/ki_Daten/storage-user/models-upload/",
    });
    expect(Object.keys(where.folders)).toEqual([
      "storage-user/models",
      "storage-user/models-upload",
      "storage-user/output",
      "storage-user/input",
      "storage-user/workflows",
    ]);
    const v6 = shareFolders("fd00::6", parse(seeds({ path: "storage-user" })).smb, site.storage);
    expect(v6.unc).toBe("\\\\fd00--6.ipv6-literal.net\\ki_Daten");
    expect(v6.folders["output"].finder).toBe("smb://[fd00::6]/ki_Daten/output/");
  });
});

describe("packages", () => {
  // apt-get here is a stand-in that records each call and fails, as on a node without a mirror.
  const withoutMirror = () => {
    const bin = mkdtempSync(join(tmpdir(), "modelshare-apt-"));
    writeFileSync(join(bin, "apt-get"), `#!/bin/sh\necho "$*" >> ${bin}/calls\necho 'E: no mirror' >&2\nexit 100\n`, { mode: 0o755 });
    return { bin, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } };
  };
  const install = (...packages: string[]) =>
    renderProgram({
      title: "packages",
      libs: [SYSTEM],
      storage: { root: "/nonexistent", owner: "unmanaged" },
      converge: { privileged: [call("ensure_packages", ...packages)] },
    });

  it("a node that has them never calls apt, so it converges without a mirror", () => {
    const { bin, env } = withoutMirror();
    const r = runProgram(install("coreutils", "bash"), "converge", { env });
    expect(r.stdout, r.stderr).toBe("changed=0\n");
    expect(existsSync(join(bin, "calls"))).toBe(false);
  });

  it("a missing one without a mirror stops the run with apt's words and a sentence", () => {
    const { bin, env } = withoutMirror();
    const r = runProgram(install("coreutils", "modelshare-no-such-package"), "converge", { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("E: no mirror");
    expect(r.stderr).toContain("modelshare: could not install modelshare-no-such-package with apt-get");
    expect(readFileSync(join(bin, "calls"), "utf8")).toMatch(/install .*-- modelshare-no-such-package\n/);
  });
});

describe("one filesystem for the share and its bin", () => {
  it("reads the devices of a root whose name ends in a space (the config allows it) as they are", () => {
    const root = join(mkdtempSync(join(tmpdir(), "modelshare-smbfs-")), "ki ");
    const folders = [join(root, "models "), join(root, "user")];
    for (const f of folders) mkdirSync(f, { recursive: true });
    const program = renderProgram({
      title: "one filesystem",
      libs: [SYSTEM, DIRS, shellLib(join(__dirname, "../components/smb"), "samba")],
      storage: { root: "/nonexistent", owner: "unmanaged" },
      converge: { privileged: [call("smb_one_filesystem", root, ...folders), 'note "one filesystem"'] },
    });
    const r = runProgram(program);
    expect(r.stdout, r.stderr).toBe("one filesystem\nchanged=0\n");
  });
});

describe("input that follows a program on stdin", () => {
  it("reaches the program's steps on fd 3 and nothing else: the program reads exactly its own length", () => {
    const program = renderProgram({
      title: "reads its input",
      libs: [],
      storage: { root: "/nonexistent", owner: "unmanaged" },
      converge: { privileged: ['IFS= read -r -u 3 first; IFS= read -r -u 3 second; note "got ${#first} and ${second}"'] },
      input: true,
    });
    const r = runProgram(`${program}${PASSWORD}\nsecond line\n`);
    expect(r.stdout, r.stderr).toBe(`got ${PASSWORD.length} and second line\nchanged=0\n`);
  });
});

const byName = (rs: Declared[], name: string) => rs.find((r) => r.name === name) ?? expect.fail(`no ${name} among ${rs.map((r) => r.name).join(", ")}`);

describe("the SMB share under mocks", () => {
  it("two commands after the layout and links: the share's program in the clear, the passwords as a secret input", async () => {
    const rs = await declare({ stack: "seeds", config: values(), secretKeys: SECRET_KEYS }, () => new Site("site", loadSite()));
    const share = byName(rs, "storage-smb-converge");
    const passwords = byName(rs, "storage-smb-passwords");
    expect(byName(rs, "storage-smb").type).toBe("modelshare:smb:SmbShare");
    expect(share.parent).toBe(byName(rs, "storage-smb").urn);
    // The engine expands a dependency on a component into its commands.
    expect(byName(rs, "storage-smb").dependencies).toEqual(
      expect.arrayContaining([byName(rs, "storage-layout-converge").urn, byName(rs, "storage-links-storage-user/models-upload-converge").urn]),
    );
    expect(passwords.dependencies).toContain(share.urn);
    expect(isSecretValue(share.inputs.stdin)).toBe(false);
    expect(String(share.inputs.stdin)).toContain("smb_conf '# Written by modelshare");
    expect(isSecretValue(passwords.inputs.stdin)).toBe(true);
    expect(reveal(passwords.inputs.stdin)).toMatch(new RegExp(`modelshare_main "\\$@" 3<&0 </dev/null\\n${PASSWORD.replace(/[$]/g, "\\$")}\\nviewer-pw\\n$`));
    for (const r of rs) {
      const { stdin, ...rest } = r.inputs;
      expect(JSON.stringify(rest), r.name).not.toContain("PW-SECRET");
      if (r !== passwords) expect(JSON.stringify(stdin ?? ""), r.name).not.toContain("PW-SECRET");
    }
    expect([share.inputs.create, share.inputs.delete, passwords.inputs.create, passwords.inputs.delete]).toEqual([
      "bash -s converge",
      "bash -s remove",
      "bash -s converge",
      "bash -s remove",
    ]);
  });
});
