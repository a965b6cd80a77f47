import { afterEach, describe, expect, it, vi } from "vitest";
import { renderWarm, warmDir } from "../components/cache/warm";
import { parseSite } from "../components/config";
import type { StackSite } from "../components/stackConfig";
import {
  lineSplitter,
  finish,
  formatProgress,
  formatSummary,
  newWarmNode,
  parseWarmArgs,
  takeLine,
  WARM_USAGE,
  warmExitCode,
  warmMain,
  warmTargets,
  type WarmNode,
} from "../ops/warm";
import { shellcheck } from "./helpers/shellcheck";
import { SEEDS_ROOT, seedsWithNfs } from "./fixtures/site";

/**
 * `npm run warm`: the program rendered exactly and shellcheck-clean, and the CLI's side as pure
 * functions: its arguments, which workers and categories it warms (an unknown one refused with
 * the valid ones), how it reads the program's lines, the summary and the exit codes. The
 * program run for real: test/warm.run.test.ts.
 */
const site = (raw: Record<string, any> = {}) =>
  parseSite({ ...seedsWithNfs(), storage: { root: SEEDS_ROOT, categories: ["checkpoints", "loras"] }, ...raw }, { homedir: "/home/ada" });
const FRAME = "0123456789abcdef0123456789abcdef";
const thisProgram = (text: string) => text.slice(text.indexOf("# --- this program ---"));

describe("the warm program", () => {
  it("checks the mounts as root and reads the categories below the mount point as the owner", () => {
    const s = site().storage;
    const text = renderWarm({ storage: s, base: "/mnt/modelshare", categories: ["checkpoints", "loras"], mounts: ["/mnt/modelshare"], cache: true });
    expect(thisProgram(text)).toBe(
      [
        "# --- this program ---",
        "program_title='warm checkpoints, loras under /mnt/modelshare'",
        "storage_root='/mnt/modelshare'",
        "owner_uid='1000'",
        "owner_gid='1000'",
        "owner_steps=yes",
        ...["converge_privileged", "converge_owner", "remove_privileged", "remove_owner"].flatMap((f) => [`${f}() {`, "  :", "}"]),
        "report_privileged() {",
        "  warm_mounts 'modelshare' '/mnt/modelshare'",
        "  :",
        "}",
        "report_owner() {",
        "  warm_categories '/mnt/modelshare/storage-models/models/checkpoints' '/mnt/modelshare/storage-models/models/loras'",
        "  :",
        "}",
        'modelshare_main "$@" </dev/null',
        "",
      ].join("\n"),
    );
  });

  it("quotes every value (a mount point with a quote, a space and a $) and stays shellcheck-clean", () => {
    const s = site().storage;
    const base = "/mnt/it's a $HOME";
    const text = renderWarm({ storage: s, base, categories: ["loras"], mounts: [base], cache: false });
    expect(text).toContain(`warm_mounts '' '/mnt/it'\\''s a $HOME'`);
    expect(text).toContain(`warm_categories '/mnt/it'\\''s a $HOME/storage-models/models/loras'`);
    // The literal $HOME is on purpose: SC2016 (info) asks whether it was meant to expand.
    expect(shellcheck([text], ["--exclude=SC2016"])).toBe("");
    expect(shellcheck([renderWarm({ storage: s, base: "/mnt/modelshare", categories: ["loras"], mounts: ["/mnt/modelshare"], cache: true })])).toBe("");
  });

  it("finds a category below the base where the storage node has it below its root", () => {
    const s = site({ storage: { root: SEEDS_ROOT, models: "store/m", categories: ["vae"] } }).storage;
    expect(warmDir(s, "/mnt/ms", "vae")).toBe("/mnt/ms/store/m/vae");
  });
});

