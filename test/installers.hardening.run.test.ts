import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseSite, type Site } from "../components/config";
import { renderComfyUIInstaller } from "../components/installers/comfyui";
import { renderOllamaInstaller } from "../components/installers/ollama";
import { renderStorageLayout } from "../components/storage/layout";
import { asOwnerInBackground, decoy, metaDigest, OWNER } from "./helpers/attack";
import { runProgram, sh, tempRoot, type Run } from "./helpers/run";

/**
 * The installers' migrations, tried as the storage owner (uid 1000: every SMB user and
 * container) would: it can rename names in the store at any moment while another uid (root's
 * hand-over, the ollama user, a checkout's owner) moves models in. The models come from another
 * filesystem (/dev/shm, a tmpfs), so files are copied, not renamed. Decoys outside the tree
 * (root's, and the ollama user's own ~/.ssh) must come out unchanged, and each run either
 * completes or refuses with modelshare's sentence.
 */
const refusedOrDone = (r: Run, round: number) => {
  if (r.code !== 0) expect(r.stderr, `round ${round}: ${r.stdout}`).toMatch(/^modelshare: /m);
};
const shm = (prefix: string) => {
  const dir = mkdtempSync(join("/dev/shm", prefix));
  chmodSync(dir, 0o755);
  return dir;
};
const site = (root: string, extra: Record<string, unknown> = {}): Site =>
  parseSite(
    {
      nodes: [{ name: "here", host: "localhost", roles: ["storage", "worker"] }],
      storage: { root, owner: OWNER, minFreeGB: 0, categories: ["checkpoints", "loras"] },
      ...extra,
    },
    { homedir: "/nonexistent" },
  );
const layout = (s: Site) => {
  const r = runProgram(renderStorageLayout(s.storage));
  expect(r.code, r.stderr).toBe(0);
};
/** The digests of every model under the given folders (store, checkout, folders moved aside). */
const models = (...dirs: string[]) =>
  new Set(
    sh(`find ${dirs.join(" ")} -name '*.safetensors' -type f -exec sha256sum {} + | cut -d' ' -f1`)
      .split("\n")
      .filter(Boolean),
  );
/** No model lost: each one's bytes are still somewhere under `dirs`. */
const kept = (before: Set<string>, ...dirs: string[]) => {
  const after = models(...dirs);
  return [...before].filter((d) => !after.has(d));
};

/**
 * The attacker's loop in FOLDER and its sub-folders, one of three kinds (rounds cycle through
 * them): "plant" keeps a link to the victim's file where the mover makes its temporary copy
 * (between an `rm` and a `cp` of that name, cp would write through it); "swap" renames each
 * temporary folder the mover just made and puts a link to the victim's folder in its place
 * (a `chmod` through the name would change the victim's mode); "folders" swaps every real
 * sub-folder for such a link. It runs until stopped.
 */
type Kind = "plant" | "swap" | "folders";
const KINDS: Kind[] = ["plant", "swap", "folders"];
const race = (folder: string, victimDir: string, victimFile: string, kind: Kind) => {
  const step = {
    plant: `ln -s ${victimFile} "$d/.modelshare-partial" 2>/dev/null`,
    swap: `for n in .modelshare-folder .modelshare-partial; do if [ -e "$d/$n" ] && [ ! -L "$d/$n" ]; then mv -T "$d/$n" "$d/.aside-$n$i" 2>/dev/null && ln -s ${victimDir} "$d/$n" 2>/dev/null; fi; done`,
    folders: `case $d in ${folder}) ;; *.moved*) ;; *) mv -T "$d" "$d.moved$i" 2>/dev/null && ln -s ${victimDir} "$d" 2>/dev/null ;; esac`,
  }[kind];
  return asOwnerInBackground(`
  i=0
  while :; do
    i=$((i + 1))
    for d in ${folder} ${folder}/*/ ${folder}/*/*/ ${folder}/*/*/*/; do
      d=\${d%/}
      if [ -d "$d" ] && [ ! -L "$d" ]; then ${step}; fi
    done
  done`);
};

