import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { layoutDirs } from "../components/storage/paths";
import { renderStorageLayout } from "../components/storage/layout";
import { asOwner } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot } from "./helpers/run";

const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8);

describe("project folders, run for real", () => {
  it("lays out each project with a metadata.json made once and never rewritten; a project dropped from the list stays and is named", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: { uid: 1000, gid: 1000 } });
    const before = Math.floor(Date.now() / 1000) * 1000; // the stamp has whole seconds
    const first = runProgram(renderStorageLayout(s, ["spring-campaign", "Logo 2027"]));
    const after = Date.now();
    expect(first.code, first.stderr).toBe(0);
    const p = join(root, "projects/spring-campaign");
    for (const sub of [
      "workflows",
      "prompts",
      "generated/images",
      "generated/videos",
      "generated/audio",
      "intermediate/latents",
      "intermediate/masks",
      "intermediate/frames",
      "final",
    ]) {
      const st = statSync(join(p, sub));
      expect([st.isDirectory(), st.uid, st.gid, mode(join(p, sub))], sub).toEqual([true, 1000, 1000, "775"]);
    }
    const meta = JSON.parse(readFileSync(join(p, "metadata.json"), "utf8"));
    expect(meta.id).toBe("spring-campaign");
    // Made during this run: between the clock read before it and the one after, however slow.
    expect(Date.parse(meta.created)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(meta.created)).toBeLessThanOrEqual(after);
    expect(statSync(join(p, "metadata.json")).uid).toBe(1000);
    expect(JSON.parse(readFileSync(join(root, "projects/Logo 2027/metadata.json"), "utf8")).id).toBe("Logo 2027");
    // The studio adds to it; modelshare never writes it again.
    writeFileSync(join(p, "metadata.json"), '{"id": "spring-campaign", "client": "ACME"}\n');
    const second = runProgram(renderStorageLayout(s, ["spring-campaign", "Logo 2027"]));
    expect(second.changed).toBe(0);
    expect(readFileSync(join(p, "metadata.json"), "utf8")).toContain("ACME");
    const dropped = runProgram(renderStorageLayout(s, ["spring-campaign"]));
    expect(dropped.changed).toBe(0);
    expect(dropped.stdout).toContain(`note: project folder ${join(root, "projects/Logo 2027")} is not in modelshare:projects; left as it is`);
    expect(existsSync(join(root, "projects/Logo 2027/metadata.json"))).toBe(true);
  });

  it("never writes metadata.json through a link the owner planted in its place", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: { uid: 1000, gid: 1000 } });
    expect(runProgram(renderStorageLayout(s)).code).toBe(0);
    mkdirSync(join(root, "projects/p1"), { mode: 0o775 });
    chownSync(join(root, "projects/p1"), 1000, 1000);
    asOwner(`ln -s /etc/modelshare-planted-target ${join(root, "projects/p1/metadata.json")}`);
    const r = runProgram(renderStorageLayout(s, ["p1"]));
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync("/etc/modelshare-planted-target")).toBe(false);
  });
});

