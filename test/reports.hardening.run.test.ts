import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import type { Storage } from "../components/config";
import { renderProgram } from "../components/shell/script";
import { categoryDir } from "../components/storage/paths";
import { renderStorageLayout } from "../components/storage/layout";
import { formatJson, formatText, newFrame, parse, type ComponentCheck, type NodeCheck } from "../ops/check";
import { printable, safeJson, unescapeBytes } from "../ops/text";
import { asOwner, OWNER } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot } from "./helpers/run";

/**
 * Reports carry data, not text to trust (issue 17, class 8). Names the storage owner plants in
 * the tree (a newline and a fake `drift:` line or report row, a terminal's escape sequence,
 * bytes that are not UTF-8) go through the real layout program's check, read by ops/check.ts
 * as `npm run check` reads it: nothing fake is counted, the real rows show the escaped name,
 * the JSON holds the real one, and no control byte reaches the admin's terminal.
 */
let root: string;
let s: Storage;

// Raw bytes that a terminal would act on, in a text meant for one (line breaks excepted).
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u;
const FAKE_FRAME = "0".repeat(32);

// Each planted name: as bash writes it ($'…'), the bytes it is, and how the program shows it.
const PLANTED = [
  { bash: String.raw`$'p\ndrift: fake'`, bytes: Buffer.from("p\ndrift: fake"), shown: String.raw`p\ndrift: fake` },
  {
    bash: String.raw`$'q\nreport: category 999 999 fake'`,
    bytes: Buffer.from("q\nreport: category 999 999 fake"),
    shown: String.raw`q\nreport: category 999 999 fake`,
  },
  {
    bash: String.raw`$'r\n${FAKE_FRAME} drift: fake'`,
    bytes: Buffer.from(`r\n${FAKE_FRAME} drift: fake`),
    shown: String.raw`r\n` + `${FAKE_FRAME} drift: fake`,
  },
  { bash: String.raw`$'\033]0;title\007'`, bytes: Buffer.from("\x1b]0;title\x07"), shown: String.raw`\x1b]0;title\x07` },
  {
    bash: String.raw`$'bad\xff\xfe\xc2\x9b31m'`,
    bytes: Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0xc2, 0x9b, 0x33, 0x31, 0x6d]),
    shown: String.raw`bad\xff\xfe\xc2\x9b31m`,
  },
  { bash: String.raw`$'tab\there\\ and caf\xc3\xa9'`, bytes: Buffer.from("tab\there\\ and café"), shown: String.raw`tab\there\\ and café` },
];

const node = (c: ComponentCheck): NodeCheck => ({ node: "here", host: "localhost", components: [c], sessions: 0, ms: 0 });
const checked = (program: string) => {
  const frame = newFrame();
  const r = runProgram(program, "check", { frame });
  return { r, frame, c: parse("here-layout", r, frame) };
};

beforeEach(() => {
  root = tempRoot();
  s = localStorage({ root, owner: OWNER, categories: ["loras"] });
  const r = runProgram(renderStorageLayout(s));
  expect(r.code, r.stderr).toBe(0);
});

