import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import type { Storage } from "../components/config";
import { linkFolders } from "../components/storage/paths";
import { renderStorageLayout } from "../components/storage/layout";
import { renderSymlinkSet } from "../components/storage/symlinkSet";
import { localStorage, runProgram, sh, tempRoot, treeDigest } from "./helpers/run";

let root: string;
let s: Storage;
let upload: string;
let store: string;

const converge = (storage: Storage = s) => {
  const layout = runProgram(renderStorageLayout(storage));
  expect(layout.code, layout.stderr).toBe(0);
  const [set] = linkFolders(storage);
  return runProgram(renderSymlinkSet(storage, set));
};
const destroy = (storage: Storage = s) => runProgram(renderSymlinkSet(storage, linkFolders(storage)[0]), "remove");

/** Writes files (path -> content) under a folder, making parents. */
function put(dir: string, files: Record<string, string>) {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
}

/** find -L over the whole root: any symlink loop makes find complain on stderr. */
function loopsUnder(dir: string): string {
  const r = spawnSync("find", ["-L", dir, "-printf", ""], { encoding: "utf8" });
  return r.stderr;
}

beforeEach(() => {
  root = tempRoot();
  s = localStorage({ root, owner: "unmanaged" });
  upload = join(root, "storage-user/models-upload");
  store = join(root, "storage-models/models");
});

