import { spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import type { Storage } from "../components/config";
import { linkFolders } from "../components/storage/paths";
import { renderStorageLayout } from "../components/storage/layout";
import { renderSymlinkSet } from "../components/storage/symlinkSet";
import { asOwner, asOwnerInBackground, decoy, OWNER } from "./helpers/attack";
import { localStorage, runProgram, sh, tempRoot, type Run } from "./helpers/run";

/**
 * The privilege model, tried as an attacker holding only the storage owner's uid would: the
 * attacker's steps run as uid 1000 (setpriv), modelshare's as root, and a decoy tree outside
 * the root (owners, modes, bytes) must come out unchanged while the run refuses with a sentence.
 */
let root: string;
let s: Storage;
let store: string;
let upload: string;

const layout = (storage: Storage = s) => runProgram(renderStorageLayout(storage));
const links = (storage: Storage = s) => runProgram(renderSymlinkSet(storage, linkFolders(storage)[0]));
const converge = (storage: Storage = s) => {
  const l = layout(storage);
  expect(l.code, l.stderr).toBe(0);
  return links(storage);
};
/** A run either completed or refused with modelshare's own sentence: never a stray failure. */
const refusedOrDone = (r: Run) => {
  if (r.code !== 0) expect(r.stderr).toMatch(/^modelshare: /m);
};

/**
 * The tree as modelshare left it before the skeleton was root's (every folder the owner's, 0775):
 * where an owner could still plant a link, and what the next converge migrates.
 */
const oldSite = () => sh(`chown -R -h ${OWNER.uid}:${OWNER.gid} ${root} && find ${root} -type d -exec chmod 0775 {} +`);

beforeEach(() => {
  root = tempRoot();
  s = localStorage({ root, owner: OWNER });
  store = join(root, "storage-models/models");
  upload = join(root, "storage-user/models-upload");
});

describe("nothing inside the storage tree borrows root's rights", () => {
  it("a store category swapped for a link to a root-only folder, and a file where a link belongs: refused, nothing moved", () => {
    const outside = decoy();
    expect(converge().code).toBe(0);
    oldSite();
    const before = outside.digest();
    asOwner(
      [
        `mv ${store}/checkpoints ${store}/checkpoints.old && ln -s ${outside.secret} ${store}/checkpoints`,
        `rm ${upload}/checkpoints && mkdir ${upload}/checkpoints && echo 'evil' > ${upload}/checkpoints/zz-evil.sh`,
      ].join(" && "),
    );
    const r = links();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`modelshare: ${store}/checkpoints is a symbolic link (to ${outside.secret})`);
    expect(outside.digest()).toEqual(before);
    expect(readFileSync(join(upload, "checkpoints/zz-evil.sh"), "utf8")).toBe("evil\n");
    // The layout refuses the same link instead of "repairing" through it.
    const l = layout();
    expect(l.code).not.toBe(0);
    expect(l.stderr).toContain(`${store}/checkpoints is a symbolic link`);
    expect(outside.digest()).toEqual(before);
  });

  it("a category linked to / (or to a system folder) is refused, however the loop check would see it", () => {
    const outside = decoy();
    expect(converge().code).toBe(0);
    oldSite();
    asOwner(`rmdir ${store}/vae && ln -s / ${store}/vae && rm ${upload}/vae && mkdir ${upload}/vae && echo x > ${upload}/vae/profile.sh`);
    const before = outside.digest();
    const r = links();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${store}/vae is a symbolic link (to /)`);
    expect(outside.digest()).toEqual(before);
    expect(existsSync("/profile.sh")).toBe(false);
  });

  it("an old site migrated while the owner swaps its folders for links: no owner or mode outside the root ever changes (100 races)", async () => {
    const outside = decoy();
    const before = outside.digest();
    // The tree as an earlier modelshare left it (every folder the owner's): root hands the
    // skeleton to itself top-down while the attacker swaps each folder for a link to the decoy.
    const victims = ["/storage-user", "/storage-user/output", "/storage-user/output/ComfyUI", "/storage-models", "/storage-models/models", "/projects"];
    const swap = victims
      .map(
        (v) =>
          `if [ -d "${root}${v}" ] && [ ! -L "${root}${v}" ]; then mv -T "${root}${v}" "${root}${v}.gone$i" 2>/dev/null && ln -s "${outside.secret}" "${root}${v}" 2>/dev/null; fi`,
      )
      .join("; ");
    for (let round = 0; round < 100; round++) {
      sh(
        `rm -rf ${root} && mkdir -p ${root}/storage-user/output/ComfyUI ${root}/storage-models/models ${root}/projects && chown -R ${OWNER.uid}:${OWNER.gid} ${root}`,
      );
      const attacker = asOwnerInBackground(`i=0; while :; do i=$((i + 1)); ${swap}; done`);
      const r = layout();
      await attacker.stop();
      refusedOrDone(r);
      expect(outside.digest(), `round ${round}: ${r.stdout}${r.stderr}`).toEqual(before);
      // A run that completed left a skeleton the owner can no longer change.
      if (r.code === 0)
        expect(sh(`stat -c '%u %a' ${root} ${root}/storage-user ${root}/storage-models/models`), `round ${round}`).toBe("0 755\n0 755\n0 755\n");
    }
  }, 240_000);

  it("a folder flipped between itself and a link while root enters it: root never changes what the link points at (100 races)", async () => {
    const outside = decoy();
    const before = outside.digest();
    // Root hands root-owned folders back to the owner from inside them; the attacker flips each
    // between the real folder and a link to the decoy, so that a textual check of where root
    // landed would see the real folder while root stands in the decoy.
    const victims = ["storage-user/output/ComfyUI", "storage-user/output/Forge", "projects", "media_cache"].map((v) => `${root}/${v}`);
    const flip = victims
      .map(
        (v) =>
          `mv -T "${v}" "${v}.real" 2>/dev/null && ln -s "${outside.secret}" "${v}" 2>/dev/null; rm -f "${v}" 2>/dev/null; mv -T "${v}.real" "${v}" 2>/dev/null`,
      )
      .join("; ");
    for (let round = 0; round < 100; round++) {
      sh(`rm -rf ${root} && mkdir -p ${victims.join(" ")} && chown ${OWNER.uid}:${OWNER.gid} ${root} ${root}/storage-user ${root}/storage-user/output`);
      const attacker = asOwnerInBackground(`while :; do ${flip}; done`);
      const r = layout();
      await attacker.stop();
      refusedOrDone(r);
      expect(outside.digest(), `round ${round}: ${r.stdout}${r.stderr}`).toEqual(before);
    }
  }, 240_000);

  it("where root stands is the kernel's answer: a folder renamed away under root, its old path made again, is refused", () => {
    const base = dirname(root);
    const program = renderStorageLayout(s);
    const helpers = program.slice(0, program.indexOf("# --- this program ---"));
    // What a flip race does at the worst moment, here step by step: root is in a/b, which then
    // goes elsewhere, and a/b exists again (as the attacker's). A textual check would pass.
    const script = `${helpers}\ncd -P ${base}/a/b; mv ${base}/a ${base}/z; mkdir -p ${base}/a/b; require_here ${base}/a/b; echo passed`;
    sh(`mkdir -p ${base}/a/b`);
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
    expect(r.stdout).not.toContain("passed");
    expect(r.stderr).toContain(`modelshare: ${base}/a/b changed while modelshare was working on it; run again.`);
  });

  it("a destination sub-folder swapped for a link during a merge: nothing lands outside, no upload is lost (20 races)", async () => {
    const outside = decoy();
    const before = outside.digest();
    for (let round = 0; round < 20; round++) {
      sh(`rm -rf ${root} && mkdir -p ${dirname(root)}`);
      expect(converge().code).toBe(0);
      sh(
        `rm ${upload}/loras && mkdir ${upload}/loras && cd ${upload}/loras && for d in $(seq 20); do mkdir sub$d; for f in $(seq 20); do echo "lora $d/$f" > sub$d/l$f.safetensors; done; done && chown -R ${OWNER.uid}:${OWNER.gid} .`,
      );
      const uploaded = sh(`cd ${upload}/loras && cat */* | sort | sha256sum`);
      const attacker = asOwnerInBackground(
        `while :; do for d in ${store}/loras/sub*; do if [ -d "$d" ] && [ ! -L "$d" ]; then mv -T "$d" "$d.moved" 2>/dev/null && ln -s ${outside.open} "$d"; fi; done; done`,
      );
      const r = links();
      await attacker.stop();
      refusedOrDone(r);
      expect(outside.digest(), `round ${round}`).toEqual(before);
      // Every upload is somewhere inside the root: still in the upload folder, in the store, or
      // in a folder the attacker moved aside.
      expect(sh(`find ${root} -name 'l*.safetensors' -type f -exec cat {} + | sort | sha256sum`), `round ${round}`).toBe(uploaded);
    }
  }, 240_000);

  it("a parent of a links folder replaced by a link: refused naming it; nothing is made or chowned outside", () => {
    const outside = decoy();
    const theirs = join(dirname(root), "attacker-owned");
    expect(converge().code).toBe(0);
    oldSite();
    sh(`mkdir ${theirs} && chown ${OWNER.uid}:${OWNER.gid} ${theirs}`);
    const before = outside.digest();
    asOwner(`mv ${root}/storage-user ${root}/storage-user.old && ln -s ${theirs} ${root}/storage-user && ln -s ${outside.open} ${theirs}/models-upload`);
    for (const r of [links(), layout()]) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`${root}/storage-user is a symbolic link (to ${theirs})`);
    }
    expect(outside.digest()).toEqual(before);
    expect(sh(`find ${theirs} -mindepth 1 | wc -l`)).toBe("1\n"); // only the attacker's own link
  });

  it("a root whose parent the owner can write is refused, naming the parent and the fix; nothing is made", () => {
    const outside = decoy();
    const before = outside.digest();
    sh(`chown ${OWNER.uid}:${OWNER.gid} ${dirname(root)}`);
    let r = layout();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `modelshare: ${dirname(root)}, above the storage root, can be changed by the storage owner 1000:1000 (it belongs to 1000:1000, mode 755)`,
    );
    expect(r.stderr).toContain(`chown root:root ${dirname(root)}; chmod go-w ${dirname(root)}`);
    expect(existsSync(root)).toBe(false);
    // Group-writable for the owner's group, or writable by all without the sticky bit: the same.
    sh(`chown 0:${OWNER.gid} ${dirname(root)} && chmod 0775 ${dirname(root)}`);
    expect(layout().stderr).toContain("above the storage root, can be changed by the storage owner");
    sh(`chown 0:0 ${dirname(root)} && chmod 0777 ${dirname(root)}`);
    expect(layout().stderr).toContain("above the storage root, can be changed by the storage owner");
    sh(`chmod 1777 ${dirname(root)}`); // like /tmp: only a name's owner may move it
    expect(layout().code).toBe(0);
    // An old site whose root the owner already swapped for a link is refused too.
    sh(`chmod 0755 ${dirname(root)} && mv ${root} ${root}.old && ln -s ${outside.open} ${root}`);
    r = layout();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${root} is a symbolic link (to ${outside.open})`);
    expect(outside.digest()).toEqual(before);
  });
});

describe("the skeleton: the owner writes in the leaves and can change no name above them", () => {
  it("as the owner: every skeleton folder refuses a rename, a new name, a removal and a mode change; the leaves take files", () => {
    expect(converge().code).toBe(0);
    const skeleton = [
      "",
      "/storage-models",
      "/storage-models/models",
      "/storage-user",
      "/storage-user/output",
      "/storage-user/models-upload",
      "/projects",
      "/storage-models/comfyui",
      "/storage-models/comfyui/custom_nodes",
    ];
    const tryAs = (cmd: string) =>
      spawnSync("setpriv", [`--reuid=${OWNER.uid}`, `--regid=${OWNER.gid}`, "--clear-groups", "--", "bash", "-c", cmd], { encoding: "utf8" });
    for (const dir of skeleton) {
      const d = `${root}${dir}`;
      for (const attack of [`touch ${d}/planted`, `mkdir ${d}/planted`, `ln -s /etc ${d}/planted`, `chmod 0777 ${d}`]) {
        const r = tryAs(attack);
        expect(r.status, `${attack} as the owner`).not.toBe(0);
        expect(r.stderr, attack).toMatch(/Permission denied|Operation not permitted/);
      }
    }
    // Names in the skeleton (leaves, links, skeleton folders) cannot be renamed, replaced or removed.
    for (const name of [
      `${store}/checkpoints`,
      `${upload}/checkpoints`,
      `${root}/storage-user/output/ComfyUI`,
      `${root}/storage-user`,
      `${root}/storage-models/models`,
    ]) {
      for (const attack of [`mv -T ${name} ${name}.moved`, `rm -f ${name}`, `rmdir ${name}`]) {
        expect(tryAs(attack).status, `${attack} as the owner`).not.toBe(0);
        expect(existsSync(name), attack).toBe(true);
      }
    }
    expect(readlinkSync(`${upload}/checkpoints`)).toBe("../../storage-models/models/checkpoints");
    // The leaves are the owner's: an upload through the link lands in the store.
    asOwner(`echo model > ${upload}/checkpoints/m.safetensors && mkdir ${root}/storage-user/output/ComfyUI/day1 && echo in > ${root}/storage-user/input/i.png`);
    expect(readFileSync(`${store}/checkpoints/m.safetensors`, "utf8")).toBe("model\n");
    expect(statSync(`${store}/checkpoints/m.safetensors`).uid).toBe(OWNER.uid);
  });

  it("an old site (every folder the owner's) is migrated in place: the skeleton becomes root's top-down, every file stays, the run says so", () => {
    expect(converge().code).toBe(0);
    asOwner(`echo model > ${store}/loras/l.safetensors && echo out > ${root}/storage-user/output/ComfyUI/o.png`);
    oldSite();
    const r1 = layout();
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toContain(`changed: owner of ${root}: 1000:1000 -> 0:0`);
    expect(r1.stdout).toContain(`changed: mode of ${root}: 0775 -> 0755`);
    expect(r1.stdout).toContain(`changed: owner of ${root}/storage-models/models: 1000:1000 -> 0:0`);
    expect(r1.stdout).not.toContain(`owner of ${store}/loras:`); // a leaf stays the owner's
    const r2 = links();
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).toContain(`changed: owner of ${upload}: 1000:1000 -> 0:0`);
    expect(readFileSync(`${store}/loras/l.safetensors`, "utf8")).toBe("model\n");
    expect(readFileSync(`${root}/storage-user/output/ComfyUI/o.png`, "utf8")).toBe("out\n");
    expect(statSync(`${store}/loras`).uid).toBe(OWNER.uid);
    expect(layout().changed).toBe(0);
    expect(links().changed).toBe(0);
  });
});

describe("the owner's steps", () => {
  it("start from an empty environment: nothing of root's reaches them (over SSH, SSH_CLIENT made bash read root's ~/.bashrc)", () => {
    const home = mkdtempSync(join(tmpdir(), "modelshare-roothome-")); // 0700, root's, like /root
    writeFileSync(join(home, ".bashrc"), "echo read root\\'s bashrc >&2\n");
    const env = { ...process.env, SSH_CLIENT: "10.0.0.1 50000 22", SHLVL: "0", HOME: home, BASH_ENV: "" };
    const r = runProgram(renderStorageLayout(s), "converge", { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.changed).toBeGreaterThan(0);
  });
});

describe("a merge puts everything into the store owned by the owner, and loses nothing", () => {
  it("a root-owned upload folder (as a sudo script leaves it) is handed over without following links, then merged keeping modes and mtimes", () => {
    const outside = decoy();
    expect(converge().code).toBe(0);
    sh(
      [
        `rm ${upload}/checkpoints && mkdir -m 0750 ${upload}/checkpoints && cd ${upload}/checkpoints`,
        `mkdir -m 0700 private && echo 'model' > private/a.safetensors && chmod 0640 private/a.safetensors`,
        `echo 'b' > b.ckpt && touch -d '2020-01-02 03:04:05' b.ckpt private/a.safetensors`,
        `ln -s ${outside.secret} escape`, // a link inside: handed over as a link, never followed
      ].join(" && "),
    );
    const before = outside.digest();
    const r = links();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`changed: handed ${upload}/checkpoints, and everything in it, to 1000:1000`);
    expect(r.stdout).toContain(`changed: created folder ${store}/checkpoints/private (merging ${upload}/checkpoints/private)`);
    expect(outside.digest()).toEqual(before);
    for (const rel of ["private", "private/a.safetensors", "b.ckpt"]) {
      const st = lstatSync(join(store, "checkpoints", rel));
      expect([st.uid, st.gid], rel).toEqual([OWNER.uid, OWNER.gid]);
    }
    expect((statSync(join(store, "checkpoints/private")).mode & 0o7777).toString(8)).toBe("700");
    expect((statSync(join(store, "checkpoints/private/a.safetensors")).mode & 0o7777).toString(8)).toBe("640");
    expect(statSync(join(store, "checkpoints/b.ckpt")).mtime.toISOString()).toBe(new Date("2020-01-02T03:04:05").toISOString());
    expect(readlinkSync(join(store, "checkpoints/escape"))).toBe(outside.secret);
    expect(lstatSync(join(store, "checkpoints/escape")).uid).toBe(OWNER.uid); // the link itself, not its target
    expect(links().changed).toBe(0);
  });

  it("a hard link to a file outside the root, planted in an upload folder, is never handed to the owner", () => {
    const outside = decoy();
    expect(converge().code).toBe(0);
    // Planted as the owner could where fs.protected_hardlinks is off; made by root here.
    sh(`rm ${upload}/checkpoints && mkdir ${upload}/checkpoints && ln ${outside.secret}/shadow ${upload}/checkpoints/model.safetensors`);
    const before = outside.digest();
    const r = links();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `modelshare: ${upload}/checkpoints/model.safetensors has other hard links, so it may be a file elsewhere on this system too; modelshare will not hand it to 1000:1000.`,
    );
    expect(outside.digest()).toEqual(before);
  });

  it("leftovers of an interrupted merge (a temporary folder or copy) are cleared and the merge completes", () => {
    expect(converge().code).toBe(0);
    oldSite();
    asOwner(
      `mkdir ${store}/vae/.modelshare-folder && echo partial > ${store}/vae/.modelshare-partial && rm ${upload}/vae && mkdir -p ${upload}/vae/sub && echo whole > ${upload}/vae/sub/v.pt`,
    );
    const r = links();
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(store, "vae/sub/v.pt"), "utf8")).toBe("whole\n");
    expect(existsSync(join(store, "vae/.modelshare-folder"))).toBe(false);
  });

  it("a file that appears in the store under an upload's name mid-merge is compared again: no upload is ever dropped (5 × 200 races)", async () => {
    for (let round = 0; round < 5; round++) {
      sh(`rm -rf ${root} && mkdir -p ${dirname(root)}`);
      expect(converge().code).toBe(0);
      oldSite();
      asOwner(`rm ${upload}/loras && mkdir ${upload}/loras && cd ${upload}/loras && for i in $(seq 200); do echo "upload $i" > "m$i.safetensors"; done`);
      // Another writer (a container, a download) creates the same names in the store, newest first.
      const writer = asOwnerInBackground(
        `set -C; for i in $(seq 200 -1 1); do echo "other $i" > ${store}/loras/m$i.safetensors 2>/dev/null || true; done; sleep 60`,
      );
      const r = links();
      await writer.stop();
      refusedOrDone(r);
      const lost = sh(
        `for i in $(seq 200); do grep -qx "upload $i" ${store}/loras/m$i.safetensors 2>/dev/null || grep -qx "upload $i" ${upload}/loras/m$i.safetensors 2>/dev/null || echo m$i; done`,
      );
      expect(lost, `round ${round}: ${r.stderr}`).toBe("");
    }
  }, 120_000);
});

describe("the lock", () => {
  it("another user cannot block root's runs: the old world-writable lock path means nothing now", async () => {
    const holder = asOwnerInBackground("exec flock -s /run/lock/modelshare-0.lock sleep 60");
    await new Promise((r) => setTimeout(r, 300));
    const r = runProgram(renderStorageLayout(s), "converge", { env: { ...process.env, MODELSHARE_LOCK_WAIT: "2" } });
    await holder.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(statSync("/run/modelshare").mode & 0o7777).toBe(0o700);
    expect(lstatSync("/run/modelshare").uid).toBe(0);
  });

  it("a held lock fails the run with a sentence naming the holder's pid", async () => {
    const env = { ...process.env, TMPDIR: dirname(root), XDG_RUNTIME_DIR: "", MODELSHARE_LOCK_WAIT: "1" };
    sh(`chown nobody ${dirname(root)}`);
    const program = renderStorageLayout(localStorage({ root, owner: "unmanaged" }));
    // The holder is another run of the same prelude, stopped right after it took the lock.
    const prelude = program.slice(0, program.indexOf("# --- this program ---"));
    const holder = spawn("runuser", ["-u", "nobody", "--", "bash", "-c", `${prelude}\ntake_lock; echo "$$"; exec sleep 60`], {
      env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const pid = await new Promise<string>((resolve) => holder.stdout!.once("data", (d) => resolve(String(d).trim())));
    const r = runProgram(program, "converge", { user: "nobody", env });
    sh(`kill -9 ${pid}`);
    expect(r.code).not.toBe(0);
    const lockDir = join(dirname(root), "modelshare-65534");
    expect(r.stderr).toContain(`(pid ${pid}) has held the lock on ${lockDir} for 1 seconds; wait for it or end it, then run again.`);
    // Said before the wait, so that a run that seems to hang says why.
    expect(r.stdout).toContain(`another modelshare run on ${sh("hostname").trim()} holds the lock (pid ${pid}); waiting up to 1 s for it to finish`);
    expect(statSync(lockDir).mode & 0o7777).toBe(0o700);
    expect(runProgram(program, "converge", { user: "nobody", env }).code).toBe(0); // free again once it is gone
  });

  it("a lock folder someone else made (or a link planted in its place) is refused", () => {
    const env = { ...process.env, TMPDIR: dirname(root), XDG_RUNTIME_DIR: "" };
    sh(`chown nobody ${dirname(root)} && ln -s /etc ${dirname(root)}/modelshare-65534`);
    const r = runProgram(renderStorageLayout(localStorage({ root, owner: "unmanaged" })), "converge", { user: "nobody", env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${dirname(root)}/modelshare-65534, modelshare's lock folder, must be a real folder of uid 65534 with mode 0700`);
  });
});

describe("delivery does not depend on the login shell", () => {
  it.each(["sh", "bash", "tcsh"])("a program run through %s as the login shell converges, then changes nothing", (shell) => {
    if (shell === "tcsh" && !existsSync("/usr/bin/tcsh")) throw new Error("tcsh is not installed (Debian package tcsh)");
    const first = runProgram(renderStorageLayout(s), "converge", { shell });
    expect(first.code, first.stderr).toBe(0);
    expect(first.changed).toBeGreaterThan(0);
    expect(runProgram(renderStorageLayout(s), "converge", { shell }).changed).toBe(0);
  });

  it("refuses an unknown verb with a usage sentence", () => {
    const r = runProgram(renderStorageLayout(s), "verify" as never);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("modelshare: usage: bash -s converge|check|remove < program (got: verify)");
  });
});
