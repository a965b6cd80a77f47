import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { layoutDirs, linkFolders } from "../components/storage/paths";
import { chmodMode } from "../components/shell/script";
import { renderStorageLayout } from "../components/storage/layout";
import { renderSymlinkSet } from "../components/storage/symlinkSet";
import { localStorage } from "./helpers/run";
import { shellcheck } from "./helpers/shellcheck";

const seedsStorage = () => localStorage({ root: "/vol/service/cw", links: ["storage-user/models", "storage-user/models-upload"], minFreeGB: 50 });
// Config refuses quotes and $ in paths; the renderers must still quote them safely.
const weird = () => ({
  ...localStorage({ root: "/srv/x", links: ["up load/models"], outputs: ["Comfy UI"], owner: { uid: 1234, gid: 99 }, modes: { models: "2775", user: "0770" } }),
  root: "/srv/it's $HOME",
});

/** The step lines of one of a program's step functions (converge_owner, remove_privileged…). */
const steps = (program: string, fn = "converge_owner") => {
  const start = program.indexOf(`\n${fn}() {\n`);
  if (start < 0) throw new Error(`no ${fn} in the program`);
  const body = program.slice(start + fn.length + 6, program.indexOf("\n  :\n}", start));
  return body === "" ? [] : body.split("\n").map((l) => l.replace(/^ {2}/, ""));
};
/** The rows of the program's FN step (ensure_tree, ensure_dirs): the quoted words of each row. */
const dirRows = (program: string, fn = "ensure_tree") => {
  const lines = steps(program, fn === "ensure_tree" ? "converge_privileged" : "converge_owner");
  const at = lines.findIndex((l) => l.startsWith(`${fn} `) || l === `${fn} \\`);
  expect(at).toBeGreaterThanOrEqual(0);
  const rows: string[] = [];
  for (const l of lines.slice(at + 1)) {
    rows.push(l.trim().replace(/ \\$/, ""));
    if (!l.endsWith(" \\")) break;
  }
  return rows;
};

