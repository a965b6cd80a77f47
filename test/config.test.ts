import { describe, expect, it } from "vitest";
import { DEFAULT_CATEGORIES, isLocal, parseSite, SiteConfigError } from "../components/config";
import { gpu1Node, gpu2Node, HOST_KEY as KEY, SEEDS_ROOT, storageNode } from "./fixtures/site";
import { expectProblem, problemsOf, type Rejected } from "./helpers/rejected";

/** The base64 of an ssh-rsa key blob (type, exponent, a short modulus). */
const RSA_BLOB = Buffer.concat(
  [
    [7, "ssh-rsa"],
    [3, "\x01\x00\x01"],
    [4, "\x00\xc1\x02\x03"],
  ].map(([n, v]) => Buffer.concat([Buffer.from([0, 0, 0, n as number]), Buffer.from(v as string, "latin1")])),
).toString("base64");

/**
 * The seeds' site: storage 192.168.0.6 with SMB and NFS, two GPU workers; here gpu1 is reached by
 * name (the duplicate-host rule below repeats gpu1.lan) and gpu2 by address.
 */
function seeds(): any {
  return { nodes: [storageNode(), gpu1Node({ host: "gpu1.lan" }), gpu2Node({ host: "192.168.0.21" })], storage: { root: SEEDS_ROOT } };
}

const parse = (raw: unknown, homedir = "/home/ada") => parseSite(raw, { homedir });

const problems = (mutate: (site: any) => void) => problemsOf(seeds, mutate);

describe("a valid site", () => {
  it("fills in the documented defaults", () => {
    const site = parse(seeds());
    expect(site.storage).toMatchObject({
      models: "storage-models/models",
      user: "storage-user",
      categories: DEFAULT_CATEGORIES,
      links: ["storage-user/models-upload"],
      owner: { uid: 1000, gid: 1000, allowRoot: false },
      modes: { models: "0775", user: "0775" },
      minFreeGB: 50,
    });
    expect(site.nodes[0]).toMatchObject({ port: 22, user: "root", sshKey: "sshKey", insecureSkipHostKeyCheck: false });
    expect(site.smb).toMatchObject({ enabled: false, share: "ki_Daten", encryption: "desired", macos: true, audit: true });
    expect(DEFAULT_CATEGORIES).toEqual(["checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip", "diffusion_models"]);
  });

  it("accepts ComfyUI's other folder names, both links folders, IPv6 hosts and an explicit opt-out of host keys", () => {
    const raw = seeds();
    raw.storage.categories = ["checkpoints", "clip_vision", "style_models", "gligen", "photomaker", "unet"];
    raw.storage.links = ["storage-user/models", "storage-user/models-upload"];
    raw.nodes[1] = { name: "gpu1", host: "fd00::21", insecureSkipHostKeyCheck: true, roles: ["worker"] };
    expect(() => parse(raw)).not.toThrow();
  });

  it("expands ~/ for a localhost storage node, and lets it go without a host key", () => {
    const site = parse({ nodes: [{ name: "dev", host: "localhost", roles: ["storage"] }], storage: { root: "~/modelshare-dev", owner: "unmanaged" } });
    expect(site.storage.root).toBe("/home/ada/modelshare-dev");
    expect(site.storage.owner).toBe("unmanaged");
  });

  it("checks a ~/ root once expanded, like any other root", () => {
    const dev = { nodes: [{ name: "dev", host: "localhost", roles: ["storage"] }], storage: { root: "~/models" } };
    expect(() => parse(dev, "/etc")).toThrow(/storage\.root: ~\/models is \/etc\/models, which "\/etc\/models" is inside the system path \/etc/);
    expect(() => parse(dev, "/home/it's")).toThrow(/shell characters/);
  });

  it("takes localhost, any 127.x address and ::1 for this machine, run without SSH or a host key", () => {
    for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
      const site = parse({ nodes: [{ name: "here", host, roles: ["storage"] }], storage: { root: "~/models" } });
      expect(isLocal(site.nodes[0]), host).toBe(true);
    }
    for (const host of ["192.168.0.6", "fd00::1", "localhost.lan", "::ffff:192.168.0.6"]) expect(isLocal({ host }), host).toBe(false);
  });

  it("accepts a root inside a user's home and names of 255 bytes", () => {
    const raw = seeds();
    raw.storage.root = "/home/ada/models";
    raw.storage.projects = "é".repeat(127) + "x";
    expect(parse(raw).storage.root).toBe("/home/ada/models");
  });

  it("accepts root ownership only with the explicit opt-in", () => {
    const raw = seeds();
    raw.storage.owner = { uid: 0, gid: 0, allowRoot: true };
    expect(parse(raw).storage.owner).toEqual({ uid: 0, gid: 0, allowRoot: true });
  });

  it("collects every problem in one error that says nothing was changed", () => {
    const raw = seeds();
    raw.storage.root = "relative";
    raw.nodes[1].host = "bad host";
    expect(() => parse(raw)).toThrow(/nothing was changed on any node/);
    try {
      parse(raw);
    } catch (e) {
      expect((e as SiteConfigError).problems).toHaveLength(2);
    }
  });
});