describe("symlink set, run for real", () => {
  it("creates one relative link per category, and a second run changes nothing", () => {
    const first = converge();
    expect(first.code, first.stderr).toBe(0);
    for (const c of s.categories) {
      expect(readlinkSync(join(upload, c))).toBe(`../../storage-models/models/${c}`);
      expect(realpathSync(join(upload, c))).toBe(join(store, c));
    }
    const inode = lstatSync(join(upload, "vae")).ino;
    const second = converge();
    expect(second.changed).toBe(0);
    expect(lstatSync(join(upload, "vae")).ino).toBe(inode);
    expect(loopsUnder(root)).toBe("");
  });

  it("an upload through a link lands in the category folder, also when the tree is seen at another path", () => {
    converge();
    const alias = join(dirname(root), "mounted-elsewhere");
    symlinkSync(root, alias);
    writeFileSync(join(alias, "storage-user/models-upload/loras/style.safetensors"), "lora bytes");
    expect(existsSync(join(store, "loras/style.safetensors"))).toBe(true);
  });

  it("repoints a wrong or dangling link atomically", () => {
    converge();
    sh(`ln -sfn /tmp ${join(upload, "vae")} && rm ${join(upload, "loras")} && ln -s ../nowhere ${join(upload, "loras")}`);
    const r = converge();
    expect(r.code, r.stderr).toBe(0);
    expect(r.changed).toBe(2);
    expect(r.stdout).toContain(`changed: repointed ${join(upload, "vae")}: /tmp -> ../../storage-models/models/vae`);
    expect(readlinkSync(join(upload, "loras"))).toBe("../../storage-models/models/loras");
    expect(existsSync("/tmp/vae")).toBe(false); // ln -sf would have nested a link inside the old target
  });

  it("merges a populated real folder into the category, byte for byte, then links it", () => {
    converge();
    put(join(store, "checkpoints"), { "old.safetensors": "already in the store", "sub/a.bin": "kept" });
    sh(`rm ${join(upload, "checkpoints")}`);
    const dropped = {
      "sd15.safetensors": "x".repeat(100_000),
      ".hidden": "dot file",
      "with space.ckpt": "spaces",
      "line\nbreak.bin": "newline in the name",
      "sub/b.bin": "nested next to an existing sub folder",
      "deep/er/c.bin": "deeper",
      "old.safetensors": "already in the store", // the same bytes: a duplicate
    };
    put(join(upload, "checkpoints"), dropped);
    const expected = { ...treeDigest(join(upload, "checkpoints")), ...treeDigest(join(store, "checkpoints")) };
    const r = converge();
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(upload, "checkpoints")).isSymbolicLink()).toBe(true);
    expect(treeDigest(join(store, "checkpoints"))).toEqual(expected);
    expect(r.stdout).toContain("the same bytes are already in");
    expect(converge().changed).toBe(0);
  });

  it("stops with the list of conflicts and moves nothing when a name holds other bytes", () => {
    converge();
    put(join(store, "loras"), { "a.safetensors": "store version", "ok.bin": "x" });
    sh(`rm ${join(upload, "loras")}`);
    put(join(upload, "loras"), { "a.safetensors": "uploaded version", "fresh.bin": "new", "ok.bin": "x" });
    const before = treeDigest(root);
    const r = converge();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("these names hold different content:\n  a.safetensors\n");
    expect(r.stderr).not.toContain("ok.bin");
    expect(r.stderr).toContain("nothing was moved");
    expect(treeDigest(root)).toEqual(before);
  });

  it("refuses a regular file where a link belongs and leaves it", () => {
    converge();
    sh(`rm ${join(upload, "vae")}`);
    writeFileSync(join(upload, "vae"), "a user's file");
    const r = converge();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${join(upload, "vae")} is a file where modelshare keeps a link`);
    expect(lstatSync(join(upload, "vae")).isFile()).toBe(true);
  });

  it("finishes after an interrupted run left its temporary link behind", () => {
    converge();
    sh(`rm ${join(upload, "clip")} && ln -s ../../storage-models/models/clip ${join(upload, "clip.modelshare-new")}`);
    const r = converge();
    expect(r.code, r.stderr).toBe(0);
    expect(readlinkSync(join(upload, "clip"))).toBe("../../storage-models/models/clip");
    expect(existsSync(join(upload, "clip.modelshare-new"))).toBe(false);
  });

  it("adding a category adds just that link; removing one removes just its link and keeps its models", () => {
    converge();
    const more = localStorage({ root, owner: "unmanaged", categories: [...s.categories, "clip_vision"] });
    const layout = runProgram(renderStorageLayout(more));
    expect(layout.stdout.match(/^changed: .*/gm)).toEqual([`changed: created folder ${join(store, "clip_vision")}`]);
    const added = converge(more);
    expect(added.stdout.match(/^changed: .*/gm)).toEqual([`changed: linked ${join(upload, "clip_vision")} -> ../../storage-models/models/clip_vision`]);
    expect(readlinkSync(join(upload, "clip_vision"))).toBe("../../storage-models/models/clip_vision");
    put(join(store, "clip_vision"), { "model.bin": "keep me" });
    const fewer = localStorage({ root, owner: "unmanaged", categories: s.categories.filter((c) => c !== "vae") });
    const pruned = converge(fewer);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(existsSync(join(upload, "vae"))).toBe(false);
    expect(existsSync(join(upload, "clip_vision"))).toBe(false);
    expect(existsSync(join(store, "clip_vision/model.bin"))).toBe(true);
    expect(existsSync(join(store, "vae"))).toBe(true);
  });

  it("destroy removes only its own links, never data, and keeps a folder a user still uses", () => {
    converge();
    put(join(store, "vae"), { "big.safetensors": "model bytes" });
    const models = treeDigest(store);
    sh(`ln -sfn /tmp ${join(upload, "loras")}`); // re-pointed by the admin: not ours any more
    writeFileSync(join(upload, "notes.txt"), "a user's note");
    const r = destroy();
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(upload, "vae"))).toBe(false);
    expect(readlinkSync(join(upload, "loras"))).toBe("/tmp");
    expect(r.stdout).toContain(`left ${join(upload, "loras")} alone`);
    expect(existsSync(join(upload, "notes.txt"))).toBe(true);
    expect(treeDigest(store)).toEqual(models);
    expect(destroy().changed).toBe(0);
  });

  it("destroy removes the links folder when it is left empty", () => {
    converge();
    expect(destroy().code).toBe(0);
    expect(existsSync(upload)).toBe(false);
    expect(existsSync(join(store, "vae"))).toBe(true);
  });
});
