import { readFileSync } from "node:fs";
import { join } from "node:path";
import { quote } from "./quote";

/**
 * The shell helper libraries, kept as real .sh files so they read (and shellcheck) as shell.
 * They are constants loaded once with the module; rendering itself does no I/O.
 */
export type ShellLib = "dirs" | "links" | "space";
const load = (name: string): string => readFileSync(join(__dirname, `${name}.sh`), "utf8").trimEnd();
const PRELUDE = load("prelude");
const LIBS: Record<ShellLib, string> = { dirs: load("dirs"), links: load("links"), space: load("space") };

export interface ScriptSpec {
  /** One line saying what the script converges; it heads the script. */
  title: string;
  /** The helper libraries the body calls. */
  libs: readonly ShellLib[];
  /** Body lines, one step each, every value already quoted (build them with `call`). */
  body: readonly string[];
}

/**
 * A converging bash script: strict mode, a per-host lock, a change counter, the helpers, the
 * steps, and a closing `changed=N` line so a second run is seen to change nothing.
 */
export function renderScript(spec: ScriptSpec): string {
  return [
    "#!/usr/bin/env bash",
    `# modelshare: ${spec.title.replace(/[\r\n]+/g, " ")}`,
    PRELUDE,
    ...[...new Set(spec.libs)].map((lib) => LIBS[lib]),
    "# --- steps ---",
    ...spec.body,
    `printf 'changed=%d\\n' "$changed"`,
    "",
  ].join("\n");
}

/** How a script reaches a node: `bash -c '<script>'`, whatever the user's login shell is. */
export function asCommand(script: string): string {
  return `bash -c ${quote(script)}`;
}