// Each case: what is wrong, how to make it wrong, the key the message must name, and a word of
// what it must say.
// prettier-ignore
const rejected: Rejected[] = [
  ["relative root", (s) => { s.storage.root = "vol/service/cw"; }, "storage.root", /absolute/],
  ["root with ..", (s) => { s.storage.root = "/vol/../etc"; }, "storage.root", /"\.\." segment/],
  ["root with .", (s) => { s.storage.root = "/vol/./cw"; }, "storage.root", /"\." segment/],
  ["root with //", (s) => { s.storage.root = "/vol//cw"; }, "storage.root", /\/\//],
  ["root ending in /", (s) => { s.storage.root = "/vol/cw/"; }, "storage.root", /end with/],
  ["root with a newline", (s) => { s.storage.root = "/vol/cw\nrm"; }, "storage.root", /control character/],
  ["root with $", (s) => { s.storage.root = "/vol/$(reboot)"; }, "storage.root", /shell characters/],
  ["root with a quote", (s) => { s.storage.root = "/vol/it's"; }, "storage.root", /shell characters/],
  ["root with ;", (s) => { s.storage.root = "/vol/a;b"; }, "storage.root", /shell characters/],
  ["root with a leading -", (s) => { s.storage.root = "/vol/-rf"; }, "storage.root", /not first/],
  ["root /", (s) => { s.storage.root = "/"; }, "storage.root", /system path \/[;]/],
  ["root /etc", (s) => { s.storage.root = "/etc"; }, "storage.root", /system path \/etc/],
  ["root inside /usr", (s) => { s.storage.root = "/usr/local/models"; }, "storage.root", /inside the system path \/usr/],
  ["root inside /var/lib/docker", (s) => { s.storage.root = "/var/lib/docker/volumes/m"; }, "storage.root", /\/var\/lib\/docker/],
  ["root /home", (s) => { s.storage.root = "/home"; }, "storage.root", /system path \/home/],
  ["~ root on an SSH storage node", (s) => { s.storage.root = "~/models"; }, "storage.root", /localhost/],
  ["absolute models folder", (s) => { s.storage.models = "/models"; }, "storage.models", /relative/],
  ["models with ..", (s) => { s.storage.models = "../models"; }, "storage.models", /"\.\."/],
  ["models inside the outputs", (s) => { s.storage.models = "storage-user/output/models"; }, "storage.user", /overlaps storage\.models/],
  ["links folder inside its own target", (s) => { s.storage.links = ["storage-models/models/upload"]; }, "storage.links[0]", /own target/],
  ["links folder containing the model store", (s) => { s.storage.links = ["storage-models"]; }, "storage.links[0]", /contains storage\.models/],
  ["links folder inside the outputs", (s) => { s.storage.links = ["storage-user/output/links"]; }, "storage.links[0]", /services read and write/],
  ["links folder equal to the user area", (s) => { s.storage.links = ["storage-user"]; }, "storage.links[0]", /user area itself/],
  ["links folder listed twice", (s) => { s.storage.links = ["storage-user/models", "storage-user/models"]; }, "storage.links[1]", /twice/],
  ["ollama folder inside the model store", (s) => { s.storage.ollamaModels = "storage-models/models/ollama"; }, "storage.ollamaModels", /overlaps storage\.models/],
  ["unknown category", (s) => { s.storage.categories = ["checkpoints", "lora"]; }, "storage.categories[1]", /not a ComfyUI model folder/],
  ["duplicate category", (s) => { s.storage.categories = ["vae", "loras", "vae"]; }, "storage.categories[2]", /same kind/],
  ["alias duplicate unet/diffusion_models", (s) => { s.storage.categories = ["diffusion_models", "unet"]; }, "storage.categories[1]", /same kind/],
  ["alias duplicate clip/text_encoders", (s) => { s.storage.categories = ["clip", "text_encoders"]; }, "storage.categories[1]", /same kind/],
  ["no categories", (s) => { s.storage.categories = []; }, "storage.categories", /at least one/],
  ["output folder with a /", (s) => { s.storage.outputs = ["ComfyUI/x"]; }, "storage.outputs[0]", /one folder name/],
  ["output folders differing only in case", (s) => { s.storage.outputs = ["ComfyUI", "comfyui"]; }, "storage.outputs[1]", /case-insensitively/],
  ["duplicate node names, case-insensitive", (s) => { s.nodes[1].name = "GPU2"; }, "nodes[2].name", /already the name of nodes\[1\]/],
  ["duplicate hosts", (s) => { s.nodes[2].host = "gpu1.lan"; }, "nodes[2].host", /same machine as the host of nodes\[1\]/],
  ["no storage node", (s) => { s.nodes[0].roles = ["worker"]; }, "nodes", /no node has the storage role/],
  ["two storage nodes", (s) => { s.nodes[1].roles = ["storage"]; }, "nodes", /both have the storage role/],
  ["smb role off the storage node", (s) => { s.nodes[1].roles = ["worker", "smb"]; }, "nodes[1].roles", /must be on the storage node/],
  ["unknown role", (s) => { s.nodes[1].roles = ["gpu"]; }, "nodes[1].roles[0]", /one of storage, smb, nfs-server, worker/],
  ["no roles", (s) => { s.nodes[1].roles = []; }, "nodes[1].roles", /at least one role/],
  ["role listed twice", (s) => { s.nodes[1].roles = ["worker", "worker"]; }, "nodes[1].roles", /twice/],
  ["uid 0 without opt-in", (s) => { s.storage.owner = { uid: 0, gid: 1000 }; }, "storage.owner", /allowRoot/],
  ["gid 0 without opt-in", (s) => { s.storage.owner = { uid: 1000, gid: 0 }; }, "storage.owner", /allowRoot/],
  ["uid out of range", (s) => { s.storage.owner = { uid: 4294967295, gid: 1000 }; }, "storage.owner", /.+/],
  ["negative gid", (s) => { s.storage.owner = { uid: 1000, gid: -1 }; }, "storage.owner", /.+/],
  ["host with a space", (s) => { s.nodes[1].host = "gpu 1"; }, "nodes[1].host", /not a hostname or IP/],
  ["host that is a bad IPv4", (s) => { s.nodes[1].host = "192.168.0.300"; }, "nodes[1].host", /not a hostname or IP/],
  ["host with a shell character", (s) => { s.nodes[1].host = "gpu1;reboot"; }, "nodes[1].host", /not a hostname or IP/],
  ["host with an underscore label", (s) => { s.nodes[1].host = "-gpu.lan"; }, "nodes[1].host", /not a hostname or IP/],
  ["port out of range", (s) => { s.nodes[1].port = 70000; }, "nodes[1].port", /.+/],
  ["SSH node without a host key", (s) => { delete s.nodes[1].hostKey; }, "nodes[1].hostKey", /insecureSkipHostKeyCheck/],
  ["host key that is not a public key", (s) => { s.nodes[1].hostKey = "AAAA"; }, "nodes[1].hostKey", /host public key/],
  ["host key with the opt-out at once", (s) => { s.nodes[1].insecureSkipHostKeyCheck = true; }, "nodes[1].insecureSkipHostKeyCheck", /contradicts/],
  ["node name with a dot", (s) => { s.nodes[1].name = "gpu.1"; }, "nodes[1].name", /letters, digits or -/],
  ["unquoted YAML mode", (s) => { s.storage.modes = { models: 775 }; }, "storage.modes.models", /quoted octal/],
  ["mode the owner cannot use", (s) => { s.storage.modes = { user: "0575" }; }, "storage.modes.user", /owner rwx/],
  ["unknown storage key", (s) => { s.storage.rooot = "/x"; }, "storage", /rooot/],
  ["negative free space", (s) => { s.storage.minFreeGB = -1; }, "storage.minFreeGB", /.+/],
  ["relative NFS mount point", (s) => { s.nfs = { mountPoint: "mnt/models" }; }, "nfs.mountPoint", /absolute/],
  ["service on an unknown node", (s) => { s.services = { comfyui: { nodes: ["gpu9"] } }; }, "services.comfyui.nodes[0]", /no node is named/],
  ["service on a non-worker", (s) => { s.services = { ollama: { nodes: ["storage"] } }; }, "services.ollama.nodes[0]", /no worker role/],
  ["a UI service without an image", (s) => { s.services = { comfyui: { enabled: true, nodes: ["gpu1"] } }; }, "services.comfyui.image", /no default image for ComfyUI/],
  // System areas, hidden folders, a home folder itself
  ...["/root/models", "/var/lib/models", "/var/spool/m", "/var/mail/m", "/var/cache/m", "/var/backups/m", "/boot/m"].map(
    (root): [string, (s: any) => void, string, RegExp] => [`root ${root}`, (s) => { s.storage.root = root; }, "storage.root", /inside the system path/]),
  ["root with a hidden folder", (s) => { s.storage.root = "/srv/.models"; }, "storage.root", /hidden folder name "\.models"/],
  ["hidden models folder", (s) => { s.storage.models = "storage-models/.models"; }, "storage.models", /hidden folder name/],
  ["a user's home folder itself", (s) => { s.storage.root = "/home/ada"; }, "storage.root", /home folder itself; use a folder inside it such as \/home\/ada\/models/],
  // Byte lengths, not characters
  ["a folder name of 256 bytes", (s) => { s.storage.projects = "é".repeat(128); }, "storage.projects", /256 bytes.*at most 255/],
  ["a root of more than 4095 bytes", (s) => { s.storage.root = `/vol/${Array(17).fill("x".repeat(250)).join("/")}`; }, "storage.root", /bytes long; Linux paths hold at most 4095/],
  ["a root that leaves no room for the longest category", (s) => {
    s.storage.root = `/vol/${Array(16).fill("x".repeat(250)).join("/")}/${"y".repeat(40)}`; // 4061 bytes
    s.storage.categories = ["latent_upscale_models"];
  }, "storage.categories[0]", /bytes long, and Linux paths hold at most 4095; shorten storage\.root or storage\.categories\[0\]/],
  // Names SMB clients cannot use
  ["output folder ending in a space", (s) => { s.storage.outputs = ["Comfy "]; }, "storage.outputs[0]", /ends in a space/],
  ["output folder ending in a dot", (s) => { s.storage.outputs = ["Forge."]; }, "storage.outputs[0]", /ends in a dot/],
  ["a DOS device name", (s) => { s.storage.projects = "CON"; }, "storage.projects", /device name Windows reserves/],
  ["a DOS device name with an extension", (s) => { s.storage.user = "files/nul.txt"; }, "storage.user", /device name Windows reserves/],
  ["COM1 as an output", (s) => { s.storage.outputs = ["com1"]; }, "storage.outputs[0]", /device name/],
  ["a colon in a name", (s) => { s.storage.outputs = ["Comfy:UI"]; }, "storage.outputs[0]", /no shell characters/],
  ["folders differing only in case", (s) => { s.storage.models = "Storage-Models/models"; }, "storage.ollamaModels", /"storage-models" and "Storage-Models" \(from storage\.models\) differ only in case/],
  ["folders differing only in Unicode form", (s) => { s.storage.outputs = ["\u00c5ngstr\u00f6m", "\u212bngstr\u00f6m"]; }, "storage.outputs[1]", /differ only in case or Unicode form/],
  // The NFS mount point
  ["a system mount point", (s) => { s.nfs = { mountPoint: "/etc/modelshare" }; }, "nfs.mountPoint", /inside the system path \/etc; choose a folder of its own such as \/mnt\/modelshare/],
  ["/mnt itself as the mount point", (s) => { s.nfs = { mountPoint: "/mnt" }; }, "nfs.mountPoint", /is the system path \/mnt/],
  // Hosts
  ["localhost and 127.0.0.1 as two nodes", (s) => { s.nodes[1].host = "LOCALHOST"; s.nodes[2].host = "127.0.0.1"; }, "nodes[2].host", /same machine as the host of nodes\[1\]/],
  ["::1 and localhost as two nodes", (s) => { s.nodes[1].host = "localhost"; s.nodes[2].host = "::1"; }, "nodes[2].host", /same machine/],
  ["an IPv4-mapped IPv6 address of another node", (s) => { s.nodes[2].host = "::ffff:192.168.0.6"; }, "nodes[2].host", /same machine as the host of nodes\[0\]/],
  ["a host with a port", (s) => { s.nodes[1].host = "gpu1.lan:2222"; }, "nodes[1].host", /holds a port: set host: gpu1\.lan and port: 2222/],
  ["an IPv6 host in brackets", (s) => { s.nodes[1].host = "[fd00::21]"; }, "nodes[1].host", /without the brackets \(fd00::21\)/],
  ["a host key whose base64 holds another type", (s) => { s.nodes[1].hostKey = `ssh-ed25519 ${RSA_BLOB}`; }, "nodes[1].hostKey", /says ssh-ed25519, but its base64 holds a ssh-rsa key/],
  ["a host key cut short", (s) => { s.nodes[1].hostKey = KEY.slice(0, -8); }, "nodes[1].hostKey", /not a whole ssh-ed25519 key/],
  ["a host key of garbage base64", (s) => { s.nodes[1].hostKey = "ssh-ed25519 AAAAAAAA"; }, "nodes[1].hostKey", /holds no SSH key/],
  // Keys and owner
  ["an SSH key named like a section", (s) => { s.nodes[1].sshKey = "storage"; }, "nodes[1].sshKey", /name of the modelshare:storage section/],
  ["an owner without gid", (s) => { s.storage.owner = { uid: 1000 }; }, "storage.owner", /gid is missing; write owner: \{ uid: 1000, gid: 1000 \}/],
  ["an owner uid written as text", (s) => { s.storage.owner = { uid: "1000", gid: 1000 }; }, "storage.owner", /uid is the text "1000"; write a number without quotes, e.g\. uid: 1000/],
];

describe("rejects before any node is touched", () => {
  it.each(rejected)("%s", (_what, mutate, key, says) => {
    expectProblem(problems(mutate), key, says);
  });

  it("has at least 30 cases", () => expect(rejected.length).toBeGreaterThanOrEqual(30));
});
