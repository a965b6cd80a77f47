import { chownSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Storage } from "../components/config";
import { linkFolders } from "../components/storage/paths";
import { renderStorageLayout } from "../components/storage/layout";
import { renderSymlinkSet } from "../components/storage/symlinkSet";
import { metaDigest, OWNER } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot, type RunOptions } from "./helpers/run";

/**
 * `bash -s check`: the converge steps, reporting instead of changing. Run against a drifted
 * tree, it must leave every byte, owner and mode as it was and name each drift once.
 */
const programs = (s: Storage) => [renderStorageLayout(s), ...linkFolders(s).map((set) => renderSymlinkSet(s, set))];
const converge = (s: Storage, opts?: RunOptions) => {
  for (const p of programs(s)) expect(runProgram(p, "converge", opts).code).toBe(0);
};
const check = (s: Storage, opts?: RunOptions) => programs(s).map((p) => runProgram(p, "check", opts));
const drifts = (runs: ReturnType<typeof check>) => runs.flatMap((r) => r.stdout.split("\n").filter((l) => l.startsWith("drift: ")));

describe("the check variant", () => {
  it("reports nothing on a converged tree, and the storage report", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: OWNER, categories: ["checkpoints", "loras"], minFreeGB: 0 });
    converge(s);
    sh(
      `head -c 3000 /dev/zero > ${root}/storage-models/models/loras/a.safetensors && echo x > ${root}/storage-models/models/loras/b.pt && mkdir -p ${root}/projects/p1/final && echo img > ${root}/projects/p1/final/1.png`,
    );
    const runs = check(s);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/(^|\n)drift=0\n$/);
    }
    expect(drifts(runs)).toEqual([]);
    const report = runs[0].stdout;
    expect(report).toContain(`report: category 3002 2 ${root}/storage-models/models/loras\n`);
    expect(report).toContain(`report: category 0 0 ${root}/storage-models/models/checkpoints\n`);
    expect(report).toContain(`report: output 0 0 ${root}/storage-user/output/ComfyUI\n`);
    expect(report).toContain(`report: project 4 1 ${root}/projects/p1\n`);
    expect(report).toMatch(new RegExp(`report: space \\d+ 0 ${root}\\n`));
  });

  it.each([
    ["root", undefined],
    ["an unprivileged user", "nobody"],
  ] as const)("as %s: writes nothing to a drifted tree and names each drift", (_who, user) => {
    const base = dirname(tempRoot());
    const root = join(base, "cw");
    const owner = user ? "unmanaged" : OWNER;
    if (user) chownSync(base, 65534, 65534);
    const more = localStorage({ root, owner, links: ["storage-user/models-upload"], categories: ["checkpoints", "loras", "vae", "clip_vision"] });
    const s = localStorage({ root, owner, links: ["storage-user/models-upload"], categories: ["checkpoints", "loras", "vae"], minFreeGB: 900_000 });
    const opts = user ? { user, env: { ...process.env, XDG_RUNTIME_DIR: "", TMPDIR: base } } : undefined;
    converge(more, opts);
    const store = `${root}/storage-models/models`;
    const upload = `${root}/storage-user/models-upload`;
    sh(
      [
        `rm ${upload}/vae`, // a deleted link
        `ln -sfn /tmp ${upload}/loras`, // a wrong target
        `chmod 0700 ${root}/projects`, // a wrong mode
        `rmdir ${root}/media_cache`, // a missing folder
        `rm ${upload}/checkpoints && mkdir ${upload}/checkpoints && echo up > ${upload}/checkpoints/new.ckpt`, // a folder where a link belongs
        ...(user ? [`chown -R nobody ${upload}/checkpoints`] : [`chown 0:0 ${root}/storage-user/input`]), // (as root) a wrong owner
      ].join(" && "),
    );
    const before = metaDigest(root);
    const runs = check(s, opts);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(metaDigest(root)).toEqual(before);
    const found = drifts(runs);
    const expected = [
      expect.stringMatching(/^drift: only \d+\.\d GB are free on the filesystem holding .*, but storage\.minFreeGB asks for at least 900000\.0 GB$/),
      `drift: ${upload}/checkpoints is a folder (holding 1 entries) where a link to ../../storage-models/models/checkpoints belongs; converging merges it into ${store}/checkpoints`,
      `drift: ${upload}/loras points at /tmp, not ../../storage-models/models/loras`,
      ...(user ? [] : [`drift: ${root}/storage-user/input belongs to 0:0, not 1000:1000`]),
      `drift: folder ${root}/media_cache is missing`,
      `drift: link ${upload}/clip_vision is left from a category that is no longer configured`,
      `drift: link ${upload}/vae -> ../../storage-models/models/vae is missing`,
      `drift: the mode of ${root}/projects is 0700, not 0755`,
      // As root, the upload is root's: converge hands it to the owner first.
      ...(user ? [] : [`drift: ${upload}/checkpoints holds entries that do not belong to 1000:1000`]),
    ];
    expect(found).toEqual(expect.arrayContaining(expected));
    expect(found).toHaveLength(expected.length);
    expect(
      runs
        .map((r) => /drift=(\d+)\n$/.exec(r.stdout)?.[1])
        .map(Number)
        .reduce((a, b) => a + b),
    ).toBe(found.length);
    // And converge repairs exactly that: a check afterwards finds nothing but the free space.
    converge(localStorage({ ...s, minFreeGB: 0 }), opts);
    expect(drifts(check(localStorage({ ...s, minFreeGB: 0 }), opts))).toEqual([]);
  });

  it("takes no lock and needs no lock folder: a held converge lock does not hold up a check", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: OWNER, minFreeGB: 0 });
    converge(s);
    const env = { ...process.env, MODELSHARE_LOCK_WAIT: "1" };
    const holder = sh(`(flock /run/modelshare sleep 3 >/dev/null 2>&1 &) ; sleep 0.3; echo started`);
    expect(holder).toBe("started\n");
    const r = runProgram(renderStorageLayout(s), "check", { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/(^|\n)drift=0\n$/);
  });
});
