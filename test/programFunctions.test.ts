import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { planSite } from "../components/plan";
import { DIRS, renderProgram, type ShellLib } from "../components/shell/script";
import { siteFromConfig } from "../components/stackConfig";
import { RECORDED_SITES } from "./helpers/recordPlan";

/**
 * Issue 18, item 5: every function a rendered program calls is defined in the program itself
 * (the prelude, the libraries it loads, its step functions). A step or a helper that calls a
 * helper of a library the program does not load fails only on a node, and only on the path that
 * reaches the call; here it fails for every program of a site with every concern on.
 *
 * bash does the parsing: it runs the program's body up to (not including) `modelshare_main`,
 * which only defines functions and sets variables, then lists the functions (`compgen -A
 * function`, as `declare -F`) and prints each one normalised (`declare -f`: one command a line,
 * no comments). The scanner below
 * reads the command words of that normalised text. A word in command position must be a
 * function of the program, a bash builtin or keyword, or one of the node's commands in
 * EXTERNAL; anything else is reported.
 */

/**
 * The node's own commands the libraries run. Deliberately a list of names, not "anything on
 * PATH": a helper of ours (snake_case) is never here (a test holds that), so a helper whose
 * library is missing cannot pass for a command.
 */
const EXTERNAL = new Set([
  "apt-get",
  "awk",
  "cat",
  "chmod",
  "chown",
  "cmp",
  "cp",
  "cut",
  "date",
  "df",
  "dirname",
  "docker",
  "dpkg-query",
  "du",
  "env",
  "exportfs",
  "find",
  "findmnt",
  "flock",
  "getent",
  "grep",
  "groupadd",
  "head",
  "hostname",
  "id",
  "install",
  "iptables",
  "journalctl",
  "ln",
  "ls",
  "mkdir",
  "mktemp",
  "modprobe",
  "mv",
  "od",
  "pdbedit",
  "python3",
  "readlink",
  "rm",
  "rmdir",
  "sed",
  "setpriv",
  "sha256sum",
  "sleep",
  "smbcontrol",
  "smbpasswd",
  "sort",
  "stat",
  "systemctl",
  "systemd-escape",
  "tac",
  "tail",
  "testparm",
  "timeout",
  "tr",
  "umount",
  "uname",
  "useradd",
  "usermod",
  "wc",
]);

/**
 * Helpers that take a command (a function name) among their arguments, and where: `act FOUND
 * MADE COMMAND…`, `as_owner FUNCTION…`, `run_as UID GID GROUPS FUNCTION…`, `install_file PATH
 * MODE CONTENT [VALIDATE]`, `comfyui_as FUNCTION…`; bash's own `exec`, `command`, `builtin` and `trap CODE`.
 */
const RUNS_ARGUMENT: Record<string, number> = { act: 2, as_owner: 0, run_as: 3, comfyui_as: 0, install_file: 3, exec: 0, command: 0, builtin: 0 };

/** Helpers that run a program the site names (not a function): comfyui.installs[].python. */
const RUNS_SITE_PROGRAM = new Set(["comfyui_paths"]);

interface Call {
  /** The command word, or null when it is computed at run time (`"$@"`, `"${1}_privileged"`). */
  name: string | null;
  /** The function whose body holds the call. */
  caller: string;
}

// --- the program as bash sees it ---------------------------------------------------------------

/**
 * The body renderProgram wraps: line 3 reads exactly `head -c N` bytes and runs them, so the body
 * is the N bytes after it (secret lines may follow on stdin). Its last line runs modelshare_main.
 */
function bodyOf(program: string): string {
  const bytes = Buffer.from(program, "utf8");
  let at = 0;
  for (let n = 0; n < 3; n++) at = bytes.indexOf(0x0a, at) + 1;
  const header = bytes.subarray(0, at).toString("utf8").split("\n")[2];
  const size = /program=\$\(head -c (\d+)\)/.exec(header)?.[1];
  if (!size) throw new Error(`no exec wrapper on line 3: ${header}`);
  const body = bytes.subarray(at, at + Number(size)).toString("utf8");
  const main = /\nmodelshare_main "\$@"[^\n]*\n$/.exec(body);
  if (!main) throw new Error("the body does not end by running modelshare_main");
  return body.slice(0, main.index + 1);
}

