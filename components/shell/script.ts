import { readFileSync } from "node:fs";
import { join } from "node:path";
import { quote } from "./quote";

/** What a program needs to know of the storage: where it is and who owns it. */
export interface StorageOwner {
  root: string;
  owner: "unmanaged" | { uid: number; gid: number };
}

/** The owner as the scripts take it: empty when ownership is left to whoever makes the root. */
export function ownerArgs(s: Pick<StorageOwner, "owner">): { uid: string; gid: string } {
  return s.owner === "unmanaged" ? { uid: "", gid: "" } : { uid: String(s.owner.uid), gid: String(s.owner.gid) };
}

/** "0775" -> "00775": the extra leading zero makes GNU chmod clear a folder's setgid bit too. */
export const chmodMode = (mode: string) => `0${mode.padStart(4, "0")}`;

/**
 * A shell helper library: a real .sh file, so it reads (and shellchecks) as shell, loaded once
 * with the module that owns it; rendering itself does no I/O. The shared ones live here; each
 * concern loads its own beside its renderers, and never another concern's by path.
 */
export interface ShellLib {
  name: string;
  text: string;
}
export const shellLib = (dir: string, name: string): ShellLib => ({ name, text: readFileSync(join(dir, `${name}.sh`), "utf8").trimEnd() });

const PRELUDE = shellLib(__dirname, "prelude").text;
/** What every program leans on: never following a link, and the folder helpers. */
const GUARD = shellLib(__dirname, "guard");
export const DIRS = shellLib(__dirname, "dirs");
/** Packages, services, files under /etc: the privileged steps every system concern shares. */
export const SYSTEM = shellLib(__dirname, "system");
/** Links, hand-overs and merges (merge_into): the links folders and the installers' migrations. */
export const LINKS = shellLib(__dirname, "links");

/**
 * The steps of one verb. `privileged` steps run as whoever runs the program (root on a real
 * node): only what needs root, and never through a name inside the storage tree. `owner` steps
 * run as the storage owner: everything inside the tree. Each line is one helper call, every
 * value already quoted (build them with `call`).
 */
export interface Steps {
  privileged?: readonly string[];
  owner?: readonly string[];
}

export interface ProgramSpec {
  /** One line saying what the program converges; it heads the program and names its processes. */
  title: string;
  /** The helper libraries the steps call (GUARD is always in). */
  libs: readonly ShellLib[];
  /** The storage: its root, and its owner (unmanaged: the root folder's owner, taken at run time). */
  storage: StorageOwner;
  /**
   * Steps of `bash -s converge` (create and update). `bash -s check` runs the same steps, the
   * helpers reporting each change (`drift: …`) instead of making it.
   */
  converge: Steps;
  /** Steps of `bash -s remove` (delete), when the component undoes anything. */
  remove?: Steps;
  /** Extra read-only steps of `bash -s check`: `report: …` lines for the storage report. */
  report?: Steps;
  /**
   * The program reads input that follows it on stdin (secrets: they never enter the program
   * text, a command line or an environment). Its steps read it from fd 3, e.g. `read -r -u 3`.
   */
  input?: boolean;
}

// Only a step's first line is indented: its other lines may be inside a quoted value (a file's
// content), which must reach the node byte for byte.
const fn = (name: string, lines: readonly string[] | undefined) => [`${name}() {`, ...(lines ?? []).map((l) => `  ${l}`), "  :", "}"];

/**
 * A converging bash program: strict mode, a per-host lock, a change counter, the helpers, the
 * steps of each verb split by privilege, and a closing `changed=N` line (`drift=N` for check)
 * so a second run is seen to change nothing. It is run as `bash -s <verb>`, program on stdin.
 */
export function renderProgram(spec: ProgramSpec): string {
  const title = spec.title.replace(/[\r\n]+/g, " ");
  const owner = [spec.converge.owner, spec.remove?.owner, spec.report?.owner].some((s) => s?.length);
  const body = [
    PRELUDE,
    ...[...new Map([GUARD, ...spec.libs].map((lib) => [lib.name, lib.text])).values()],
    "# --- this program ---",
    `program_title=${quote(title)}`,
    `storage_root=${quote(spec.storage.root)}`,
    `owner_uid=${quote(ownerArgs(spec.storage).uid)}`,
    `owner_gid=${quote(ownerArgs(spec.storage).gid)}`,
    // A program without steps inside the tree starts no owner's child at all.
    `owner_steps=${owner ? "yes" : "no"}`,
    ...fn("converge_privileged", spec.converge.privileged),
    ...fn("converge_owner", spec.converge.owner),
    ...fn("remove_privileged", spec.remove?.privileged),
    ...fn("remove_owner", spec.remove?.owner),
    ...fn("report_privileged", spec.report?.privileged),
    ...fn("report_owner", spec.report?.owner),
    spec.input ? `modelshare_main "$@" 3<&0 </dev/null` : `modelshare_main "$@" </dev/null`,
    "",
  ].join("\n");
  const text = [
    "#!/usr/bin/env bash",
    `# modelshare: ${title}`,
    // bash reads a script on stdin one byte at a time (so that commands could read the rest):
    // slow under emulation. Read the rest at once, exactly its length (so that input following
    // the program stays on stdin for it), and run it from memory instead.
    `[ -n "\${BASH_EXECUTION_STRING-}" ] || { program=$(head -c ${Buffer.byteLength(body)}) && exec bash --norc -c "$program" modelshare "$@"; exit 1; }`,
    body,
  ].join("\n");
  // It travels as one argument (bash -c), which Linux caps at 128 KiB.
  if (Buffer.byteLength(text) > 120_000)
    throw new Error(`modelshare: the program for ${title} is ${Buffer.byteLength(text)} bytes, over the 120,000 an argument may carry`);
  return text;
}

export type Verb = "converge" | "check" | "remove";

/**
 * How a program reaches a node: the command is `bash -s <verb>` and the program travels on
 * stdin. Whatever the SSH user's login shell is (sh, bash, csh, fish), it only ever parses
 * those three words (and a check's frame, 32 hex digits); a csh once mangled `bash -c '<multi-line script>'` and ran stray lines.
 */
export const commandFor = (verb: Verb, frame?: string): string => {
  // A reader's frame (random, 32 hex digits): every line the program prints then starts with
  // it, so a name from the tree cannot pass for a line of the program's (prelude.sh).
  if (frame === undefined) return `bash -s ${verb}`;
  if (!/^[0-9a-f]{32}$/.test(frame)) throw new Error(`modelshare: a frame is 32 hex digits, not ${JSON.stringify(frame)}`);
  return `bash -s ${verb} ${frame}`;
};
