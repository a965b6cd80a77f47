import { spawnSync } from "node:child_process";
import { createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { planSite, stdinOf } from "../components/plan";
import { siteFromConfig, type StackSite } from "../components/stackConfig";
import { checkSite, exitCode, formatJson, formatText, parse, type ComponentCheck, type NodeCheck } from "../ops/check";
import { dial } from "../ops/ssh";
import { OWNER } from "./helpers/attack";
import { runProgram, sh, tempRoot } from "./helpers/run";

/** A one-node site on this machine (localhost: checked without SSH), as a stack's config. */
function localStack(root: string, storage: Record<string, unknown> = {}): StackSite {
  return siteFromConfig(
    {
      "modelshare:nodes": JSON.stringify([{ name: "here", host: "localhost", roles: ["storage"] }]),
      "modelshare:storage": JSON.stringify({ root, owner: OWNER, minFreeGB: 0, categories: ["checkpoints", "loras"], ...storage }),
      // Its stand-in models are zeros, and its converge runs as root on this machine: the
      // catalog has tests of its own (catalog.program.run, and the lab's over SMB uploads).
      "modelshare:catalog": JSON.stringify({ enabled: false }),
    },
    () => false,
  );
}
const converge = (site: StackSite) => {
  for (const p of planSite(site.config)) for (const program of p.programs) expect(runProgram(stdinOf(program, site)).code).toBe(0);
};

describe("npm run check, on a real local node", () => {
  it("exit 0 and the storage report on a converged site; exit 1 naming each drift; converge clears it", async () => {
    const root = tempRoot();
    const site = localStack(root);
    converge(site);
    sh(`head -c 2500000 /dev/zero > ${root}/storage-models/models/checkpoints/sd.safetensors`);
    let nodes = await checkSite(site);
    expect(exitCode(nodes)).toBe(0);
    expect(nodes[0]).toMatchObject({ node: "here", sessions: 0 });
    expect(nodes[0].error).toBeUndefined();
    expect(nodes[0].components.map((c) => c.component)).toEqual(["here-layout", "here-links-storage-user/models-upload", "here-env"]);
    const text = formatText(nodes);
    expect(text).toContain("here (this machine): no drift\n");
    expect(text).toMatch(/storage on here: \d+\.\d GB free at .*\/cw \(storage\.minFreeGB: 0\.0 GB\)\n/);
    expect(text).toMatch(/ {4}checkpoints +2\.5 MB +1 file\n/);
    expect(text).toContain("  model categories:\n");
    expect(text).toMatch(/ {4}ComfyUI +0 B +0 files\n/);

    sh(`rm ${root}/storage-user/models-upload/loras && chmod 0700 ${root}/projects`);
    nodes = await checkSite(site);
    expect(exitCode(nodes)).toBe(1);
    expect(formatText(nodes)).toContain(
      [
        "here (this machine): 2 finding(s)",
        `  here-layout: the mode of ${root}/projects is 0700, not 0755`,
        `  here-links-storage-user/models-upload: link ${root}/storage-user/models-upload/loras -> ../../storage-models/models/loras is missing`,
      ].join("\n"),
    );
    expect(formatText(nodes, "site")).toMatch(/\nwhat to do:\n {2}- drift: npm run repair -- site converges every node again/);
    expect(text).not.toContain("what to do:"); // nothing to do on a converged site
    const json = JSON.parse(formatJson(nodes));
    expect(json.exitCode).toBe(1);
    expect(json.nodes[0].components[1].drift).toEqual([`link ${root}/storage-user/models-upload/loras -> ../../storage-models/models/loras is missing`]);
    converge(site);
    expect(exitCode(await checkSite(site))).toBe(0);
  });

  it("free space below storage.minFreeGB is a finding on every check", async () => {
    const root = tempRoot();
    converge(localStack(root));
    const nodes = await checkSite(localStack(root, { minFreeGB: 900_000 }));
    expect(exitCode(nodes)).toBe(1);
    expect(formatText(nodes)).toMatch(
      /here-layout: only \d+\.\d GB are free on the filesystem holding .*, but storage\.minFreeGB asks for at least 900000\.0 GB\n/,
    );
    expect(formatText(nodes)).toContain("BELOW THE MINIMUM");
  });

  it("something converge would refuse (a planted link) is a finding too", async () => {
    const root = tempRoot();
    const site = localStack(root);
    converge(site);
    sh(`rmdir ${root}/storage-models/models/loras && ln -s /etc ${root}/storage-models/models/loras`);
    const nodes = await checkSite(site);
    expect(exitCode(nodes)).toBe(1);
    expect(nodes[0].components[0].refusal).toBe(
      `${root}/storage-models/models/loras is a symbolic link (to /etc), where modelshare expects a real folder; it never follows a link there, since one planted inside the storage tree could lead anywhere. Put the real folder there, or point storage.root at the real path, then run again.`,
    );
    expect(formatText(nodes)).toContain("here-layout: converge would refuse: ");
  });
});

describe("check results", () => {
  const ok: NodeCheck = { node: "a", host: "10.0.0.1", components: [{ component: "a-layout", drift: [], report: [], models: [] }], sessions: 1, ms: 5 };
  it("exit 2 when any node could not be checked, naming it and why", () => {
    const down: NodeCheck = { node: "b", host: "10.0.0.2", error: "could not connect to root@10.0.0.2:22: timed out", components: [], sessions: 0, ms: 30_000 };
    expect(exitCode([ok, down])).toBe(2);
    expect(formatText([ok, down])).toContain("b (10.0.0.2): could not be checked: could not connect to root@10.0.0.2:22: timed out");
    expect(exitCode([ok])).toBe(0);
  });
  const F = "0123456789abcdef0123456789abcdef";
  it("a program that stopped without modelshare's sentence means the node was not checked", () => {
    expect(parse("x-layout", { code: 127, stdout: "", stderr: "bash: not found" }, F)).toBe(
      "x-layout: the check did not run to its end (exit 127): bash: not found",
    );
    expect(parse("x-layout", { code: 0, stdout: `${F} drift: a\n`, stderr: "" }, F)).toMatch(/did not run to its end/); // no closing drift=N
    expect(parse("x-layout", { code: 1, stdout: `${F} drift: a\n`, stderr: `${F} modelshare: no.\n` }, F)).toEqual({
      component: "x-layout",
      drift: ["a"],
      report: [],
      models: [],
      refusal: "no.",
    });
  });
  it("takes only the lines that carry the run's frame, and only a closing drift=N that adds up", () => {
    const other = "f".repeat(32);
    const stdout = [
      `drift: fake`,
      `${other} drift: fake`,
      `report: category 999 999 /x`,
      `${F} drift: real`,
      `${F} report: project 4 1 /p/a\\nb\\x1b\\\\`,
      `drift=0`,
      `${F} drift=1`,
      "",
    ].join("\n");
    expect(parse("x", { code: 0, stdout, stderr: "" }, F)).toEqual({
      component: "x",
      drift: ["real"],
      report: [{ kind: "project", bytes: 4, count: 1, path: "/p/a\nb\x1b\\", escapedPath: "/p/a\\nb\\x1b\\\\" }],
      models: [],
    });
    expect(parse("x", { code: 0, stdout: `${F} drift=1\n`, stderr: "" }, F)).toMatch(/does not add up \(drift=1, but 0 drift lines\)/);
    expect(parse("x", { code: 0, stdout: `${F} drift=0\ndrift: late\n`, stderr: "" }, F)).toMatch(/did not run to its end/);
    expect(parse("x", { code: 1, stdout: "", stderr: `modelshare: fake\n${F} modelshare: real.\n` }, F)).toMatchObject({ refusal: "real." });
    const unframed = parse("x", { code: 1, stdout: "", stderr: "modelshare: fake \x1b]0;t\x07\n" }, F);
    expect(unframed).toBe("x: the check did not run to its end (exit 1): modelshare: fake \\x1b]0;t\\x07");
  });
  it("a worker's cache: bytes cached and free beside them; a kernel without CacheFiles says the mount is uncached", () => {
    const stdout = `${F} report: cache 2500000000 40000000000 /var/cache/modelshare\n${F} drift=0\n`;
    const cached = parse("w-nfs-cache", { code: 0, stdout, stderr: "" }, F) as ComponentCheck;
    expect(cached.report).toEqual([{ kind: "cache", bytes: 2.5e9, count: 4e10, path: "/var/cache/modelshare", escapedPath: "/var/cache/modelshare" }]);
    const off = parse("v-nfs-cache", { code: 0, stdout: `${F} report: cache-off 0 0 6.1.0-50-cloud-amd64\n${F} drift=0\n`, stderr: "" }, F) as ComponentCheck;
    const text = formatText([
      { node: "w", host: "10.0.0.3", components: [cached], sessions: 1, ms: 1 },
      { node: "v", host: "10.0.0.4", components: [off], sessions: 1, ms: 1 },
    ]);
    expect(text).toContain("\ncache on w: 2.5 GB cached in /var/cache/modelshare, 40.0 GB free beside it\n");
    expect(text).toContain("\ncache on v: none, its kernel (6.1.0-50-cloud-amd64) cannot cache NFS reads; the mount works uncached\n");
  });
});

describe("dialling a node", () => {
  it("a node that takes the connection but never speaks SSH: exactly dialErrorLimit dials, then an error that says so", async () => {
    // A silent listener on loopback: each dial ends at its own limit, never on the clock of
    // the test, so the count of connections is what bounds the wait.
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const port = (server.address() as { port: number }).port;
    try {
      const failed = await dial({ host: "127.0.0.1", port, user: "root", privateKey: "", perDialTimeout: 1, dialErrorLimit: 2 }).then(
        () => "connected",
        (e: Error) => e.message,
      );
      expect(failed).toMatch(new RegExp(`^could not connect to root@127\\.0\\.0\\.1:${port} \\(2 dials of at most 1 s\\): `));
      expect(sockets.length).toBe(2);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});

describe("the command line", () => {
  const cli = (...args: string[]) => spawnSync("npx", ["--no-install", "tsx", "ops/cli.ts", ...args], { encoding: "utf8", timeout: 60_000 });
  it.each([
    [[]],
    [["check"]],
    [["check", "--json"]],
    [["check", "dev", "--yes"]],
    [["repair", "dev", "--json"]],
    [["fix", "dev"]],
    [["check", "dev", "--html"]],
    [["repair", "dev", "--html", "x.html"]],
  ])("refuses %j with the usage and exit 2", (args) => {
    const r = cli(...args);
    expect(r.status).toBe(2);
    // check --json answers in JSON even then (monitoring reads stdout).
    const said = args[0] === "check" && args.includes("--json") ? JSON.parse(r.stdout).error : r.stderr;
    expect(said).toContain("usage: npm run check -- <stack> [--json] [--html FILE]   |   npm run repair -- <stack>");
  });
});

describe("the convergeToken (repair)", () => {
  it("is accepted as a stack key, and must be one printable line", () => {
    const root = tempRoot();
    const values = {
      "modelshare:nodes": JSON.stringify([{ name: "here", host: "localhost", roles: ["storage"] }]),
      "modelshare:storage": JSON.stringify({ root }),
    };
    expect(siteFromConfig({ ...values, "modelshare:convergeToken": "2026-11-23T23:00:00.000Z" }, () => false).convergeToken).toBe("2026-11-23T23:00:00.000Z");
    expect(() => siteFromConfig({ ...values, "modelshare:convergeToken": "a\nb" }, () => false)).toThrow(/modelshare:convergeToken: must be one line/);
    expect(() => siteFromConfig({ ...values, "modelshare:convergeTokn": "x" }, () => false)).toThrow(
      /modelshare:convergeTokn: is not a modelshare setting; did you mean modelshare:convergeToken\? \(known: nodes, storage, projects, catalog, models, smb, nfs, services, ollama, comfyui, kubernetes, convergeToken\)/,
    );
  });
});
