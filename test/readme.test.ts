import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseSite, SECTIONS } from "../components/config";
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { generatedDocs } from "../scripts/generatedDocs";
import { declare } from "./harness/declare";
import { PRIVATE_KEY } from "./fixtures/site";

/**
 * The README and docs/ tell the truth about the code: the generated docs equal what
 * `npm run docs` writes, the README's example site is valid and yields the outputs it shows, and
 * the commands, paths and links it names exist.
 */
const readme = readFileSync("README.md", "utf8");
const docs = readdirSync("docs")
  .filter((f) => f.endsWith(".md"))
  .map((f) => `docs/${f}`);
const pkg = JSON.parse(readFileSync("package.json", "utf8"));

/** The fenced block right after `<!-- marker -->`. */
function blockAfter(marker: string): string {
  const at = readme.indexOf(`<!-- ${marker} -->\n\`\`\``);
  expect(at, `README.md has no <!-- ${marker} --> followed by a fenced block`).toBeGreaterThan(-1);
  const start = readme.indexOf("\n", readme.indexOf("```", at)) + 1; // after the fence's own line
  return readme.slice(start, readme.indexOf("\n```", start));
}

const example = () => (parse(blockAfter("site-example")) as { config: Record<string, unknown> }).config;

describe("generated docs", () => {
  it.each(Object.keys(generatedDocs()))("%s is what `npm run docs` writes", (file) => {
    const text = existsSync(file) ? readFileSync(file, "utf8") : "(missing)";
    expect(text, `${file} differs from the code it is generated from: run \`npm run docs\` and commit it`).toBe(generatedDocs()[file]);
  });

  it("documents each service key once, for every service", () => {
    const reference = generatedDocs()["docs/config-reference.md"];
    expect(reference).toContain("| `services.<service>.image` |");
    expect(reference).not.toMatch(/`services\.(comfyui|fooocus|forge|ollama)\./);
    const keys = [...reference.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe("README", () => {
  it("stays an operator's page: under 300 lines, the details in docs/", () => {
    expect(readme.split("\n").length).toBeLessThanOrEqual(300);
  });

  it("its example is a valid site with the seeds' layout, SMB, NFS and services", () => {
    const config = example();
    // The sections only: the secret keys (SSH key, SMB passwords) are read by stackConfig.
    const raw = Object.fromEntries(
      Object.entries(config)
        .map(([k, v]) => [k.split(":")[1], v])
        .filter(([k]) => (SECTIONS as readonly string[]).includes(k as string)),
    );
    const site = parseSite(raw, { homedir: "/home/x" });
    expect(site.nodes.find((n) => n.roles.includes("storage"))?.host).toBe("192.168.0.6");
    expect(site.storage.root).toBe("/vol/service/cw");
    expect(site.storage.links).toEqual(["storage-user/models-upload"]);
    expect(site.smb).toMatchObject({ enabled: true, share: "ki_Daten" });
    expect(site.nfs.enabled).toBe(true);
    expect(site.services.comfyui.enabled && site.services.ollama.enabled).toBe(true);
    expect(Object.keys(config)).toEqual(expect.arrayContaining(site.smb.users.map((u) => `modelshare:${u.passwordKey}`)));
  });

  it("shows the outputs the program gives for its example", async () => {
    const config = example();
    // The stack as the engine passes it: sections as JSON, the `secure:` keys as secrets.
    const secretKeys = Object.keys(config).filter((k) => (config[k] as { secure?: string })?.secure !== undefined);
    const values = Object.fromEntries(
      Object.entries(config).map(([k, v]) => [
        k,
        secretKeys.includes(k) ? (k.endsWith("sshKey") ? PRIVATE_KEY : "a password of the README's") : JSON.stringify(v),
      ]),
    );
    let outputs: Record<string, unknown> = {};
    await declare({ stack: "seeds", config: values, secretKeys }, async () => {
      const site = new Site("site", loadSite());
      const value = (o: unknown) => new Promise((resolve) => (o as { apply(f: (v: unknown) => void): void }).apply(resolve));
      outputs = {
        smbShare: { unc: await value(site.smbShare!.unc), url: await value(site.smbShare!.url), folders: await value(site.smbShare!.folders) },
        nfs: { export: await value(site.nfs!.export), mountCommand: await value(site.nfs!.mountCommand), mountPoints: await value(site.nfs!.mountPoints) },
        services: await value(site.services),
      };
    });
    // The README shows a part of each (abridged); what it shows must be what the program gives.
    expect(outputs).toMatchObject(JSON.parse(blockAfter("outputs-example")));
  });

  it("names only npm scripts that package.json defines, in the README and in docs/", () => {
    for (const file of ["README.md", ...docs]) {
      const text = readFileSync(file, "utf8");
      for (const [, script] of text.matchAll(/\bnpm run ([a-z][\w:-]*)/g)) expect(pkg.scripts, `${file}: npm run ${script}`).toHaveProperty([script]);
    }
    expect(readme).toMatch(/^npm ci && npm run dev +#/m);
  });

  it("gives the test command that CI runs", () => {
    expect(readme).toMatch(/^npm test +#/m);
    expect(readFileSync(".ci/run", "utf8")).toMatch(/^npm test\b/m);
  });

  it("maps folders and files that exist", () => {
    let folder = "";
    for (const line of blockAfter("folder-map").split("\n")) {
      const m = /^( *)(\S+)/.exec(line);
      if (!m || m[1].length > 2) continue; // a continued description
      const names = m[2].replace(/,$/, "");
      const paths = m[1] ? [names, ...(line.match(/^ *\S+, (\S+)/)?.slice(1) ?? [])].map((n) => `${folder}${n}`) : [names];
      if (!m[1] && names.endsWith("/")) folder = names;
      for (const p of paths) expect(existsSync(p.replace(/\/$/, "")), `README's folder map: ${p}`).toBe(true);
    }
  });

  it("links only to files and headings that exist, in the README and in docs/", () => {
    const anchors = (file: string) =>
      new Set(
        [...readFileSync(file, "utf8").matchAll(/^#+ (.+)$/gm)].map((m) =>
          m[1]
            .toLowerCase()
            .replace(/[^\w\- ]/g, "")
            .replace(/ /g, "-"),
        ),
      );
    for (const file of ["README.md", ...docs]) {
      for (const [, target] of readFileSync(file, "utf8").matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^https?:/.test(target)) continue;
        const [path, anchor] = target.split("#");
        const resolved = path ? join(dirname(file), path) : file;
        expect(existsSync(resolved), `${file} links to ${target}`).toBe(true);
        if (anchor) expect(anchors(resolved), `${file} links to ${target}`).toContain(anchor);
      }
    }
  });

  it("tells the truth about Node and Pulumi: Node 22 as the SDK needs, the CLI on the SDK's version", () => {
    const sdk = JSON.parse(readFileSync("node_modules/@pulumi/pulumi/package.json", "utf8"));
    const cli = JSON.parse(readFileSync("node_modules/pulumi/package.json", "utf8"));
    expect(pkg.engines.node).toBe(sdk.engines.node);
    expect(readme).toContain(`Node.js ${sdk.engines.node.replace(">=", "")}+`);
    expect(pkg.devDependencies.pulumi).toBe(pkg.dependencies["@pulumi/pulumi"]);
    expect(cli.version).toBe(sdk.version);
    expect(readFileSync(".ci/run", "utf8")).toContain(`npx -y node@${sdk.engines.node.replace(">=", "")}`);
    // Commands a user types: the CLI comes from npm, so never a bare `pulumi` at a line's start.
    for (const file of ["README.md", ...docs]) expect(readFileSync(file, "utf8").match(/^pulumi /gm), file).toBeNull();
  });
});

describe("docs/contributing.md", () => {
  it("names every test file", () => {
    const contributing = readFileSync("docs/contributing.md", "utf8");
    const files = [...readdirSync("test").map((f) => `test/${f}`), ...readdirSync("test/lab").map((f) => `test/lab/${f}`)].filter((f) =>
      f.endsWith(".test.ts"),
    );
    expect(files.length).toBeGreaterThanOrEqual(14);
    for (const f of files) expect(contributing, f).toContain(`\`${f}\``);
  });
});
