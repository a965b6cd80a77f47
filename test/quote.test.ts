import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { call, callRows, quote } from "../components/shell/quote";

const tricky = [
  "plain",
  "with space",
  "it's",
  "$(reboot)",
  "`id`",
  'a"b',
  "back\\slash",
  "line\nbreak",
  "tab\there",
  "*",
  "~",
  "-rf",
  "",
  "ü ß 模型",
  "'",
  "''",
  "$HOME",
  "!!",
];

describe("quote", () => {
  it.each(tricky)("round-trips %j through bash unchanged", (value) => {
    const r = spawnSync("bash", ["-c", `printf '%s' ${quote(value)}`], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(value);
  });

  it("renders the exact single-quoted form", () => {
    expect(quote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(quote(42)).toBe("'42'");
  });

  it("refuses NUL instead of truncating", () => {
    expect(() => quote("a\0b")).toThrow(/NUL/);
  });

  it("call quotes every argument and refuses a bad function name", () => {
    expect(call("ensure_dir", "/a b", "", "00775")).toBe("ensure_dir '/a b' '' '00775'");
    expect(() => call("rm -rf /", "x")).toThrow(/not a shell function name/);
  });
});

describe("callRows", () => {
  it("puts one quoted row on each line, joined by backslash continuations", () => {
    expect(
      callRows("ensure_dirs", [
        ["/srv/a b", "00775"],
        ["/srv/it's", 2775],
      ]),
    ).toBe("ensure_dirs \\\n  '/srv/a b' '00775' \\\n  '/srv/it'\\''s' '2775'");
    expect(() => callRows("bad name", [])).toThrow(/not a shell function name/);
  });
});
