import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { planItem, type PlanItem } from "../components/concern";
import { CONCERNS } from "../components/concerns";
import { SECTIONS } from "../components/config";
import { Site } from "../components/site";
import { checkOrder, planSite, stdinOf } from "../components/plan";
import { loadSite } from "../components/loadSite";
import { siteFromConfig } from "../components/stackConfig";
import { declare, reveal } from "./harness/declare";
import { RECORDED_SITES } from "./helpers/recordPlan";

const everything = RECORDED_SITES["seeds-everything"];
const stack = () => siteFromConfig(everything.config, (k) => everything.secretKeys.includes(k));
const item = (name: string, after: string[]): PlanItem =>
  planItem({
    kind: "layout",
    type: "modelshare:test:Item",
    name,
    node: stack().config.nodes[0],
    after,
    programs: [{ text: "#!/usr/bin/env bash\n", removes: false }],
  });

describe("the plan: one source for pulumi up and npm run check", () => {
  it("every Command pulumi up declares runs exactly the program check runs (text and stdin), and every converging program is declared", async () => {
    const site = stack();
    // Without a convergeToken: the token is the one line a Command adds to its program.
    const config = Object.fromEntries(Object.entries(everything.config).filter(([k]) => k !== "modelshare:convergeToken"));
    const declared = await declare({ stack: "plan", config, secretKeys: everything.secretKeys }, () => new Site("site", loadSite()));
    const commands = declared.filter((r) => r.type.startsWith("command:") && r.inputs.create !== undefined);
    const programs = planSite(site.config).flatMap((p) => p.programs.filter((x) => x.converges));
    expect(commands.map((c) => c.name).sort()).toEqual(programs.map((p) => p.name).sort());
    for (const program of programs) {
      const command = commands.find((c) => c.name === program.name);
      expect(reveal(command?.inputs.stdin), program.name).toBe(stdinOf(program, site));
      expect(command?.inputs.delete !== undefined, program.name).toBe(program.removes);
    }
    // The SMB passwords follow their program on stdin, in the users' order, and nowhere else.
    const passwords = programs.find((p) => p.name === "storage-smb-passwords");
    expect(stdinOf(passwords!, site).endsWith(`${passwords!.text}recorded-password\n`)).toBe(true);
  });

  it("names each program after its item, and check reports a converge program as its item", () => {
    const plan = planSite(stack().config);
    const smb = plan.find((p) => p.kind === "smb");
    expect(smb?.programs.map((p) => [p.name, p.component])).toEqual([
      ["storage-smb-converge", "storage-smb"],
      ["storage-smb-passwords", "storage-smb-passwords"],
    ]);
    const container = plan.find((p) => p.name === "gpu1-comfyui");
    expect(container?.programs.map((p) => [p.name, p.converges])).toEqual([["gpu1-comfyui-container", false]]);
  });

  it("every item waits only for items planned before it: storage first, then what serves it, then what uses it", () => {
    const plan = planSite(stack().config);
    const order = plan.map((p) => p.name);
    for (const p of plan) for (const a of p.after) expect(order.indexOf(a), `${p.name} after ${a}`).toBeLessThan(order.indexOf(p.name));
    const after = (name: string) => plan.find((p) => p.name === name)?.after;
    expect(after("storage-smb")).toEqual(["storage-layout", "storage-links-storage-user/models", "storage-links-storage-user/models-upload"]);
    expect(after("gpu1-nfs-mount")).toEqual(["storage-nfs-export"]);
    expect(after("gpu2-ollama")).toEqual(["gpu2-nfs-mount"]);
    expect(after("storage-ollama")).toEqual(["storage-layout"]);
    expect(after("gpu2-forge")).toEqual(["gpu2-docker", "gpu2-nfs-mount"]);
    expect(after("storage-docker")).toEqual(["storage-layout", "storage-links-storage-user/models", "storage-links-storage-user/models-upload"]);
  });

  it("refuses an after that names an item planned later, or none, naming both", () => {
    expect(() => checkOrder([item("a", []), item("b", ["a"])])).not.toThrow();
    expect(() => checkOrder([item("a", ["b"]), item("b", [])])).toThrow("modelshare: plan item a waits for b, which is planned after it");
    expect(() => checkOrder([item("a", ["ghost"])])).toThrow("modelshare: plan item a waits for ghost, which is not planned");
    expect(() => checkOrder([item("a", []), item("a", [])])).toThrow("modelshare: two plan items are named a");
  });

  it("the config's sections are the nodes and each concern's, in the list's order", () => {
    expect(CONCERNS.map((c) => c.name)).toEqual(["storage", "catalog", "intake", "models", "smb", "cache", "nfs", "services", "installers", "kubernetes"]);
    expect(SECTIONS).toEqual(["nodes", "storage", "projects", "catalog", "models", "smb", "nfs", "services", "ollama", "comfyui", "kubernetes"]);
  });
});

describe("what the plan loads", () => {
  // Counted in a fresh process (bench/modules.ts): the plan, its renderers and the check tool
  // are pure, so `npm run check` and most tests never load Pulumi's ~800 modules.
  const loads = (file: string) => {
    const r = spawnSync(process.execPath, [require.resolve("tsx/cli"), "bench/modules.ts", file], { encoding: "utf8" });
    const m = /loaded=(\d+) pulumi=(\d+)/.exec(r.stdout);
    if (!m) throw new Error(`bench/modules.ts ${file}: ${r.stdout}${r.stderr}`);
    return { loaded: Number(m[1]), pulumi: Number(m[2]) };
  };
  it.each(["components/plan.ts", "ops/check.ts", "components/stackConfig.ts"])("%s loads no Pulumi module", (file) => {
    expect(loads(file).pulumi).toBe(0);
  });
  it("while the program itself does (the count is real)", () => {
    expect(loads("components/site.ts").pulumi).toBeGreaterThan(0);
  });
});