describe("npm run warm: the arguments", () => {
  it("takes a stack, then any number of --category and --node", () => {
    expect(parseWarmArgs(["prod"])).toEqual({ stack: "prod", categories: [], nodes: [] });
    expect(parseWarmArgs(["prod", "--category", "loras", "--node", "gpu2", "--category", "vae"])).toEqual({
      stack: "prod",
      categories: ["loras", "vae"],
      nodes: ["gpu2"],
    });
  });

  it.each([[[]], [["--node", "gpu1"]], [["prod", "--category"]], [["prod", "--node", "--category", "x"]], [["prod", "--json"]], [["prod", "loras"]]])(
    "answers %j with the usage line",
    (argv) => {
      expect(parseWarmArgs(argv)).toBe(WARM_USAGE);
    },
  );

  it("warms every NFS worker and every category by default, the ones named otherwise", () => {
    const all = warmTargets(site(), { categories: [], nodes: [] });
    if (typeof all === "string") throw new Error(all);
    expect(all.map((t) => t.node.name)).toEqual(["gpu1", "gpu2"]);
    expect(all[0].program).toContain("warm_categories '/mnt/modelshare/storage-models/models/checkpoints' '/mnt/modelshare/storage-models/models/loras'");
    const some = warmTargets(site(), { categories: ["loras"], nodes: ["gpu2"] });
    if (typeof some === "string") throw new Error(some);
    expect(some.map((t) => t.node.name)).toEqual(["gpu2"]);
    expect(some[0].program).toContain("warm_categories '/mnt/modelshare/storage-models/models/loras'\n");
  });

  it("tells the program whether nfs.cache is on", () => {
    const on = warmTargets(site({ nfs: { enabled: true, cache: { enabled: true } } }), { categories: [], nodes: [] });
    if (typeof on === "string") throw new Error(on);
    expect(on[0].program).toContain("warm_mounts 'modelshare' '/mnt/modelshare'");
  });

  it("refuses an unknown node (the storage node too: it has no NFS mount) or category, naming it and the valid ones", () => {
    expect(warmTargets(site(), { categories: [], nodes: ["gpu3"] })).toBe('node "gpu3" is not known; the nodes to warm are: gpu1, gpu2');
    expect(warmTargets(site(), { categories: [], nodes: ["storage"] })).toBe('node "storage" is not known; the nodes to warm are: gpu1, gpu2');
    expect(warmTargets(site(), { categories: ["lora", "vae"], nodes: [] })).toBe(
      'categories "lora", "vae" are not known; the categories to warm are: checkpoints, loras',
    );
  });

  it("says there is nothing to warm on a stack without NFS workers", () => {
    expect(warmTargets(site({ nfs: { enabled: false } }), { categories: [], nodes: [] })).toMatch(/no NFS worker/);
  });
});

describe("npm run warm: exit codes of the command itself", () => {
  afterEach(() => vi.restoreAllMocks());
  const stack = async (): Promise<StackSite> => ({ config: site(), sshKeys: {}, smbPasswords: {} });

  it("exits 2 with the usage line, or naming an unknown category, before dialling any node", async () => {
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const out: string[] = [];
    expect(await warmMain(["--node"], stack, (s) => out.push(s))).toBe(2);
    expect(await warmMain(["prod", "--category", "embeddings"], stack, (s) => out.push(s))).toBe(2);
    expect(err.mock.calls.map((c) => String(c[0]))).toEqual([
      `${WARM_USAGE}\n`,
      'modelshare: category "embeddings" is not known; the categories to warm are: checkpoints, loras\n',
    ]);
    expect(out).toEqual([]);
  });
});

