import { readdirSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseSite, SECTIONS } from "../components/config";
import { configReference } from "./helpers/configReference";

const readme = readFileSync("README.md", "utf8");
const between = (start: string, end: string) => readme.slice(readme.indexOf(start) + start.length, readme.indexOf(end)).trim();

describe("README", () => {
  it("holds the config reference generated from the schema", () => {
    expect(between("<!-- config-reference:start -->", "<!-- config-reference:end -->")).toBe(configReference());
  });

  it("its seeds example is a valid site with the seeds' layout", () => {
    const block = between("<!-- seeds-example -->\n```yaml", "\n```\n\nThen, from this folder");
    const config = (parse(block) as { config: Record<string, unknown> }).config;
    // The sections only: the secret keys (SSH key, SMB passwords) are read by stackConfig.
    const raw = Object.fromEntries(Object.entries(config).map(([k, v]) => [k.split(":")[1], v]).filter(([k]) => (SECTIONS as readonly string[]).includes(k as string)));
    const site = parseSite(raw, { homedir: "/home/x" });
    expect(site.nodes.find((n) => n.roles.includes("storage"))?.host).toBe("192.168.0.6");
    expect(site.storage.root).toBe("/vol/service/cw");
    expect(site.storage.links).toEqual(["storage-user/models-upload"]);
    expect(site.storage.categories).toHaveLength(8);
    expect(site.smb).toMatchObject({ enabled: true, share: "ki_Daten" });
    expect(Object.keys(config)).toEqual(expect.arrayContaining(site.smb.users.map((u) => `modelshare:${u.passwordKey}`)));
  });

  it("names every test file", () => {
    const files = [...readdirSync("test").map((f) => `test/${f}`), ...readdirSync("test/lab").map((f) => `test/lab/${f}`)]
      .filter((f) => f.endsWith(".test.ts"));
    expect(files.length).toBeGreaterThanOrEqual(14);
    for (const f of files) expect(readme, f).toContain(`\`${f}\``);
  });

  it("tells the truth about Node and Pulumi: Node 22 as the SDK needs, the CLI on the SDK's version", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8"));
    const sdk = JSON.parse(readFileSync("node_modules/@pulumi/pulumi/package.json", "utf8"));
    const cli = JSON.parse(readFileSync("node_modules/pulumi/package.json", "utf8"));
    expect(pkg.engines.node).toBe(sdk.engines.node);
    expect(readme).toContain(`Node.js ${sdk.engines.node.replace(">=", "")}+`);
    expect(pkg.devDependencies.pulumi).toBe(pkg.dependencies["@pulumi/pulumi"]);
    expect(cli.version).toBe(sdk.version);
    expect(readFileSync(".ci/run", "utf8")).toContain(`npx -y node@${sdk.engines.node.replace(">=", "")}`);
    // Commands a user types: the CLI comes from npm, so never a bare `pulumi` at a line's start.
    expect(readme.match(/^pulumi /gm)).toBeNull();
  });

  it("gives the test command that CI runs", () => {
    expect(readme).toMatch(/^npm test +#/m);
    expect(readFileSync(".ci/run", "utf8")).toMatch(/^npm test\b/m);
  });
});