describe("code apart from data: what ComfyUI's service runs and trusts", () => {
  /** A stand-in systemctl: the unit file at UNIT, its User= as USER. */
  const fakeSystemctl = (unit: string, user: string) => {
    const bin = mkdtempSync(join(tmpdir(), "modelshare-systemctl-"));
    writeFileSync(
      join(bin, "systemctl"),
      `#!/bin/bash\necho "$*" >> ${bin}/calls\ncase "$1 $3" in\n  "show FragmentPath") echo ${unit} ;;\n  "show User") echo '${user}' ;;\n  "show DynamicUser") echo no ;;\nesac\n`,
      { mode: 0o755 },
    );
    return { bin, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } };
  };

  it("a service running as root, or a unit others can write, is refused before anything changes", () => {
    const root = tempRoot();
    const s = site(root);
    layout(s);
    const checkout = join(shm("modelshare-comfy-"), "ComfyUI");
    sh(
      `mkdir -p ${checkout}/models/loras && cd ${checkout} && touch main.py folder_paths.py && echo 'a: 1' > extra_model_paths.yaml && echo lora > models/loras/l.safetensors`,
    );
    const unit = join(mkdtempSync(join(tmpdir(), "modelshare-unit-")), "comfyui.service");
    writeFileSync(join(unit), `[Service]\nExecStart=/usr/bin/python3 ${checkout}/main.py\n`, { mode: 0o644 });
    const program = renderComfyUIInstaller(s.storage, root, { node: "here", path: checkout, service: "comfyui.service", python: "/usr/bin/python3" });
    const asRoot = runProgram(program, "converge", fakeSystemctl(unit, ""));
    expect(asRoot.code).toBe(1);
    expect(asRoot.stderr).toContain("modelshare: comfyui.service runs as root, and it would save into");
    chmodSync(unit, 0o666);
    const open = runProgram(program, "converge", fakeSystemctl(unit, "comfy"));
    expect(open.code).toBe(1);
    expect(open.stderr).toContain(`modelshare: ${unit} (root:root 666) can be changed by others than root, and its ExecStart is what comfyui.service runs`);
    // Nothing changed: the checkout's yaml and models are as they were.
    expect(readFileSync(join(checkout, "extra_model_paths.yaml"), "utf8")).toBe("a: 1\n");
    expect(existsSync(join(checkout, "models/loras/l.safetensors"))).toBe(true);
  });

  it("a python (or a checkout) that resolves into the storage tree through a link is refused before it runs", () => {
    const root = tempRoot();
    const s = site(root);
    layout(s);
    const checkout = join(shm("modelshare-comfy-"), "ComfyUI");
    // The owner's python in the store (what an SMB user could have uploaded), linked as the venv.
    sh(
      `mkdir -p ${checkout} ${root}/storage-models/models/loras/venv/bin && cd ${checkout} && touch main.py folder_paths.py && printf '#!/bin/sh\\ntouch ${root}/ran-as-root\\n' > ${root}/storage-models/models/loras/venv/bin/python && chmod 0755 ${root}/storage-models/models/loras/venv/bin/python && ln -s ${root}/storage-models/models/loras/venv venv`,
    );
    const r = runProgram(renderComfyUIInstaller(s.storage, root, { node: "here", path: checkout }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `modelshare: the Python ${checkout}/venv/bin/python (${checkout}/venv/bin/python) resolves to ${root}/storage-models/models/loras/venv/bin/python, inside the shared storage ${root}`,
    );
    expect(existsSync(`${root}/ran-as-root`)).toBe(false);
  });
});

describe("a ComfyUI checkout of root's: root never acts in the store", () => {
  /** A checkout as `git clone` as root leaves it, on another filesystem than the store. */
  function rootCheckout(): string {
    const path = join(shm("modelshare-comfy-"), "ComfyUI");
    sh(
      [
        `mkdir -p ${path}/models/checkpoints ${path}/models/loras ${path}/custom_nodes && cd ${path}`,
        "touch main.py folder_paths.py models/checkpoints/put_checkpoints_here models/loras/put_loras_here",
        "for d in 1 2 3 4 5 6; do mkdir -p models/checkpoints/sub$d/deep; for f in 1 2 3; do head -c $((20000 + d * 1000 + f)) /dev/urandom > models/checkpoints/sub$d/m$f.safetensors; echo $d$f > models/checkpoints/sub$d/deep/d$f.safetensors; done; done",
        "for f in 1 2 3 4 5 6 7 8; do head -c 30000 /dev/urandom > models/loras/l$f.safetensors; done",
      ].join(" && "),
    );
    return path;
  }

  it("the store's owner racing the move (30 rounds): no decoy changes, every model is somewhere in the tree or the checkout, the moved ones are the owner's", async () => {
    const outside = decoy();
    const before = outside.digest();
    for (let round = 0; round < 30; round++) {
      const root = tempRoot();
      const s = site(root);
      layout(s);
      const checkout = rootCheckout();
      expect(statSync(checkout).dev).not.toBe(statSync(root).dev); // copied, not renamed
      const bytes = models(checkout);
      const program = renderComfyUIInstaller(s.storage, root, { node: "here", path: checkout, python: "/usr/bin/python3" });
      const attacker = race(join(root, "storage-models/models"), outside.secret, join(outside.secret, "shadow"), KINDS[round % 3]);
      const r = runProgram(program);
      await attacker.stop();
      refusedOrDone(r, round);
      expect(outside.digest(), `round ${round}: ${r.stdout}${r.stderr}`).toEqual(before);
      expect(kept(bytes, root, checkout), `round ${round}`).toEqual([]);
      // Root's part stays root's: the checkout's folders and placeholders.
      expect(statSync(join(checkout, "models/checkpoints/put_checkpoints_here")).uid).toBe(0);
      expect(statSync(join(checkout, "models/checkpoints")).uid).toBe(0);
      if (r.code === 0) {
        const owners = sh(`find ${root}/storage-models/models -mindepth 1 -name '*.safetensors' -printf '%U\\n' | sort -u`);
        expect(owners, `round ${round}`).toBe(`${OWNER.uid}\n`);
      }
    }
  }, 400_000);
});