describe("npm run warm: the program's lines, progress and summary", () => {
  const fed = (lines: string[]) => {
    const n = newWarmNode("gpu2");
    for (const l of lines) takeLine(n, l, FRAME);
    return n;
  };
  const f = (l: string) => `${FRAME} ${l}`;

  it("counts what the categories hold and what was read, only from lines with the frame", () => {
    const n = fed([
      f("note: nfs.cache is off: this warm only fills the page cache"),
      f("report: warm-category 3000000000 2 /mnt/modelshare/m/checkpoints"),
      f("report: warm-category 0 0 /mnt/modelshare/m/loras"),
      f("report: warm-links 0 1 /mnt/modelshare/m/checkpoints"),
      f("report: warm-absent 0 0 /mnt/modelshare/m/vae"),
      f(String.raw`report: warmed 2000000000 1 /mnt/modelshare/m/checkpoints/a\nb`),
      // Not framed: a planted name's second line, or a tool's own output. Never counted.
      "report: warmed 999 1 /fake",
      `${"f".repeat(32)} report: warmed 999 1 /fake`,
    ]);
    expect(n).toMatchObject({ planned: { files: 2, bytes: 3e9 }, files: 1, bytes: 2e9, failedFiles: 0, done: false });
    expect(n.notes).toEqual([
      "nfs.cache is off: this warm only fills the page cache",
      "1 link(s) in /mnt/modelshare/m/checkpoints not followed",
      "no folder /mnt/modelshare/m/vae: nothing to warm there",
    ]);
    expect(formatProgress(n)).toBe("gpu2: 1/2 files, 2.0 GB of 3.0 GB");
  });

  it("shows a terminal's escape from a name as text", () => {
    const n = fed([f("report: warm-absent 0 0 /m/\x1b]0;x\x07")]);
    expect(n.notes).toEqual([String.raw`no folder /m/\x1b]0;x\x07: nothing to warm there`]);
  });

  it("fails a node whose program refused or did not get to its closing line", () => {
    const refused = fed([]);
    finish(refused, { code: 1, stdout: "", stderr: `${FRAME} modelshare: /mnt/modelshare is not mounted: converge this worker first\n` }, FRAME);
    expect(refused.error).toBe("/mnt/modelshare is not mounted: converge this worker first");
    const cut = fed([f("report: warmed 10 1 /m/a")]);
    finish(cut, { code: 255, stdout: "", stderr: "Killed\n" }, FRAME);
    expect(cut.error).toBe("the warm did not run to its end (exit 255): Killed");
    const ok = fed([f("report: warmed 10 1 /m/a"), f("drift=0")]);
    finish(ok, { code: 0, stdout: "", stderr: "" }, FRAME);
    expect(ok.error).toBeUndefined();
  });

  it("reads the program's output as whole lines, however its chunks split them (a character too)", () => {
    const got: string[] = [];
    const split = lineSplitter((l) => got.push(l));
    const bytes = Buffer.from(`${f("report: warmed 3 1 /m/café")}\n${f("drift=0")}`);
    const at = bytes.indexOf(Buffer.from("é")) + 1; // inside the two bytes of é
    for (const chunk of [bytes.subarray(0, 5), bytes.subarray(5, at), bytes.subarray(at)]) split.push(chunk);
    expect(got).toEqual([f("report: warmed 3 1 /m/café")]);
    split.end();
    expect(got).toEqual([f("report: warmed 3 1 /m/café"), f("drift=0")]);
  });

  const node = (over: Partial<WarmNode>): WarmNode => ({ ...newWarmNode("n"), ...over });

  it("sums up per node and in total, naming the nodes that were not warmed", () => {
    const nodes = [
      node({ node: "gpu1", files: 40, bytes: 12_300_000_000, ms: 60_000, done: true }),
      node({ node: "gpu2", files: 3, bytes: 2_000_000, failedFiles: 1, ms: 1500, done: true }),
      node({ node: "gpu3", error: "/mnt/modelshare is not mounted", ms: 100 }),
      node({ node: "gpu4", unreachable: true, error: "could not connect to root@gpu4:22 (3 dials of at most 10 s): timed out", ms: 30_000 }),
    ];
    expect(formatSummary(nodes, 61_000)).toBe(
      [
        "warm summary:",
        "  gpu1: 40 files, 12.3 GB in 60.0 s, 205.0 MB/s",
        "  gpu2: FAILED: 1 file(s) could not be read (3 files, 2.0 MB in 1.5 s, 1.3 MB/s)",
        "  gpu3: FAILED: /mnt/modelshare is not mounted (0 files, 0 B in 0.1 s, 0 B/s before that)",
        "  gpu4: UNREACHABLE: could not connect to root@gpu4:22 (3 dials of at most 10 s): timed out",
        "  total: 43 files, 12.3 GB in 61.0 s on 4 node(s); not warmed: gpu2, gpu3, gpu4",
        "",
      ].join("\n"),
    );
  });

  it("exits 0 when every node warmed all, 1 when one failed, 2 when one could not be reached", () => {
    const ok = node({ done: true });
    expect(warmExitCode([ok])).toBe(0);
    expect(warmExitCode([ok, node({ failedFiles: 1 })])).toBe(1);
    expect(warmExitCode([ok, node({ error: "refused" })])).toBe(1);
    expect(warmExitCode([node({ error: "refused" }), node({ unreachable: true, error: "x" })])).toBe(2);
  });
});