describe("rendered scripts", () => {
  it("the storage layout: root checks space and the root's parents, then makes the skeleton (root's) and the leaves (the owner's), parents first", () => {
    const s = seedsStorage();
    const program = renderStorageLayout(s);
    const privileged = steps(program, "converge_privileged");
    expect(privileged[0]).toBe("check_free_space '/vol/service/cw' '50000000000' 'storage.minFreeGB'");
    expect(privileged[1]).toBe("require_safe_ancestors '/vol/service/cw' '1000' '1000'");
    expect(privileged[2]).toBe("ensure_root '/vol/service/cw' '0' '0' '00755' 'storage.root'");
    expect(privileged[3]).toBe("ensure_tree '1000' '1000' \\");
    const rows = dirRows(program);
    expect(rows).toContain("'/vol/service/cw/storage-models' 'root' '00755'");
    expect(rows).toContain("'/vol/service/cw/storage-models/models' 'root' '00755'");
    expect(rows).toContain("'/vol/service/cw/storage-models/models/checkpoints' 'owner' '00775'");
    expect(rows).toContain("'/vol/service/cw/storage-user/output' 'root' '00755'");
    expect(rows).toContain("'/vol/service/cw/storage-user/output/ComfyUI' 'owner' '00775'");
    expect(rows).toContain("'/vol/service/cw/storage-models/ollama' 'owner' '00775'");
    expect(rows).toContain("'/vol/service/cw/storage-models/comfyui/custom_nodes' 'root' '00755'");
    expect(rows).toContain("'/vol/service/cw/projects' 'root' '00755'");
    expect(rows).not.toContain("'/vol/service/cw' 'root' '00755'");
    expect(rows).toHaveLength(layoutDirs(s).length - 1);
    expect(steps(program, "converge_owner").some((l) => l.startsWith("ensure_dirs"))).toBe(false);
    expect(program).toContain("\nowner_uid='1000'\nowner_gid='1000'\n");
    expect(program.trimEnd().split("\n").at(-1)).toBe(`modelshare_main "$@" </dev/null`);
    expect(steps(program, "remove_owner")).toEqual([]);
    const dirs = layoutDirs(s).map((d) => d.path);
    expect(new Set(dirs).size).toBe(dirs.length);
    dirs.forEach((d, i) => {
      const parent = d.slice(0, d.lastIndexOf("/"));
      if (d !== s.root) expect(dirs.indexOf(parent), `${parent} before ${d}`).toBeLessThan(i);
    });
    expect(dirs).not.toContain("/vol/service/cw/storage-user/models-upload");
  });

  it("quotes awkward names and passes owner and modes through", () => {
    const program = renderStorageLayout(weird());
    const rows = dirRows(program);
    expect(rows).toContain(`'/srv/it'\\''s $HOME/storage-user/output/Comfy UI' 'owner' '00770'`);
    expect(rows).toContain(`'/srv/it'\\''s $HOME/storage-models/models/vae' 'owner' '02775'`);
    expect(steps(program, "converge_privileged")[2]).toBe(`ensure_root '/srv/it'\\''s $HOME' '0' '0' '00755' 'storage.root'`);
    expect(steps(program, "converge_privileged")[3]).toBe(`ensure_tree '1234' '99' \\`);
    expect(program).toContain(`\nstorage_root='/srv/it'\\''s $HOME'\n`);
    expect(chmodMode("775")).toBe("00775");
  });

  it("links are relative to their folder; root only hands folders over; remove takes only those links", () => {
    const s = seedsStorage();
    const [models, upload] = linkFolders(s);
    expect(upload.prefix).toBe("../../storage-models/models");
    const names = "'checkpoints' 'loras' 'vae' 'controlnet' 'upscale_models' 'embeddings' 'clip' 'diffusion_models'";
    expect(steps(renderSymlinkSet(s, upload), "converge_privileged")).toEqual([
      "ensure_tree '1000' '1000' \\",
      "'/vol/service/cw/storage-user/models-upload' 'root' '00755'",
      `hand_over '/vol/service/cw/storage-user/models-upload' '1000' '1000' ${names}`,
      `prune_links '/vol/service/cw/storage-user/models-upload' '../../storage-models/models' ${names}`,
      ...s.categories.map(
        (c) => `ensure_link '/vol/service/cw/storage-user/models-upload/${c}' '../../storage-models/models/${c}' '/vol/service/cw/storage-models/models/${c}'`,
      ),
    ]);
    expect(steps(renderSymlinkSet(s, upload), "converge_owner")).toEqual([]);
    expect(steps(renderSymlinkSet(s, models), "remove_owner")).toEqual([]);
    expect(steps(renderSymlinkSet(s, models), "remove_privileged")).toEqual([
      "require_no_link '/vol/service/cw/storage-user/models'",
      ...s.categories.map((c) => `remove_link '/vol/service/cw/storage-user/models/${c}' '../../storage-models/models/${c}'`),
      "remove_empty_dir '/vol/service/cw/storage-user/models'",
    ]);
  });

  it("an unmanaged owner renders no chown step and an empty owner, taken from the root folder at run time", () => {
    const s = localStorage({ root: "/srv/m", owner: "unmanaged" });
    const program = renderStorageLayout(s);
    expect(steps(program, "converge_privileged").slice(0, 4)).toEqual([
      "check_free_space '/srv/m' '0' 'storage.minFreeGB'",
      "require_safe_ancestors '/srv/m' '' ''",
      "ensure_root '/srv/m' '' '' '00755' 'storage.root'",
      "ensure_tree '' '' \\",
    ]);
    expect(dirRows(program)).toContain("'/srv/m/projects' 'root' '00755'");
    expect(program).toContain("\nowner_uid=''\nowner_gid=''\n");
    expect(steps(renderSymlinkSet(s, linkFolders(s)[0]), "converge_privileged").some((l) => l.startsWith("hand_over"))).toBe(false);
  });

  // The awkward site holds a literal "$HOME" on purpose, which is exactly what SC2016 (an
  // info about `$` inside single quotes) points at; everything else must be clean.
  it.each([
    ["the seeds' site", seedsStorage, []],
    ["an awkward site", weird, ["--exclude=SC2016"]],
  ] as const)("every rendered script for %s is shellcheck-clean", (_name, storage, extra) => {
    const s = storage();
    const scripts = [renderStorageLayout(s), ...linkFolders(s).map((set) => renderSymlinkSet(s, set))];
    expect(shellcheck(scripts, extra)).toBe("");
  });
});

describe("shell files in the tree", () => {
  it("the helper libraries, scripts/, lab/ and .ci/run are shellcheck-clean", () => {
    const dirs = readdirSync("components", { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => `components/${d.name}`);
    const files = [...dirs, "scripts", "lab"].filter(existsSync).flatMap((dir) =>
      readdirSync(dir)
        .filter((f) => f.endsWith(".sh"))
        .map((f) => `${dir}/${f}`),
    );
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(shellcheck([...files, ".ci/run"].map((f) => readFileSync(f, "utf8")))).toBe("");
  });
});
