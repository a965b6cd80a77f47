import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandFor, type Verb } from "../../components/shell/script";
import type { Run } from "./run";

/** Where modelshare keeps its Samba records on a node; bind-mounted over inside the namespace. */
const STATE_MOUNT_POINT = "/var/lib/modelshare";

/**
 * A storage node for the SMB programs on this machine: a private mount namespace (unshare -m)
 * in which /etc/samba, /etc/passwd, /etc/group, /etc/systemd/system and /var/lib/modelshare are
 * the test's own files, so the real programs and a real smbd run there without touching this
 * machine's Samba. systemctl and smbcontrol are stand-ins that succeed (there is no systemd
 * here); apt-get fails, so a missing package stops the run instead of installing. A tmpfs
 * mounted inside the namespace is a second filesystem nobody else sees.
 */
export class SambaNode {
  readonly dir: string;
  readonly port = 20000 + Math.floor(Math.random() * 20000);
  private holder: ChildProcess;
  private madeMountPoint = false;
  private smbd?: ChildProcess;

  constructor(users: Array<{ name: string; uid: number }>, adminConf = "") {
    this.dir = mkdtempSync(join(tmpdir(), "modelshare-smbd-"));
    chmodSync(this.dir, 0o755);
    const d = (p: string) => join(this.dir, p);
    for (const sub of ["etc-samba", "systemd", "state", "stubs", "s/private", "s/lock", "s/state", "s/cache", "s/pid", "s/ncalrpc"])
      mkdirSync(d(sub), { recursive: true });
    writeFileSync(
      d("etc-samba/smb.conf"),
      [
        "[global]",
        `   smb ports = ${this.port}`,
        "   interfaces = lo",
        "   bind interfaces only = yes",
        ...["private dir", "lock directory", "state directory", "cache directory", "pid directory", "ncalrpc dir"].map(
          (k, i) => `   ${k} = ${d(`s/${["private", "lock", "state", "cache", "pid", "ncalrpc"][i]}`)}`,
        ),
        `   passdb backend = tdbsam:${d("s/private/passdb.tdb")}`,
        `   log file = ${d("s/log")}`,
        "   load printers = no",
        "   disable spoolss = yes",
        adminConf,
      ].join("\n") + "\n",
    );
    writeFileSync(
      d("passwd"),
      readFileSync("/etc/passwd", "utf8") + users.map((u) => `${u.name}:x:${u.uid}:${u.uid}::/nonexistent:/usr/sbin/nologin\n`).join(""),
    );
    writeFileSync(d("group"), readFileSync("/etc/group", "utf8") + users.map((u) => `${u.name}:x:${u.uid}:\n`).join(""));
    writeFileSync(d("stubs/systemctl"), `#!/bin/sh\necho "systemctl $*" >> ${d("calls")}\nexit 0\n`, { mode: 0o755 });
    writeFileSync(d("stubs/smbcontrol"), `#!/bin/sh\necho "smbcontrol $*" >> ${d("calls")}\nexit 0\n`, { mode: 0o755 });
    writeFileSync(d("stubs/apt-get"), "#!/bin/sh\necho 'E: no apt in the SMB tests: install samba samba-vfs-modules on this machine' >&2\nexit 100\n", {
      mode: 0o755,
    });
    // The bind target must exist on the host; one this helper makes is removed again by stop().
    if (!existsSync(STATE_MOUNT_POINT)) {
      mkdirSync(STATE_MOUNT_POINT, { mode: 0o700 });
      this.madeMountPoint = true;
    }
    this.holder = spawn("unshare", ["-m", "--propagation", "private", "sleep", "infinity"], { stdio: "ignore" });
    // The namespace exists once /proc shows the holder in another mount namespace than ours.
    for (let i = 0; i < 100 && !this.inOwnNamespace(); i++) spawnSync("sleep", ["0.05"]);
    this.sh(
      [
        `mount --bind ${d("etc-samba")} /etc/samba`,
        `mount --bind ${d("passwd")} /etc/passwd`,
        `mount --bind ${d("group")} /etc/group`,
        `mount --bind ${d("systemd")} /etc/systemd/system`,
        `mount --bind ${d("state")} ${STATE_MOUNT_POINT}`,
      ].join(" && "),
    );
  }