/** bash itself, found on this machine's PATH. */
const BASH = spawnSync("bash", ["-c", "command -v bash"], { encoding: "utf8" }).stdout.trim();

/**
 * Runs bash (no rc files) on `script`; its stdout. PATH names no folder, so the script can run
 * builtins and functions only: should a library ever run a program at load time, this fails
 * (the prelude's `set -e`) instead of running it here.
 */
function bash(script: string): string {
  const r = spawnSync(BASH, ["--norc", "--noprofile", "-c", script], { encoding: "utf8", env: { PATH: "/nonexistent" }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bash exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Each function the body defines, with its text as `declare -f` prints it. */
function functionsOf(program: string): Map<string, string> {
  // NUL cannot occur in a bash string, so it separates the functions safely.
  const out = bash(`${bodyOf(program)}\nfor f in $(compgen -A function); do printf '\\0%s\\0' "$f"; declare -f "$f"; done`);
  const parts = out.split("\0").slice(1);
  const fns = new Map<string, string>();
  for (let i = 0; i < parts.length; i += 2) fns.set(parts[i], parts[i + 1]);
  return fns;
}

/** bash's builtins and reserved words. */
const BASH_WORDS = new Set(bash("compgen -b; compgen -k").split("\n").filter(Boolean));

// --- the command words of a normalised function ------------------------------------------------

const SPACE = /[ \t]/;
const META = /[ \t\n;&|<>()]/;
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/;
const REDIRECTION = /^(\d+|\{[A-Za-z_][A-Za-z0-9_]*\})?(<<<|<<-|<<|<>|<&|>&|>>|>\||&>>|&>|<|>)/;
const OPERATOR = /^(;;&|;;|;&|&&|\|\||\|&|;|&|\|)/;
/** Words after which the next word starts a command again. */
const LEADING = new Set(["{", "!", "then", "else", "do", "if", "elif", "while", "until", "time"]);
/** Words that close a compound command: redirections or an operator may follow. */
const CLOSING = new Set(["}", "fi", "done", "esac"]);

interface Word {
  /** The word with its quotes removed, or null if it expands anything at run time. */
  value: string | null;
  raw: string;
}

/**
 * A scanner for the bash that `declare -f` prints: it finds each simple command and records its
 * first word, inside command substitutions, process substitutions, `[[ ]]` and case arms alike,
 * and steps over here documents (their text is data). Not a full bash parser: enough for
 * normalised text, and it throws on what it does not understand rather than skip it.
 */
class Scanner {
  private i = 0;
  private heredocs: Array<{ delim: string; tabs: boolean }> = [];
  readonly calls: Array<{ name: string | null }> = [];

  constructor(private readonly s: string) {}

  private fail(what: string): never {
    throw new Error(
      `cannot read ${what} at ${JSON.stringify(this.s.slice(Math.max(0, this.i - 40), this.i))} ^ ${JSON.stringify(this.s.slice(this.i, this.i + 40))}`,
    );
  }

  private at(text: string): boolean {
    return this.s.startsWith(text, this.i);
  }

  private get done(): boolean {
    return this.i >= this.s.length;
  }

  /** Spaces and tabs; `\` + newline (a continued line). */
  private spaces(): void {
    for (;;) {
      if (SPACE.test(this.s[this.i] ?? "")) this.i++;
      else if (this.at("\\\n")) this.i += 2;
      else return;
    }
  }

  /** Spaces and newlines; after a newline, the here documents opened on its line. */
  private blank(): void {
    for (;;) {
      this.spaces();
      if (this.s[this.i] === "#") {
        while (!this.done && this.s[this.i] !== "\n") this.i++;
      } else if (this.s[this.i] === "\n") {
        this.i++;
        this.hereBodies();
      } else return;
    }
  }

  private hereBodies(): void {
    for (const { delim, tabs } of this.heredocs.splice(0)) {
      for (;;) {
        if (this.done) this.fail(`the end of the here document ${delim}`);
        const end = this.s.indexOf("\n", this.i);
        const line = this.s.slice(this.i, end < 0 ? undefined : end);
        this.i = end < 0 ? this.s.length : end + 1;
        if ((tabs ? line.replace(/^\t+/, "") : line) === delim) break;
      }
    }
  }

  /** The whole text, a list of commands. */
  all(): void {
    this.list();
    if (!this.done) this.fail("a command");
  }

  /** A list of commands, up to `)` (left for the caller), `;;` in a case arm, `esac`, or the end. */
  private list(inCase = false): void {
    for (;;) {
      this.blank();
      if (this.done || this.s[this.i] === ")") return;
      if (inCase && (this.at(";;") || this.at(";&") || this.wordAhead() === "esac")) return;
      const op = OPERATOR.exec(this.s.slice(this.i));
      if (op) {
        this.i += op[0].length;
        continue;
      }
      if (this.at("((")) {
        this.arithmetic();
        continue;
      }
      if (this.s[this.i] === "(") {
        this.i++;
        this.list();
        this.close(")");
        continue;
      }
      this.command();
    }
  }

  private close(c: string): void {
    if (this.s[this.i] !== c) this.fail(`a closing ${c}`);
    this.i++;
  }

  /** The next unquoted word, without moving. */
  private wordAhead(): string {
    return /^[^ \t\n;&|<>()]*/.exec(this.s.slice(this.i))?.[0] ?? "";
  }

  /** `((…))` or `$((…))` from its first `(`: balanced parentheses, substitutions inside read. */
  private arithmetic(): void {
    let depth = 0;
    do {
      const c = this.s[this.i];
      if (c === undefined) this.fail("the end of an arithmetic expression");
      if (c === "(") depth++;
      else if (c === ")") depth--;
      else if (c === "$" && this.s[this.i + 1] === "(" && this.s[this.i + 2] !== "(") {
        this.i += 2;
        this.list();
        this.close(")");
        continue;
      }
      this.i++;
    } while (depth > 0);
  }

  /** Redirections, assignments, then a compound command's keyword or a simple command. */
  private command(): void {
    let name: Word | undefined;
    for (;;) {
      this.spaces();
      if (this.redirection()) continue;
      if (this.done || /[\n;&|)]/.test(this.s[this.i])) return;
      const w = this.word();
      if (ASSIGNMENT.test(w.raw)) continue;
      name = w;
      break;
    }
    const keyword = name.raw;
    if (LEADING.has(keyword)) return;
    if (CLOSING.has(keyword)) {
      this.rest();
      return;
    }
    if (keyword === "[[") return this.condition();
    if (keyword === "for" || keyword === "select") return this.forHead();
    if (keyword === "case") return this.caseArms();
    if (keyword === "function") this.fail("the function keyword (declare -f never prints it)");
    this.spaces();
    if (this.at("()")) {
      // A function defined inside a function: its body follows as a compound command.
      this.i += 2;
      return;
    }
    const args = this.rest();
    this.calls.push({ name: name.value });
    const runs = name.value === null ? undefined : RUNS_ARGUMENT[name.value];
    if (name.value === "trap") {
      const code = args[0];
      if (code && code !== "-") this.calls.push(...scan(code));
    } else if (runs !== undefined) {
      const skip = name.value === "command" || name.value === "builtin" || name.value === "exec";
      const rest = skip ? args.filter((a) => a === null || !a.startsWith("-")) : args;
      if (name.value === "command" && args.some((a) => a === "-v" || a === "-V")) return;
      if (runs < rest.length) this.calls.push({ name: rest[runs] });
    }
  }

  /** The arguments and redirections of a command, up to an operator or a newline. */
  private rest(): Array<string | null> {
    const args: Array<string | null> = [];
    for (;;) {
      this.spaces();
      if (this.redirection()) continue;
      if (this.done || /[\n;&|)]/.test(this.s[this.i])) return args;
      args.push(this.word().value);
    }
  }

  private redirection(): boolean {
    const m = REDIRECTION.exec(this.s.slice(this.i));
    if (!m) return false;
    // `<(` and `>(` are process substitutions: a word.
    if (!m[1] && (m[2] === "<" || m[2] === ">") && this.s[this.i + 1] === "(") return false;
    this.i += m[0].length;
    if ((m[2] === "<&" || m[2] === ">&") && /[0-9-]/.test(this.s[this.i])) {
      while (/[0-9-]/.test(this.s[this.i] ?? "")) this.i++;
      return true;
    }
    this.spaces();
    const target = this.word();
    if (m[2] === "<<" || m[2] === "<<-") this.heredocs.push({ delim: target.raw.replace(/['"\\]/g, ""), tabs: m[2] === "<<-" });
    return true;
  }

  /** `[[ … ]]`: words up to `]]`, where `<`, `(`, `&&` are no operators. */
  private condition(): void {
    for (;;) {
      this.spaces();
      if (this.done || this.s[this.i] === "\n") this.fail("the end of [[");
      if (this.at("]]")) {
        this.i += 2;
        this.rest();
        return;
      }
      this.word(true);
    }
  }

  /** `for NAME in WORDS;` or `for ((…));`: the words are no commands. */
  private forHead(): void {
    this.spaces();
    if (this.at("((")) return this.arithmetic();
    this.word();
    this.spaces();
    if (this.wordAhead() === "in") {
      this.word();
      this.rest();
    }
  }

  /** `case WORD in PATTERN) LIST ;; … esac`. */
  private caseArms(): void {
    this.spaces();
    this.word();
    this.blank();
    if (this.word().raw !== "in") this.fail("in after case");
    for (;;) {
      this.blank();
      if (this.wordAhead() === "esac") {
        this.word();
        this.rest();
        return;
      }
      if (this.s[this.i] === "(") this.i++;
      for (;;) {
        this.spaces();
        this.word();
        this.spaces();
        if (this.s[this.i] === "|") this.i++;
        else if (this.s[this.i] === ")") {
          this.i++;
          break;
        } else this.fail("a case pattern");
      }
      this.list(true);
      const end = /^(;;&|;;|;&)/.exec(this.s.slice(this.i));
      if (end) this.i += end[0].length;
    }
  }

  /**
   * One word: quotes removed, substitutions inside it scanned for commands. In `[[ ]]` (`cond`)
   * only a blank ends it.
   */
  private word(cond = false): Word {
    const start = this.i;
    let value = "";
    let literal = true;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) break;
      if (cond ? /[ \t\n]/.test(c) : META.test(c)) {
        const array = c === "(" && /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=$/.test(value);
        const extglob = c === "(" && /[@!*+?]$/.test(value);
        const substitution = (c === "<" || c === ">") && this.i === start && this.s[this.i + 1] === "(";
        if (array || extglob) {
          // An array's elements, or an extglob's alternatives: words up to the `)`.
          this.i++;
          for (;;) {
            this.blank();
            if (this.s[this.i] === ")") break;
            if (this.s[this.i] === "|") this.i++;
            else this.word();
          }
          this.i++;
          literal = false;
          continue;
        }
        if (substitution) {
          this.i += 2;
          this.list();
          this.close(")");
          literal = false;
          continue;
        }
        break;
      }
      if (c === "\\") {
        if (this.s[this.i + 1] === "\n") this.i += 2;
        else {
          value += this.s[this.i + 1] ?? "";
          this.i += 2;
        }
      } else if (c === "'") {
        const end = this.s.indexOf("'", this.i + 1);
        if (end < 0) this.fail("the end of a '…' string");
        value += this.s.slice(this.i + 1, end);
        this.i = end + 1;
      } else if (c === '"') {
        const q = this.dquote();
        value += q.value;
        literal &&= q.literal;
      } else if (c === "$" || c === "`") {
        if (this.dollar()) literal = false;
        else value += this.s[this.i++];
      } else {
        value += c;
        this.i++;
      }
    }
    if (this.i === start) this.fail("a word");
    return { value: literal ? value : null, raw: this.s.slice(start, this.i) };
  }

  /** A "…" string from its opening quote: its text, and whether it expands nothing. */
  private dquote(): { value: string; literal: boolean } {
    let value = "";
    let literal = true;
    this.i++;
    while (this.s[this.i] !== '"') {
      if (this.done) this.fail('the end of a "…" string');
      if (this.s[this.i] === "\\") {
        value += this.s[this.i + 1];
        this.i += 2;
      } else if ((this.s[this.i] === "$" || this.s[this.i] === "`") && this.dollar(true)) literal = false;
      else value += this.s[this.i++];
    }
    this.i++;
    return { value, literal };
  }

  /**
   * An expansion at `$` or a backquote: skipped, commands inside it scanned. False if the `$` is
   * a plain character. In "…" (`quoted`), `$'` is no ANSI-C string.
   */
  private dollar(quoted = false): boolean {
    const s = this.s;
    if (s[this.i] === "`") {
      let end = this.i + 1;
      while (s[end] !== "`") {
        if (end >= s.length) this.fail("the end of a `…` substitution");
        end += s[end] === "\\" ? 2 : 1;
      }
      this.calls.push(...scan(s.slice(this.i + 1, end).replace(/\\([`$\\])/g, "$1")));
      this.i = end + 1;
      return true;
    }
    const next = s[this.i + 1];
    if (next === "'" && !quoted) {
      // $'…': backslash escapes inside.
      let end = this.i + 2;
      while (s[end] !== "'") {
        if (end >= s.length) this.fail("the end of a $'…' string");
        end += s[end] === "\\" ? 2 : 1;
      }
      this.i = end + 1;
      return true;
    }
    if (s.startsWith("((", this.i + 1)) {
      this.i++;
      this.arithmetic();
      return true;
    }
    if (next === "(") {
      this.i += 2;
      this.list();
      this.close(")");
      return true;
    }
    if (next === "{") {
      this.i += 2;
      this.braces();
      return true;
    }
    const name = /^([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])/.exec(s.slice(this.i + 1));
    if (!name) return false;
    this.i += 1 + name[0].length;
    return true;
  }

  /** The inside of `${…}` up to its `}`: quotes and nested expansions (with their commands) read. */
  private braces(): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) this.fail("the end of ${…}");
      if (c === "}") {
        this.i++;
        return;
      }
      if (c === "\\") this.i += 2;
      else if (c === "'") {
        const end = this.s.indexOf("'", this.i + 1);
        if (end < 0) this.fail("the end of a '…' string in ${…}");
        this.i = end + 1;
      } else if (c === '"') this.dquote();
      else if ((c === "$" || c === "`") && this.dollar()) continue;
      else this.i++;
    }
  }
}

/** The command words of a piece of normalised bash, in order. */
function scan(text: string): Array<{ name: string | null }> {
  const scanner = new Scanner(text);
  scanner.all();
  return scanner.calls;
}

// --- the check ---------------------------------------------------------------------------------

/**
 * Where a program starts: modelshare_main, and the step functions it runs by a computed name
 * (`"${1}_privileged"`). Every other computed command word is an argument passed on by one of
 * RUNS_ARGUMENT's helpers, read at its call site; a test holds that no other function computes one.
 */
const ENTRIES = ["modelshare_main", "converge_privileged", "converge_owner", "remove_privileged", "remove_owner", "report_privileged", "report_owner"];

interface Checked {
  defined: Set<string>;
  calls: Call[];
  /** The functions the program can run: its entries and whatever they call, transitively. */
  reachable: Set<string>;
  /** `caller calls name`, for each call of a name that is no function, builtin or EXTERNAL command, by a reachable caller. */
  undefined: string[];
  /** The same, by a function the program loads but never runs. */
  latent: string[];
}

function check(program: string): Checked {
  const fns = functionsOf(program);
  const calls: Call[] = [];
  for (const [fn, text] of fns) {
    const header = `${fn} () \n`;
    if (!text.startsWith(header)) throw new Error(`declare -f ${fn} printed ${JSON.stringify(text.slice(0, 40))}`);
    for (const c of scan(text.slice(header.length))) calls.push({ ...c, caller: fn });
  }
  const defined = new Set(fns.keys());
  const reachable = new Set(ENTRIES.filter((e) => defined.has(e)));
  for (const fn of reachable) {
    for (const c of calls) if (c.caller === fn && c.name !== null && defined.has(c.name)) reachable.add(c.name);
  }
  const known = (name: string) => defined.has(name) || BASH_WORDS.has(name) || EXTERNAL.has(name);
  const unknown = (inReach: boolean) => [
    ...new Set(calls.filter((c) => c.name !== null && !known(c.name) && reachable.has(c.caller) === inReach).map((c) => `${c.caller} calls ${c.name}`)),
  ];
  return { defined, calls, reachable, undefined: unknown(true), latent: unknown(false) };
}

// --- the programs ------------------------------------------------------------------------------

/**
 * Every program of the recorded site with every concern on (SMB, NFS, services, installers), and
 * of the same site with the options that choose other steps: NFS by nfs-ganesha with read-only
 * models and the workers' cache, SMB without a recycle bin but with a models share.
 */
function everyProgram(): Array<{ name: string; text: string }> {
  const { config, secretKeys } = RECORDED_SITES["seeds-everything"];
  const other = {
    ...config,
    "modelshare:nfs": JSON.stringify({ enabled: true, server: "ganesha", modelsReadOnly: true, cache: { enabled: true } }),
    "modelshare:smb": JSON.stringify({
      ...JSON.parse(config["modelshare:smb"]),
      recycle: { enabled: false },
      modelsShare: "ki_Models",
      macos: false,
      audit: false,
    }),
  };
  return Object.entries({ everything: config, "other options": other }).flatMap(([siteName, values]) => {
    const site = siteFromConfig(values, (k) => secretKeys.includes(k));
    return planSite(site.config).flatMap((item) => item.programs.map((p) => ({ name: `${siteName}: ${p.name}`, text: p.text })));
  });
}

const STORAGE = { root: "/nonexistent", owner: "unmanaged" as const };
/** A program of one step, `step`, loading `libs`. */
const oneStep = (libs: ShellLib[], step: string) => renderProgram({ title: "one step", libs, storage: STORAGE, converge: { privileged: [step] } });
/** `lib` without the definition of `fn` (renamed away, so the rest of the text stays valid bash). */
const without = (lib: ShellLib, fn: string): ShellLib => {
  const def = new RegExp(`^${fn}\\(\\) \\{`, "m");
  expect(lib.text, `${lib.name} defines ${fn}`).toMatch(def);
  return { ...lib, text: lib.text.replace(def, `${fn}_removed_by_the_test() {`) };
};

describe("every function a program calls is defined in it", () => {
  const programs = everyProgram();
  const checked = new Map(programs.map((p) => [p.name, check(p.text)]));
  const all = [...checked.values()];

  it("holds for every program of a site with every concern on", () => {
    // The site switches every concern on: layout, links, SMB (share and passwords), NFS (export
    // and mounts), docker and each kind of container, the env file, Ollama, ComfyUI installs.
    expect(programs.length).toBeGreaterThanOrEqual(40);
    // The options do change the steps, or the second site would add nothing.
    const text = (name: string) => programs.find((p) => p.name === name)?.text;
    expect(text("other options: storage-nfs-export-converge")).not.toBe(text("everything: storage-nfs-export-converge"));
    expect(text("other options: storage-smb-converge")).not.toBe(text("everything: storage-smb-converge"));
    for (const kind of [
      "-layout-converge",
      "-links-storage-user/models-converge",
      "-smb-converge",
      "-smb-passwords",
      "-nfs-export-converge",
      "-nfs-mount-converge",
      "-nfs-cache-converge",
      "-docker-converge",
      "-comfyui-container",
      "-env-converge",
      "-ollama-converge",
    ]) {
      expect(
        programs.some((p) => p.name.endsWith(kind)),
        kind,
      ).toBe(true);
    }
    expect(
      programs.some((p) => /-comfyui-.*-converge$/.test(p.name)),
      "a ComfyUI install",
    ).toBe(true);
    const found = Object.fromEntries([...checked].map(([name, c]) => [name, c.undefined]).filter(([, u]) => u.length > 0));
    expect(found).toEqual({});
  });

  it("holds for the functions a program loads but never runs, too: every library brings what it calls", () => {
    // A container's check runs docker_container alone, yet loads all of docker.sh, whose drop-in
    // and firewall helpers write files with system.sh's helpers: it loads system.sh as well.
    const latent = Object.fromEntries([...checked].map(([name, c]) => [name, c.latent]).filter(([, l]) => l.length > 0));
    expect(latent).toEqual({});
  });

  it("computes a command word only where RUNS_ARGUMENT's helpers run what they are given (read at their call sites), modelshare_main its steps and comfyui_paths the site's Python", () => {
    const computing = new Set(all.flatMap((c) => c.calls.filter((x) => x.name === null).map((x) => x.caller)));
    expect([...computing].filter((f) => !(f in RUNS_ARGUMENT) && !RUNS_SITE_PROGRAM.has(f) && f !== "modelshare_main")).toEqual([]);
  });

  it("sees the calls it checks: in case arms, after || and &&, in $( ), and the commands act and as_owner are given", () => {
    for (const [name, c] of checked) {
      const called = new Set(c.calls.map((x) => `${x.caller} -> ${x.name}`));
      expect(called, name).toContain("modelshare_main -> take_lock"); // in a case arm
      expect(called, name).toContain("modelshare_main -> check_owner"); // as_owner check_owner, after ||
      expect(called, name).toContain("refuse -> complain");
      expect(called, name).toContain("as_owner -> run_as"); // the last command of a function
      expect(called, name).toContain("new_frame -> od"); // in $( )
      const steps = c.calls.filter((x) => (x.caller === "converge_privileged" || x.caller === "converge_owner") && x.name !== ":");
      expect(steps.length, `${name} has steps`).toBeGreaterThan(0);
      expect(
        steps.every((x) => x.name !== null && c.defined.has(x.name)),
        `${name}: every step is a helper`,
      ).toBe(true);
    }
    const layout = all.find((c) => c.defined.has("ensure_tree"));
    const calls = new Set(layout?.calls.map((x) => `${x.caller} -> ${x.name}`));
    expect(calls).toContain("ensure_dir -> make_dir"); // act "…" "…" make_dir "$path" "$mode"
    expect(calls).toContain("ensure_held_dir -> chown"); // act … chown -h …, after [ ] || checking ||
    const smb = all.find((c) => c.defined.has("ensure_packages"));
    expect(new Set(smb?.calls.map((x) => `${x.caller} -> ${x.name}`))).toContain("ensure_packages -> apt_install"); // act …, after ||
  });

  it("reports a step that calls a helper no library defines", () => {
    expect(check(oneStep([DIRS], "no_such_helper 'x'")).undefined).toEqual(["converge_privileged calls no_such_helper"]);
    // …also inside a command substitution, a pipeline, a condition, and given to act.
    const hidden = `[ -n "$(other_missing x | cat)" ] && third_missing || act 'found' 'made' fourth_missing 'x'`;
    expect(check(oneStep([DIRS], hidden)).undefined).toEqual([
      "converge_privileged calls other_missing",
      "converge_privileged calls third_missing",
      "converge_privileged calls fourth_missing",
    ]);
  });

  it("reports a helper whose definition is gone from its library, called directly or through act", () => {
    expect(check(oneStep([DIRS], "ensure_dirs '/x' '0755'")).undefined).toEqual([]);
    expect(check(oneStep([without(DIRS, "ensure_dir")], "ensure_dirs '/x' '0755'")).undefined).toEqual(["ensure_dirs calls ensure_dir"]);
    expect(check(oneStep([without(DIRS, "make_dir")], "ensure_dirs '/x' '0755'")).undefined).toEqual(["ensure_dir calls make_dir"]);
  });

  it("lets no helper through as a node command or a builtin, and lists only commands the programs run", () => {
    const helpers = new Set(all.flatMap((c) => [...c.defined]));
    // Had a helper's name been allowed, a program missing its library would pass.
    expect([...EXTERNAL].filter((x) => helpers.has(x) || x.includes("_"))).toEqual([]);
    expect([...helpers].filter((x) => BASH_WORDS.has(x))).toEqual([]);
    // Every allowed command is one a program runs: the list stays as short as the libraries need.
    const used = new Set(all.flatMap((c) => c.calls.map((x) => x.name)));
    expect([...EXTERNAL].filter((x) => !used.has(x))).toEqual([]);
  });
});