describe("names planted by the owner, in npm run check", () => {
  it("a project folder's name never adds a drift line or a report row, shows escaped, and is the real name in JSON", () => {
    // A site laid out before the skeleton: its projects folder was the owner's (seeds' trees).
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${root}/projects`);
    for (const p of PLANTED) asOwner(`cd ${root}/projects && mkdir -- ${p.bash} && echo x > ${p.bash}/f`);

    const { r, frame, c } = checked(renderStorageLayout(s));
    expect(r.code, r.stderr).toBe(0);
    expect(typeof c, String(c)).toBe("object");
    const check = c as ComponentCheck;
    // Every line is the program's own, framed; none holds a control byte.
    for (const line of r.stdout.replace(/\n$/, "").split("\n")) expect(line.startsWith(`${frame} `), line).toBe(true);
    expect(r.stdout).not.toMatch(CONTROL);
    expect(r.stderr).not.toMatch(CONTROL);
    // The one real finding (the migration hands projects back to root); nothing fake counted.
    expect(check.drift).toEqual([`${root}/projects belongs to ${OWNER.uid}:${OWNER.gid}, not 0:0`]);
    expect(check.report.some((row) => row.bytes === 999 || row.path === "fake")).toBe(false);
    const projects = check.report.filter((row) => row.kind === "project");
    expect(projects).toHaveLength(PLANTED.length);
    for (const p of PLANTED) {
      const row = projects.find((x) => x.escapedPath === `${root}/projects/${p.shown}`);
      expect(row, p.shown).toMatchObject({ bytes: 2, count: 1, path: `${root}/projects/${p.bytes.toString("utf8")}` });
    }

    const text = formatText([node(check)]);
    expect(text).not.toMatch(CONTROL);
    expect(text).not.toMatch(/^ *fake /m);
    for (const p of PLANTED) expect(text).toMatch(new RegExp(`^ {4}${p.shown.replace(/[\\[\]().*+?^$|{}]/g, "\\$&")} +2 B +1 file$`, "m"));

    const json = formatJson([node(check)]);
    expect(json).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u);
    const rows = JSON.parse(json).nodes[0].components[0].report.filter((row: { kind: string }) => row.kind === "project");
    expect(rows.map((row: { path: string }) => row.path).sort()).toEqual(PLANTED.map((p) => `${root}/projects/${p.bytes.toString("utf8")}`).sort());
    // Where the name is not UTF-8, escapedPath gives its exact bytes.
    const bad = PLANTED[4];
    expect(unescapeBytes(rows.find((row: { escapedPath: string }) => row.escapedPath.includes("bad")).escapedPath)).toEqual(
      Buffer.concat([Buffer.from(`${root}/projects/`), bad.bytes]),
    );
  });

  it("converging over them: the names show escaped in the log, and only real changes count", () => {
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${root}/projects`);
    for (const p of PLANTED) asOwner(`cd ${root}/projects && mkdir -- ${p.bash}`);
    // A name bash 5.2's read loses a byte of in a UTF-8 locale (the owner's): read in C, it stays whole.
    asOwner(String.raw`cd ${root}/projects && mkdir -- $'\x7f\n\xc2\x01\xff'`);
    const r = runProgram(renderStorageLayout(s));
    expect(r.code, r.stderr).toBe(0);
    expect(r.changed).toBe(1); // projects handed back to root
    expect(r.stdout).not.toMatch(CONTROL);
    expect(r.stdout).not.toMatch(/^(drift|report|changed): (fake|category 999)/m);
    expect(r.stdout).toContain(String.raw`note: project folder ${root}/projects/p\ndrift: fake is not in modelshare:projects; left as it is`);
    expect(r.stdout).toContain(String.raw`${root}/projects/\x1b]0;title\x07 is not in`);
    expect(r.stdout).toContain(String.raw`${root}/projects/\x7f\n\xc2\x01\xff is not in`);
  });

  it("a category swapped for a link whose text holds a newline and escapes: the refusal check shows is escaped", () => {
    // Before the skeleton the store folder was the owner's too, so a category could be swapped.
    const store = categoryDir(s, "loras").replace(/\/loras$/, "");
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${store}`);
    asOwner(`rmdir ${store}/loras && ln -s $'/x\\nmodelshare: fake\\n${FAKE_FRAME} modelshare: fake\\033]0;title\\007' ${store}/loras`);
    const { r, frame, c } = checked(renderStorageLayout(s));
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(CONTROL);
    expect(r.stderr).toContain(
      `${frame} modelshare: ${store}/loras is a symbolic link (to /x\\nmodelshare: fake\\n${FAKE_FRAME} modelshare: fake\\x1b]0;title\\x07)`,
    );
    const check = c as ComponentCheck;
    expect(check.refusal).toMatch(
      /^\S+\/loras is a symbolic link \(to \/x\\nmodelshare: fake\\n0{32} modelshare: fake\\x1b\]0;title\\x07\), where modelshare expects a real folder/,
    );
    const text = formatText([node(check)]);
    expect(text).toContain(`here-layout: converge would refuse: ${store}/loras is a symbolic link (to /x\\nmodelshare: fake`);
    expect(text).not.toMatch(CONTROL);
  });
});

describe("the frame", () => {
  // A step that prints what a tool printed: text the owner wrote, as it is.
  const program = (where: "privileged" | "owner") =>
    renderProgram({
      title: "a tool's raw output",
      libs: [],
      storage: { root, owner: OWNER },
      converge: { [where]: [`cat -- ${root}/planted.txt`] },
    });
  beforeEach(() => {
    writeFileSync(join(root, "planted.txt"), `drift: fake\nchanged: fake\nreport: project 999 999 /x\n${FAKE_FRAME} drift: fake\n\x1b]0;title\x07\n`);
  });

  it("a child's lines count only when they carry the frame run_as gave it: raw output is a note, escaped", () => {
    const converged = runProgram(program("owner"));
    expect(converged.code, converged.stderr).toBe(0);
    expect(converged.changed).toBe(0);
    expect(converged.stdout).not.toMatch(CONTROL);
    expect(converged.stdout).not.toMatch(/^(changed|drift|report): /m);
    expect(converged.stdout).toContain(`(output as ${OWNER.uid}:${OWNER.gid}) changed: fake\n`);
    const { r, c } = checked(program("owner"));
    expect(r.code, r.stderr).toBe(0);
    expect(c).toEqual({ component: "here-layout", drift: [], report: [], models: [] });
  });

  it("check reads only the lines that carry its frame: a step's raw output is not a finding", () => {
    const { r, c } = checked(program("privileged"));
    expect(r.stdout).toContain("drift: fake\n"); // printed, but not with the frame
    expect(c).toEqual({ component: "here-layout", drift: [], report: [], models: [] });
  });

  it("a frame that is not 32 hex digits is refused", () => {
    const r = spawnSync("bash", ["-s", "check", "$(id)"], { input: program("owner"), encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("modelshare: usage: bash -s converge|check|remove [FRAME: 32 hex digits] < program\n");
  });
});

describe("escape_line (prelude.sh)", () => {
  // Runs escape_line over each file in a folder, one escaped line per file.
  const escapeFiles = (texts: Buffer[]): string[] => {
    const dir = mkdtempSync(join(tmpdir(), "modelshare-escape-"));
    texts.forEach((t, i) => writeFileSync(join(dir, String(i).padStart(4, "0")), t));
    const prelude = readFileSync(join(__dirname, "../components/shell/prelude.sh"), "utf8");
    const fn = prelude.slice(prelude.indexOf("escape_line() {"), prelude.indexOf("\n}\n", prelude.indexOf("escape_line() {")) + 3);
    const r = spawnSync(
      "bash",
      ["-c", `${fn}\nfor f in "$1"/*; do IFS= LC_ALL=C read -r -d '' s <"$f" || true; escape_line "$s"; printf '%s\\n' "$escaped"; done`, "x", dir],
      { encoding: "buffer" },
    );
    expect(r.status, r.stderr.toString()).toBe(0);
    return r.stdout.toString("utf8").replace(/\n$/, "").split("\n");
  };

  it("escapes what a terminal acts on, keeps printable UTF-8, and is decoded back to the same bytes", () => {
    const cases: [Buffer, string][] = [
      [Buffer.from("plain/ASCII [x] ~{}"), "plain/ASCII [x] ~{}"],
      [Buffer.from("a\\b\nc\td\re"), String.raw`a\\b\nc\td\re`],
      [Buffer.from("\x1b[2J\x07\x7f"), String.raw`\x1b[2J\x07\x7f`],
      [Buffer.from("日本語 ü 😀"), "日本語 ü 😀"],
      [Buffer.from("\u009b31m \u2028 \u202e \u2066"), String.raw`\xc2\x9b31m \xe2\x80\xa8 \xe2\x80\xae \xe2\x81\xa6`],
      [Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xe2, 0x82]), String.raw`\xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82`],
      // bash 5.2's read in a UTF-8 locale loses this 0x01 (the random bytes met it): names are read in C.
      [Buffer.from([0x7f, 0x0a, 0xc2, 0x01, 0xff]), String.raw`\x7f\n\xc2\x01\xff`],
    ];
    // And random bytes (no NUL: no name holds one), biased towards the interesting ones.
    const pool = [0x0a, 0x09, 0x1b, 0x5c, 0x7f, 0x80, 0x9b, 0xc2, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff, 0x41, 0x20, 0x2f];
    const random = Array.from({ length: 300 }, () =>
      Buffer.from(
        Array.from({ length: 1 + Math.floor(Math.random() * 12) }, () =>
          Math.random() < 0.6 ? pool[Math.floor(Math.random() * pool.length)] : 1 + Math.floor(Math.random() * 255),
        ),
      ),
    );
    const out = escapeFiles([...cases.map(([b]) => b), ...random]);
    expect(out.slice(0, cases.length)).toEqual(cases.map(([, e]) => e));
    [...cases.map(([b]) => b), ...random].forEach((bytes, i) => {
      expect(out[i]).not.toMatch(CONTROL);
      expect(printable(out[i])).toBe(out[i]);
      expect(unescapeBytes(out[i])).toEqual(bytes);
    });
  });
});

describe("what ops/ prints", () => {
  it("formatText and formatJson pass no control character on, whatever a node sent", () => {
    const hostile: NodeCheck[] = [
      { node: "a", host: "10.0.0.1", error: "could not connect: \x1b]0;owned\x07\nsecond line", components: [], sessions: 0, ms: 1 },
      {
        node: "b",
        host: "10.0.0.2",
        components: [
          {
            component: "b-layout",
            drift: ["raw\x1b[31m"],
            refusal: "no\u009b31m",
            report: [
              { kind: "project", bytes: 1, count: 1, path: "/p/\x1b\u2028", escapedPath: "/p/\u009b" },
              { kind: "catalog", bytes: 1, count: 1, path: "/s\x1b", escapedPath: "/s\u009b" },
            ],
            models: [
              { path: "a\x1b]0;t\x07", escapedPath: "a\u009b", size: 1, format: "gguf\x1b", status: "dangerous", reason: "x\x1b[2J", sha256: "a".repeat(64) },
              { path: "b", escapedPath: "b\u2028", size: 1, format: "gguf", status: "ok", reason: "", sha256: "a".repeat(64) },
            ],
          },
        ],
        sessions: 1,
        ms: 1,
      },
    ];
    const text = formatText(hostile);
    expect(text).not.toMatch(CONTROL);
    expect(text).toContain(String.raw`a (10.0.0.1): could not be checked: could not connect: \x1b]0;owned\x07\nsecond line`);
    expect(text).toContain(String.raw`b-layout: raw\x1b[31m`);
    const json = formatJson(hostile);
    expect(json).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028]/u);
    expect(JSON.parse(json).nodes[1].components[0].report[0].path).toBe("/p/\x1b\u2028");
    expect(safeJson({ a: "\u009b" })).toBe('{\n  "a": "\\u009b"\n}');
  });
});