describe("storage layout, run for real", () => {
  it("builds the seeds' tree with owner and modes, then a second run changes nothing", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: { uid: 1000, gid: 1000 } });
    const first = runProgram(renderStorageLayout(s));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toBe("");
    // The leaves are the owner's, with the configured modes.
    for (const sub of [
      "storage-models/models/checkpoints",
      "storage-models/models/diffusion_models",
      "storage-user/output/ComfyUI",
      "storage-user/output/Forge",
      "storage-user/input",
      "storage-user/workflows",
      "media_cache",
      "storage-models/ollama",
    ]) {
      const st = statSync(join(root, sub));
      expect(st.isDirectory(), sub).toBe(true);
      expect([st.uid, st.gid, mode(join(root, sub))], sub).toEqual([1000, 1000, "775"]);
    }
    // The skeleton above them, and code, are root's: the owner cannot rename or add a name there.
    for (const sub of [
      "",
      "storage-models",
      "storage-models/models",
      "storage-user",
      "storage-user/output",
      "projects",
      "storage-models/comfyui",
      "storage-models/comfyui/custom_nodes",
    ]) {
      const st = statSync(join(root, sub));
      expect([st.isDirectory(), st.uid, st.gid, mode(join(root, sub))], sub || "root").toEqual([true, 0, 0, "755"]);
    }
    expect(first.changed).toBeGreaterThanOrEqual(layoutDirs(s).length);
    const second = runProgram(renderStorageLayout(s));
    expect(second.code, second.stderr).toBe(0);
    expect(second.changed).toBe(0);
    expect(second.stdout).not.toMatch(/^changed: /m);
  });

  it("repairs a removed category folder, a wrong mode and a wrong owner, and reports just those", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: { uid: 1000, gid: 1000 } });
    expect(runProgram(renderStorageLayout(s)).code).toBe(0);
    chmodSync(join(root, "projects"), 0o700);
    chownSync(join(root, "media_cache"), 0, 0);
    chownSync(join(root, "storage-user"), 1000, 1000);
    const gone = join(root, "storage-models/models/vae");
    sh(`rmdir ${gone}`);
    const r = runProgram(renderStorageLayout(s));
    expect(r.code, r.stderr).toBe(0);
    expect(r.changed).toBe(4); // vae created, projects' mode, media_cache's and storage-user's owner
    expect(r.stdout).toContain(`changed: created folder ${gone}`);
    expect(r.stdout).toContain(`changed: mode of ${join(root, "projects")}: 0700 -> 0755`);
    expect(r.stdout).toContain(`changed: owner of ${join(root, "media_cache")}: 0:0 -> 1000:1000`);
    expect(r.stdout).toContain(`changed: owner of ${join(root, "storage-user")}: 1000:1000 -> 0:0`);
    expect(runProgram(renderStorageLayout(s)).changed).toBe(0);
  });

  it("sets and clears the setgid bit, converging both ways", () => {
    const root = tempRoot();
    const sticky = localStorage({ root, owner: "unmanaged", modes: { models: "2775", user: "2770" } });
    expect(runProgram(renderStorageLayout(sticky)).code).toBe(0);
    expect(mode(join(root, "storage-models/models/loras"))).toBe("2775");
    expect(mode(join(root, "storage-user/input"))).toBe("2770");
    expect(runProgram(renderStorageLayout(sticky)).changed).toBe(0);
    const plain = localStorage({ root, owner: "unmanaged" });
    expect(runProgram(renderStorageLayout(plain)).code).toBe(0);
    expect(mode(join(root, "storage-models/models/loras"))).toBe("775");
    expect(runProgram(renderStorageLayout(plain)).changed).toBe(0);
  });

  it("refuses a root whose parent is missing (an unmounted volume) and creates nothing", () => {
    const root = join(tempRoot(), "not-mounted", "cw");
    const r = runProgram(renderStorageLayout(localStorage({ root })));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`modelshare: ${dirname(root)} does not exist, so storage.root (${root}) cannot be created in it`);
    expect(existsSync(dirname(root))).toBe(false);
  });

  it("fails the deploy with the numbers when there is too little free space", () => {
    const root = tempRoot();
    const r = runProgram(renderStorageLayout(localStorage({ root, minFreeGB: 900_000 })));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /only \d+\.\d GB are free on the filesystem holding .*, but storage\.minFreeGB asks for at least 900000\.0 GB; free some space or lower storage\.minFreeGB\./,
    );
    expect(existsSync(root)).toBe(false);
  });

  it("a df that fails (the folder changed under it) ends the run in modelshare's sentence, never df's words", () => {
    const root = tempRoot();
    const bin = dirname(root); // the temp folder above the root: root's own, not the tree's
    writeFileSync(join(bin, "df"), "#!/bin/sh\necho 'df: raw words' >&2\nexit 1\n");
    chmodSync(join(bin, "df"), 0o755);
    const r = runProgram(renderStorageLayout(localStorage({ root })), "converge", { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /^modelshare: could not read the free space of the filesystem holding .* \(df could not: was it changed meanwhile\?\); run again\.$/m,
    );
    expect(r.stderr).not.toContain("raw words");
  });

  it("refuses a file or a link where a folder belongs, leaving both alone", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: "unmanaged" });
    mkdirSync(join(root, "storage-models/models"), { recursive: true });
    writeFileSync(join(root, "storage-models/models/loras"), "not a folder");
    let r = runProgram(renderStorageLayout(s));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${join(root, "storage-models/models/loras")} is a file, but modelshare keeps a folder there`);
    sh(`rm ${join(root, "storage-models/models/loras")}; rmdir ${join(root, "projects")}`);
    symlinkSync("/tmp", join(root, "projects"));
    r = runProgram(renderStorageLayout(s));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${join(root, "projects")} is a symbolic link`);
  });

  it("runs without root when ownership is unmanaged (the dev stack), and refuses a chown it cannot do", () => {
    const base = dirname(tempRoot());
    chownSync(base, 65534, 65534);
    const root = join(base, "cw");
    const s = localStorage({ root, owner: "unmanaged" });
    const first = runProgram(renderStorageLayout(s), "converge", { user: "nobody" });
    expect(first.code, first.stderr).toBe(0);
    expect(statSync(join(root, "storage-models/models/vae")).uid).toBe(65534);
    expect(runProgram(renderStorageLayout(s), "converge", { user: "nobody" }).changed).toBe(0);
    const r = runProgram(renderStorageLayout(localStorage({ root, owner: { uid: 1000, gid: 1000 } })), "converge", { user: "nobody" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/only root can change that; run as root or set storage.owner to "unmanaged"/);
  });
});
