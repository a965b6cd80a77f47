import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import { configReference } from "./helpers/configReference";

const readme = readFileSync("README.md", "utf8");
const between = (start: string, end: string) => readme.slice(readme.indexOf(start) + start.length, readme.indexOf(end)).trim();

describe("README", () => {
  it("holds the config reference generated from the schema", () => {
    expect(between("<!-- config-reference:start -->", "<!-- config-reference:end -->")).toBe(configReference());
  });

  it("its seeds example is a valid site with the seeds' layout", () => {
    const block = between("<!-- seeds-example -->\n```yaml", "\n```\n\nThen:");
    const config = (parse(block) as { config: Record<string, unknown> }).config;
    const raw = Object.fromEntries(Object.entries(config).filter(([k]) => !k.endsWith(":sshKey")).map(([k, v]) => [k.split(":")[1], v]));
    const site = parseSite(raw, { homedir: "/home/x" });
    expect(site.nodes.find((n) => n.roles.includes("storage"))?.host).toBe("192.168.0.6");
    expect(site.storage.root).toBe("/vol/service/cw");
    expect(site.storage.links).toEqual(["storage-user/models-upload"]);
    expect(site.storage.categories).toHaveLength(8);
    expect(site.smb.share).toBe("ki_Daten");
  });

  it("gives the test command that CI runs", () => {
    expect(readme).toMatch(/^npm test +#/m);
    expect(readFileSync(".ci/run", "utf8")).toMatch(/^npm test\b/m);
  });
});
