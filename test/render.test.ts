import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { layoutDirs, linkFolders } from "../components/paths";
import { chmodMode, renderStorageLayout } from "../components/storageLayout";
import { renderSymlinkSet, renderSymlinkUnset } from "../components/symlinkSet";
import { localStorage } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";

const seedsStorage = () => localStorage({ root: "/vol/service/cw", links: ["storage-user/models", "storage-user/models-upload"], minFreeGB: 50 });
// Config refuses quotes and $ in paths; the renderers must still quote them safely.
const weird = () => ({
  ...localStorage({ root: "/srv/x", links: ["up load/models"], outputs: ["Comfy UI"], owner: { uid: 1234, gid: 99 }, modes: { models: "2775", user: "0770" } }),
  root: "/srv/it's $HOME",
});

const steps = (script: string) => script.slice(script.indexOf("# --- steps ---\n") + 16).trimEnd().split("\n");

describe("rendered scripts", () => {
  it("the storage layout checks space, refuses a missing parent, then makes every folder parents first", () => {
    const s = seedsStorage();
    const lines = steps(renderStorageLayout(s));
    expect(lines[0]).toBe("check_free_space '/vol/service/cw' '50000000000' 'storage.minFreeGB'");
    expect(lines[1]).toBe("require_parent '/vol/service/cw' 'storage.root'");
    expect(lines).toContain("ensure_dir '/vol/service/cw/storage-models/models/checkpoints' '1000' '1000' '00775'");
    expect(lines).toContain("ensure_dir '/vol/service/cw/storage-user/output/ComfyUI' '1000' '1000' '00775'");
    expect(lines).toContain("ensure_dir '/vol/service/cw/storage-models/ollama' '1000' '1000' '00775'");
    expect(lines).toContain("ensure_dir '/vol/service/cw/storage-models/comfyui/custom_nodes' '1000' '1000' '00775'");
    expect(lines.at(-1)).toBe(`printf 'changed=%d\\n' "$changed"`);
    const dirs = layoutDirs(s).map((d) => d.path);
    expect(new Set(dirs).size).toBe(dirs.length);
    dirs.forEach((d, i) => {
      const parent = d.slice(0, d.lastIndexOf("/"));
      if (d !== s.root) expect(dirs.indexOf(parent), `${parent} before ${d}`).toBeLessThan(i);
    });
    expect(dirs).not.toContain("/vol/service/cw/storage-user/models-upload");
  });

  it("quotes awkward names and passes owner and modes through", () => {
    const lines = steps(renderStorageLayout(weird()));
    expect(lines).toContain(`ensure_dir '/srv/it'\\''s $HOME/storage-user/output/Comfy UI' '1234' '99' '00770'`);
    expect(lines).toContain(`ensure_dir '/srv/it'\\''s $HOME/storage-models/models/vae' '1234' '99' '02775'`);
    expect(chmodMode("775")).toBe("00775");
  });

  it("links are relative to their folder and the unset removes only those links", () => {
    const s = seedsStorage();
    const [models, upload] = linkFolders(s);
    expect(upload.prefix).toBe("../../storage-models/models");
    expect(steps(renderSymlinkSet(s, upload))).toEqual([
      "ensure_dir '/vol/service/cw/storage-user/models-upload' '1000' '1000' '00775'",
      "prune_links '/vol/service/cw/storage-user/models-upload' '../../storage-models/models' 'checkpoints' 'loras' 'vae' 'controlnet' 'upscale_models' 'embeddings' 'clip' 'diffusion_models'",
      ...s.categories.map((c) => `ensure_link '/vol/service/cw/storage-user/models-upload/${c}' '../../storage-models/models/${c}'`),
      `printf 'changed=%d\\n' "$changed"`,
    ]);
    expect(steps(renderSymlinkUnset(models))).toEqual([
      ...s.categories.map((c) => `remove_link '/vol/service/cw/storage-user/models/${c}' '../../storage-models/models/${c}'`),
      "remove_empty_dir '/vol/service/cw/storage-user/models'",
      `printf 'changed=%d\\n' "$changed"`,
    ]);
  });

  it("an unmanaged owner renders empty uid/gid so nothing is chowned", () => {
    const s = localStorage({ root: "/srv/m", owner: "unmanaged" });
    expect(steps(renderStorageLayout(s))).toContain("ensure_dir '/srv/m/projects' '' '' '00775'");
  });

  // The awkward site holds a literal "$HOME" on purpose, which is exactly what SC2016 (an
  // info about `$` inside single quotes) points at; everything else must be clean.
  it.each([["the seeds' site", seedsStorage, []], ["an awkward site", weird, ["--exclude=SC2016"]]] as const)(
    "every rendered script for %s is shellcheck-clean",
    (_name, storage, extra) => {
      const s = storage();
      const scripts = [renderStorageLayout(s), ...linkFolders(s).flatMap((set) => [renderSymlinkSet(s, set), renderSymlinkUnset(set)])];
      expect(shellcheck(scripts, extra)).toBe("");
    },
  );
});

describe("shell files in the tree", () => {
  it("the helper libraries, scripts/, lab/ and .ci/run are shellcheck-clean", () => {
    const files = ["components/shell", "scripts", "lab"].filter(existsSync)
      .flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith(".sh")).map((f) => `${dir}/${f}`));
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(shellcheck([...files, ".ci/run"].map((f) => readFileSync(f, "utf8")))).toBe("");
  });
});
