import { describe, expect, it } from "vitest";
import { duplicates, exitCode, formatJson, formatText, parse, type ComponentCheck, type NodeCheck } from "../ops/check";
import { formatDedupe } from "../ops/dedupe";

// How `npm run check` reads the catalog's rows (components/catalog/catalog.py prints them) and
// what it makes of them: the exit code, the text report, duplicates, --json.
const F = "0123456789abcdef0123456789abcdef";
const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);
const rows = [
  `${F} report: model 1000 safetensors ok ${A} - - checkpoints/a.safetensors`,
  `${F} report: model 1000 safetensors ok ${A} - - loras/copy of a.safetensors`,
  `${F} report: model 20 pickle dangerous ${B} - imports\\x20code\\x20outside\\x20the\\x20allowlist:\\x20posix.system. loras/evil.pt`,
  `${F} report: model 7 safetensors ok ${C} ${B} - vae/new\\nline.safetensors`,
  `${F} report: model 5 safetensors unstable - - modified\\x20less\\x20than\\x2060s\\x20ago. checkpoints/growing.safetensors`,
  `${F} report: catalog 1027 3 /srv/cw/storage-models/models`,
];
const catalogCheck = (lines: string[]) => parse("n-catalog", { code: 0, stdout: [...lines, `${F} drift=0`, ""].join("\n"), stderr: "" }, F) as ComponentCheck;
const node = (c: ComponentCheck): NodeCheck => ({ node: "n", host: "10.0.0.1", components: [c], sessions: 1, ms: 1 });

describe("the catalog's rows in check", () => {
  it("are parsed field by field: escaped reasons and names come back as they were", () => {
    const c = catalogCheck(rows);
    expect(c.models).toHaveLength(5);
    expect(c.models[1]).toEqual({
      path: "loras/copy of a.safetensors",
      escapedPath: "loras/copy of a.safetensors",
      size: 1000,
      format: "safetensors",
      status: "ok",
      sha256: A,
      reason: "",
    });
    expect(c.models[2]).toMatchObject({ status: "dangerous", reason: "imports code outside the allowlist: posix.system.", sha256: B });
    expect(c.models[3]).toMatchObject({ path: "vae/new\nline.safetensors", escapedPath: "vae/new\\nline.safetensors", changedFrom: B, sha256: C });
    expect(c.models[4]).not.toHaveProperty("sha256");
    expect(c.report).toEqual([{ kind: "catalog", bytes: 1027, count: 3, path: "/srv/cw/storage-models/models", escapedPath: "/srv/cw/storage-models/models" }]);
  });

  it("a row without the frame, or with a status the catalog never prints, is not a model", () => {
    const c = catalogCheck([`report: model 1 safetensors dangerous ${A} - - unframed`, `${F} report: model 1 safetensors fine ${A} - - odd`]);
    expect(c.models).toEqual([]);
  });

  it("an incomplete, invalid or dangerous model makes check exit 1; unstable, unknown and skipped files do not", () => {
    expect(exitCode([node(catalogCheck(rows))])).toBe(1);
    for (const status of ["incomplete", "invalid"]) expect(exitCode([node(catalogCheck([`${F} report: model 1 gguf ${status} ${A} - cut. x.gguf`]))])).toBe(1);
    const calm = [
      `${F} report: model 1 unknown unknown ${A} - not\\x20a\\x20model. notes.txt`,
      `${F} report: model 0 unknown skipped - - a\\x20symbolic\\x20link. link.safetensors`,
      `${F} report: model 5 safetensors unstable - - still\\x20written. g.safetensors`,
    ];
    expect(exitCode([node(catalogCheck(calm))])).toBe(0);
  });

  it("duplicates: every hash held by two or more names, the largest waste first", () => {
    const c = catalogCheck([...rows, `${F} report: model 20 pickle dangerous ${B} - x. other/evil-copy.pt`]);
    expect(duplicates(c.models)).toEqual([
      { sha256: A, size: 1000, paths: ["checkpoints/a.safetensors", "loras/copy of a.safetensors"] },
      { sha256: B, size: 20, paths: ["loras/evil.pt", "other/evil-copy.pt"] },
    ]);
  });

  it("the text report counts the files, names each finding, each changed file and each set of duplicates", () => {
    const text = formatText([node(catalogCheck(rows))]);
    expect(text).toContain("models on n: 5 file(s), 2.0 kB: 3 ok, 1 dangerous, 1 unstable; this check read 1.0 kB (3 file(s) hashed)\n");
    expect(text).toContain("  DANGEROUS loras/evil.pt: imports code outside the allowlist: posix.system.\n");
    expect(text).toContain("  unstable checkpoints/growing.safetensors: modified less than 60s ago.\n");
    expect(text).toContain(`  changed under the same name: vae/new\\nline.safetensors (was ${B.slice(0, 12)}…, now ${C.slice(0, 12)}…)\n`);
    expect(text).toContain(`  same content (1.0 kB each, ${A.slice(0, 12)}…): checkpoints/a.safetensors, loras/copy of a.safetensors\n`);
  });

  it("--json carries a row per model: path, size, format, status, reason, hash", () => {
    const json = JSON.parse(formatJson([node(catalogCheck(rows))]));
    expect(json.exitCode).toBe(1);
    expect(json.nodes[0].components[0].models[2]).toEqual({
      path: "loras/evil.pt",
      escapedPath: "loras/evil.pt",
      size: 20,
      format: "pickle",
      status: "dangerous",
      sha256: B,
      reason: "imports code outside the allowlist: posix.system.",
    });
  });

  it("no catalog row (the catalog off, or its tool not yet in place): no model part in the report", () => {
    const text = formatText([node(catalogCheck([]))]);
    expect(text).not.toContain("models on");
  });
});

describe("npm run dedupe's rows", () => {
  const run = (lines: string[]) => catalogCheck(lines).dedupe;
  it("are read field by field (names with spaces and line breaks come back, shown escaped), and summed up", () => {
    const d = run([
      `${F} report: dedupe linked 1000 loras/copy\\x20of\\x20a.safetensors checkpoints/a.safetensors`,
      `${F} report: dedupe skipped its\\x20mode\\x20is\\x200600,\\x20not\\x200644 vae/new\\nline.safetensors`,
      `${F} report: dedupe saved 1000 1`,
      `report: dedupe saved 99 9`, // without the frame: not the program's
    ]);
    expect(d).toEqual([
      { kind: "linked", size: 1000, path: "loras/copy of a.safetensors", canonical: "checkpoints/a.safetensors" },
      { kind: "skipped", reason: "its mode is 0600, not 0644", path: "vae/new\\nline.safetensors" },
      { kind: "saved", bytes: 1000, files: 1 },
    ]);
    expect(formatDedupe({ node: "n", rows: d! })).toBe(
      [
        "linked loras/copy of a.safetensors to checkpoints/a.safetensors (1.0 kB)",
        "left vae/new\\nline.safetensors: its mode is 0600, not 0644",
        "dedupe on n: 1 name(s) now share content with another; 1.0 kB freed",
        "",
      ].join("\n"),
    );
    expect(formatDedupe({ node: "n", rows: [], error: "the catalog stopped: the index is busy" })).toBe(
      "dedupe on n stopped: the catalog stopped: the index is busy\n",
    );
  });

  it("a check has none (its --json carries no dedupe key)", () => {
    expect(catalogCheck(rows)).not.toHaveProperty("dedupe");
  });
});
