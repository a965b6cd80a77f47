import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { declare, isSecretValue, reveal, type Declared } from "./harness/declare";
import { stackConfig } from "./harness/stack";
import { flatConfig, HOST_KEY, PRIVATE_KEY, SECRET_MARKER, SEEDS_ROOT, seedsLinks, seedsSite } from "./fixtures/site";

/** The seeds' storage node and gpu1 with both links folders, as the stack's config (no key yet). */
const seeds = flatConfig({ ...seedsSite(), storage: { root: SEEDS_ROOT, links: seedsLinks() } });

const build = () => new Site("site", loadSite());
const byName = (rs: Declared[], name: string) => {
  const r = rs.find((x) => x.name === name);
  if (!r) throw new Error(`no resource ${name} among ${rs.map((x) => x.name).join(", ")}`);
  return r;
};

describe("the resource graph under mocks", () => {
  it("the seeds' site: a layout, one link set per links folder and the environment file, on the storage node only, over SSH", async () => {
    const rs = await declare({ stack: "seeds", config: { ...seeds, "modelshare:sshKey": PRIVATE_KEY }, secretKeys: ["modelshare:sshKey"] }, build);
    expect(rs.map((r) => `${r.type} ${r.name}`).sort()).toEqual([
      "command:remote:Command storage-catalog-converge",
      "command:remote:Command storage-env-converge",
      "command:remote:Command storage-layout-converge",
      "command:remote:Command storage-links-storage-user/models-converge",
      "command:remote:Command storage-links-storage-user/models-upload-converge",
      "modelshare:catalog:ModelCatalog storage-catalog",
      "modelshare:installers:NodeEnv storage-env",
      "modelshare:site:Site site",
      "modelshare:storage:StorageLayout storage-layout",
      "modelshare:storage:SymlinkSet storage-links-storage-user/models",
      "modelshare:storage:SymlinkSet storage-links-storage-user/models-upload",
    ]);
    const layout = byName(rs, "storage-layout-converge");
    const links = byName(rs, "storage-links-storage-user/models-upload-converge");
    expect(layout.parent).toBe(byName(rs, "storage-layout").urn);
    expect(byName(rs, "storage-layout").parent).toBe(byName(rs, "site").urn);
    expect(links.dependencies).toContain(layout.urn);
    expect(links.deleteBeforeReplace).toBe(true);
    expect(layout.inputs.delete).toBeUndefined(); // destroy never touches the folders
    expect(reveal(layout.inputs.connection)).toEqual({
      host: "192.168.0.6",
      port: 22,
      user: "root",
      privateKey: PRIVATE_KEY,
      hostKey: HOST_KEY,
      perDialTimeout: 10,
      dialErrorLimit: 3,
    });
    expect(layout.inputs.addPreviousOutputInEnv).toBe(false);
    // The program travels on stdin; the command is three words any login shell parses alike.
    expect(layout.inputs.create).toBe("bash -s converge");
    expect(String(layout.inputs.stdin)).toMatch(/^#!\/usr\/bin\/env bash\n# modelshare: storage layout under \/vol\/service\/cw\n/);
    expect(links.inputs.create).toBe("bash -s converge");
    expect(links.inputs.delete).toBe("bash -s remove");
    expect(String(links.inputs.stdin)).toContain(
      "ensure_link '/vol/service/cw/storage-user/models-upload/checkpoints' '../../storage-models/models/checkpoints' '/vol/service/cw/storage-models/models/checkpoints'",
    );
    expect(String(links.inputs.stdin)).toContain("remove_link ");
  });

  it("a new convergeToken changes only each program's text: an in-place update that re-runs create, never a replace", async () => {
    const withToken = (token: string) =>
      declare(
        { stack: "seeds", config: { ...seeds, "modelshare:sshKey": PRIVATE_KEY, "modelshare:convergeToken": token }, secretKeys: ["modelshare:sshKey"] },
        build,
      );
    const [a, b] = [await withToken("2026-11-23T10:00:00.000Z"), await withToken("2026-11-24T10:00:00.000Z")];
    const commands = a.filter((r) => r.custom);
    expect(commands).toHaveLength(5); // layout, two link sets, the catalog, the environment file
    for (const ra of commands) {
      const rb = byName(b, ra.name);
      const { stdin: sa, ...restA } = reveal(ra.inputs) as Record<string, unknown>;
      const { stdin: sb, ...restB } = reveal(rb.inputs) as Record<string, unknown>;
      expect(restB, ra.name).toEqual(restA); // create, delete, connection: unchanged (a connection change would replace)
      expect(ra.inputs.triggers).toBeUndefined();
      expect(String(sa)).toContain("\n# converge token: 2026-11-23T10:00:00.000Z\n");
      expect(String(sb).replace("2026-11-24", "2026-11-23")).toBe(sa);
    }
  });

  it("keeps the SSH key a secret: wrapped as one and never in plain text in any input", async () => {
    const rs = await declare({ stack: "seeds", config: { ...seeds, "modelshare:sshKey": PRIVATE_KEY }, secretKeys: ["modelshare:sshKey"] }, build);
    const commands = rs.filter((r) => r.type === "command:remote:Command");
    expect(commands).toHaveLength(5);
    for (const c of commands) {
      const connection = c.inputs.connection as Record<string, unknown>;
      expect(isSecretValue(connection) || isSecretValue(connection.privateKey)).toBe(true);
      const plain = JSON.stringify({ ...c.inputs, connection: undefined });
      expect(plain).not.toContain(SECRET_MARKER);
    }
  });

  it("the dev stack file runs locally under the user's home, with the other sections switched off", async () => {
    const { config, secretKeys } = stackConfig("Pulumi.dev.yaml");
    const home = process.env.HOME;
    process.env.HOME = "/home/ada"; // the dev stack is a user's; a root under /root is refused
    const rs = await declare({ stack: "dev", config, secretKeys }, build).finally(() => {
      process.env.HOME = home;
    });
    const commands = rs.filter((r) => r.custom);
    expect(commands.map((r) => r.type)).toEqual(["command:local:Command", "command:local:Command", "command:local:Command", "command:local:Command"]);
    expect(commands[0].inputs.connection).toBeUndefined();
    expect(commands[0].inputs.create).toBe("bash -s converge");
    expect(String(commands[0].inputs.stdin)).toContain(`\n  '/home/ada/modelshare-dev/storage-models/models/checkpoints' 'owner' '00775' \\\n`);
    expect(String(commands[0].inputs.stdin)).toContain("\nowner_uid=''\n");
  });

  it("the stack outputs name the storage node, the model store, each links folder and each category folder", async () => {
    let outputs: Record<string, unknown> = {};
    await declare({ stack: "seeds", config: { ...seeds, "modelshare:sshKey": PRIVATE_KEY }, secretKeys: ["modelshare:sshKey"] }, async () => {
      const program = await import("../index");
      const settle = (o: any) => new Promise((resolve) => (o?.apply ? o.apply(resolve) : resolve(o)));
      outputs = Object.fromEntries(await Promise.all(Object.entries(program).map(async ([k, v]) => [k, await settle(v)])));
    });
    expect(outputs).toEqual({
      storageNode: "storage",
      storageRoot: "/vol/service/cw",
      modelStore: "/vol/service/cw/storage-models/models",
      linkFolders: ["/vol/service/cw/storage-user/models", "/vol/service/cw/storage-user/models-upload"],
      categoryFolders: expect.objectContaining({
        checkpoints: "/vol/service/cw/storage-models/models/checkpoints",
        clip: "/vol/service/cw/storage-models/models/clip",
      }),
      projectFolders: {},
    });
    expect(Object.keys(outputs.categoryFolders as object)).toHaveLength(8);
  });
});

describe("config the program refuses before declaring anything", () => {
  const refused = async (config: Record<string, string>, secretKeys: string[] = []) => {
    let declared: Declared[] = [];
    const attempt = declare({ stack: "bad", config, secretKeys }, build).then((rs) => {
      declared = rs;
    });
    await expect(attempt).rejects.toThrow(/nothing was changed on any node/);
    // A RunError: the engine prints its message once, without a stack trace.
    await expect(attempt).rejects.toSatisfy((e: unknown) => pulumi.RunError.isInstance(e));
    expect(declared).toEqual([]);
    return attempt.catch((e: Error) => e.message);
  };

  it("an SSH key stored in plain text", async () => {
    expect(await refused({ ...seeds, "modelshare:sshKey": PRIVATE_KEY })).toMatch(
      /modelshare:sshKey: is stored in plain text; .*pulumi config set --secret sshKey/,
    );
  });
  it("a missing SSH key, naming the nodes that need it", async () => {
    expect(await refused(seeds)).toMatch(/modelshare:sshKey: missing; node\(s\) storage, gpu1 need/);
  });
  it("a secret that is not a private key", async () => {
    expect(await refused({ ...seeds, "modelshare:sshKey": "hunter2" }, ["modelshare:sshKey"])).toMatch(/does not hold a private key/);
  });
  it("a misspelt setting", async () => {
    expect(await refused({ ...seeds, "modelshare:sshKey": PRIVATE_KEY, "modelshare:storge": "{}" }, ["modelshare:sshKey"])).toMatch(
      /modelshare:storge: is not a modelshare setting/,
    );
  });
  it("a bad value anywhere", async () => {
    expect(await refused({ ...seeds, "modelshare:storage": JSON.stringify({ root: "/etc/models" }) })).toMatch(
      /storage\.root: "\/etc\/models" is inside the system path \/etc/,
    );
  });
});