/**
 * The ollama user (uid 1777 here, in the owner's group) and its service, on this machine: a
 * private mount namespace gives it a passwd and group line and a systemd unit folder of its
 * own, and `systemctl` is a stand-in that records what it is asked and keeps "running" as a
 * file. Its home is on /dev/shm (another filesystem than the store).
 */
const OLLAMA = 1777;
function ollamaNode(root: string) {
  const t = mkdtempSync(join(tmpdir(), "modelshare-ollama-"));
  chmodSync(t, 0o755);
  const home = join(shm("modelshare-ollama-home-"), "ollama");
  const state = join(t, "state");
  mkdirSync(state);
  mkdirSync(join(t, "units"));
  mkdirSync(join(t, "bin"));
  const group = readFileSync("/etc/group", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const f = l.split(":");
      return f[2] === String(OWNER.gid) ? `${f[0]}:${f[1]}:${f[2]}:${[f[3], "ollama"].filter(Boolean).join(",")}` : l;
    });
  if (!group.some((l) => l.split(":")[2] === String(OWNER.gid))) group.push(`modelshare:x:${OWNER.gid}:ollama`);
  writeFileSync(join(t, "group"), [...group, `ollama:x:${OLLAMA}:`, ""].join("\n"));
  writeFileSync(join(t, "passwd"), `${readFileSync("/etc/passwd", "utf8").trimEnd()}\nollama:x:${OLLAMA}:${OLLAMA}::${home}:/bin/false\n`);
  writeFileSync(
    join(t, "bin/systemctl"),
    `#!/bin/bash
echo "$*" >> ${state}/calls
case $1 in
  cat | is-enabled | enable | daemon-reload) exit 0 ;;
  show) [ "$3" = User ] && echo ollama; exit 0 ;;
  is-active) [ -e ${state}/running ] ;;
  start | restart) touch ${state}/running ;;
  stop) rm -f ${state}/running; if [ -x ${state}/on-stop ]; then ${state}/on-stop; fi ;;
esac
`,
    { mode: 0o755 },
  );
  writeFileSync(join(state, "running"), "");
  sh(
    [
      `mkdir -p ${home}/.ssh ${home}/.ollama/models/blobs ${home}/.ollama/models/manifests/registry.ollama.ai/library/tiny && cd ${home}`,
      "echo 'ssh-ed25519 AAAA ollama@node' > .ssh/authorized_keys && chmod 0700 .ssh && chmod 0600 .ssh/authorized_keys",
      "for f in 1 2 3 4 5 6 7 8 9 10; do head -c $((30000 + f)) /dev/urandom > .ollama/models/blobs/sha256-$f.safetensors; done",
      "echo '{}' > .ollama/models/manifests/registry.ollama.ai/library/tiny/latest.safetensors",
      `chown -R ${OLLAMA}:${OLLAMA} ${home}`,
    ].join(" && "),
  );
  writeFileSync(
    join(t, "driver.sh"),
    [
      "set -e",
      `mount --bind ${t}/passwd /etc/passwd`,
      `mount --bind ${t}/group /etc/group`,
      `mount --bind ${t}/units /etc/systemd/system`,
      `export PATH=${t}/bin:$PATH`,
      `exec bash -s converge < ${t}/program`,
    ].join("\n"),
  );
  const converge = (program: string): Run => {
    writeFileSync(join(t, "program"), program);
    const r = spawnSync("unshare", ["-m", "--propagation", "private", "bash", join(t, "driver.sh")], { encoding: "utf8", timeout: 120_000 });
    const last = /changed=(\d+)\s*$/.exec(r.stdout ?? "");
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, changed: last ? Number(last[1]) : NaN };
  };
  return {
    home,
    state,
    converge,
    old: join(home, ".ollama/models"),
    shared: join(root, "storage-models/ollama"),
    running: () => existsSync(join(state, "running")),
    calls: () => (existsSync(join(state, "calls")) ? readFileSync(join(state, "calls"), "utf8") : ""),
    dropIn: join(t, "units/ollama.service.d/modelshare.conf"),
    onStop: (script: string) => writeFileSync(join(state, "on-stop"), `#!/bin/bash\n${script}\n`, { mode: 0o755 }),
  };
}