  private inOwnNamespace(): boolean {
    try {
      return (
        spawnSync("readlink", [`/proc/${this.holder.pid}/ns/mnt`], { encoding: "utf8" }).stdout !==
        spawnSync("readlink", ["/proc/self/ns/mnt"], { encoding: "utf8" }).stdout
      );
    } catch {
      return false;
    }
  }

  private enter(argv: string[]): string[] {
    return [
      "nsenter",
      "-t",
      String(this.holder.pid),
      "-m",
      "--",
      "env",
      `PATH=${join(this.dir, "stubs")}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      ...argv,
    ];
  }

  /** A bash command line inside the namespace; throws on failure, returns stdout. */
  sh(command: string): string {
    const r = this.try(command);
    if (r.status !== 0) throw new Error(`${command}: exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  }

  try(command: string): { status: number; stdout: string; stderr: string } {
    const [cmd, ...args] = this.enter(["bash", "-c", command]);
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** A rendered program, run as a node runs it (`bash -s VERB`, the program then INPUT on stdin). */
  run(program: string, verb: Verb = "converge", input = ""): Run {
    const [cmd, ...args] = this.enter(commandFor(verb).split(" "));
    const r = spawnSync(cmd, args, { encoding: "utf8", input: program + input, timeout: 120_000 });
    const last = /(?:changed|drift)=(\d+)\s*$/.exec(r.stdout ?? "");
    return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", changed: last ? Number(last[1]) : NaN };
  }

  /** A real smbd (root, our namespace's /etc/samba/smb.conf) on 127.0.0.1:port; waits for it. */
  startSmbd(): void {
    const [cmd, ...args] = this.enter(["smbd", "--foreground", "--no-process-group", "--debug-stdout", "-s", "/etc/samba/smb.conf"]);
    // A session of its own: smbd signals its whole process group when it stops (kill(0, …)).
    this.smbd = spawn(cmd, args, { stdio: ["ignore", "ignore", "ignore"], detached: true });
    const up = spawnSync("bash", ["-c", `for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/${this.port}) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`]);
    if (up.status !== 0) throw new Error(`smbd did not listen on ${this.port}; its log: ${join(this.dir, "s/log")}`);
  }

  async stopSmbd(): Promise<void> {
    const smbd = this.smbd;
    if (!smbd || smbd.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => smbd.once("exit", () => resolve()));
    process.kill(-smbd.pid!, "SIGTERM");
    await gone;
    this.smbd = undefined;
  }

  /** smbclient as USER (from this machine, outside the namespace: the network is shared). */
  client(user: string, password: string, share: string, commands: string, cwd = this.dir): { code: number; out: string } {
    const auth = join(this.dir, "auth");
    writeFileSync(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
    const r = spawnSync("smbclient", [`//127.0.0.1/${share}`, "-p", String(this.port), "-A", auth, "-c", commands], { cwd, encoding: "utf8", timeout: 60_000 });
    return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  }

  async stop(): Promise<void> {
    await this.stopSmbd();
    const holder = this.holder;
    if (holder.exitCode === null) {
      const gone = new Promise<void>((resolve) => holder.once("exit", () => resolve()));
      holder.kill("SIGKILL");
      await gone;
    }
    // Nothing of the test stays on the host: the empty folder goes once the namespace is gone.
    if (this.madeMountPoint) rmdirSync(STATE_MOUNT_POINT);
  }
}

/** What the SMB tests need on this machine, as one sentence when something is missing. */
export function sambaMissing(): string | undefined {
  const need = ["smbd", "smbclient", "testparm", "pdbedit", "nsenter", "unshare"].filter((c) => spawnSync("bash", ["-c", `command -v ${c}`]).status !== 0);
  const vfs = spawnSync("bash", ["-c", "ls /usr/lib/*/samba/vfs/recycle.so"]).status === 0;
  if (need.length || !vfs)
    return `the SMB tests need a real Samba on this machine (missing: ${[...need, ...(vfs ? [] : ["recycle.so"])].join(", ")}): apt-get install samba samba-vfs-modules smbclient`;
  return undefined;
}
