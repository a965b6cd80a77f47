import { posix } from "node:path";
import { call } from "../shell/quote";
import { LINKS, ownerArgs, renderProgram, shellLib, SYSTEM } from "../shell/script";
import type { Storage } from "../storage/schema";

const OLLAMA = shellLib(__dirname, "ollama");

/** Ollama's models folder as this node sees it. */
export const ollamaDir = (s: Storage, base: string) => posix.join(base, s.ollamaModels);

/** The drop-in: systemd reads `%` as a specifier, so a literal one is doubled. */
export function renderOllamaDropIn(dir: string): string {
  return ["# modelshare: Ollama keeps its models in the shared folder", "[Service]", `Environment="OLLAMA_MODELS=${dir.replace(/%/g, "%%")}"`].join("\n");
}

/**
 * As root: the unit, the account, the checks; the models move as the ollama user. Every check
 * (access, the dry comparison of the old folder with the shared one) comes before the drop-in
 * is written or Ollama stopped; once stopped, every way out starts it again.
 */
export function renderOllamaInstaller(s: Storage, base: string): string {
  const dir = ollamaDir(s, base);
  const owner = ownerArgs(s);
  return renderProgram({
    title: `Ollama's models at ${dir}`,
    libs: [SYSTEM, LINKS, OLLAMA],
    storage: s,
    converge: {
      privileged: [
        "ollama_service",
        call("ollama_group", owner.gid),
        call("ollama_access", dir, owner.gid),
        call("ollama_precheck", dir),
        call("ollama_drop_in", renderOllamaDropIn(dir)),
        call("ollama_migrate", dir),
        "ollama_live",
      ],
    },
    remove: { privileged: ["ollama_unpointed"] },
  });
}