describe("the ollama user's migration", () => {
  it("moves its models, stopping and starting Ollama once; a second run changes nothing", () => {
    const root = tempRoot();
    const s = site(root);
    layout(s);
    const node = ollamaNode(root);
    const bytes = models(node.old);
    const r = node.converge(renderOllamaInstaller(s.storage, root));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`changed: moved the models in ${node.old} into ${node.shared}`);
    expect(models(node.shared)).toEqual(bytes);
    expect(readdirSync(node.old)).toEqual([]);
    expect(
      node
        .calls()
        .split("\n")
        .filter((c) => /^(stop|start|restart)/.test(c)),
    ).toEqual(["stop ollama.service", "restart ollama.service"]);
    expect(node.running()).toBe(true);
    expect(node.converge(renderOllamaInstaller(s.storage, root)).changed).toBe(0);
  });

  it("the store's owner racing the ollama user's move (30 rounds): ~ollama/.ssh and root's decoys unchanged, no model lost", async () => {
    const outside = decoy();
    const before = outside.digest();
    for (let round = 0; round < 30; round++) {
      const root = tempRoot();
      const s = site(root);
      layout(s);
      const node = ollamaNode(root);
      const ssh = metaDigest(join(node.home, ".ssh"));
      const bytes = models(node.old);
      const attacker = race(node.shared, join(node.home, ".ssh"), join(node.home, ".ssh/authorized_keys"), KINDS[round % 3]);
      const r = node.converge(renderOllamaInstaller(s.storage, root));
      await attacker.stop();
      refusedOrDone(r, round);
      expect(metaDigest(join(node.home, ".ssh")), `round ${round}: ${r.stdout}${r.stderr}`).toEqual(ssh);
      expect(outside.digest(), `round ${round}`).toEqual(before);
      expect(kept(bytes, root, node.old), `round ${round}`).toEqual([]);
      expect(node.running(), `round ${round}: Ollama is running whatever the run did`).toBe(true);
    }
  }, 400_000);
});

describe("check before you stop: a refusal never leaves Ollama down", () => {
  it("a blob name planted in the shared folder with other bytes: refused before the drop-in is written or Ollama stopped", () => {
    const root = tempRoot();
    const s = site(root);
    layout(s);
    const node = ollamaNode(root);
    sh(`mkdir -p ${node.shared}/blobs && echo planted > ${node.shared}/blobs/sha256-3.safetensors && chown -R ${OWNER.uid}:${OWNER.gid} ${node.shared}/blobs`);
    const r = node.converge(renderOllamaInstaller(s.storage, root));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("these names hold different content:\n  blobs/sha256-3.safetensors\n");
    expect(node.calls()).not.toMatch(/^stop/m);
    expect(existsSync(node.dropIn)).toBe(false);
    expect(node.running()).toBe(true);
    expect(existsSync(join(node.old, "blobs/sha256-3.safetensors"))).toBe(true);
  });

  it("a name planted after the check, while Ollama is stopped: the run refuses and starts Ollama again", () => {
    const root = tempRoot();
    const s = site(root);
    layout(s);
    const node = ollamaNode(root);
    // The owner plants the conflict the moment Ollama stops (the stand-in runs it on stop).
    node.onStop(
      `setpriv --reuid=${OWNER.uid} --regid=${OWNER.gid} --clear-groups -- bash -c 'mkdir -p ${node.shared}/blobs && echo planted > ${node.shared}/blobs/sha256-3.safetensors'`,
    );
    const r = node.converge(renderOllamaInstaller(s.storage, root));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("these names hold different content:\n  blobs/sha256-3.safetensors\n");
    expect(r.stderr).toContain("modelshare: started ollama.service again: it was stopped to move its models, and the run stopped before the move finished.");
    expect(
      node
        .calls()
        .split("\n")
        .filter((c) => /^(stop|start|restart)/.test(c)),
    ).toEqual(["stop ollama.service", "start ollama.service"]);
    expect(node.running()).toBe(true);
  });
});
