import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Site } from "../../components/site";
import { siteFromConfig } from "../../components/stackConfig";
import { loadSite } from "../../components/loadSite";
import { DIAL } from "../../components/node/dial";
import { checkSite, exitCode, formatText } from "../../ops/check";
import { run, type Step } from "../harness/converge";
import { declare } from "../harness/declare";
import { lab, labStack, onNode } from "../harness/lab";

/**
 * Drift on real nodes: `check` (ops/check.ts, as `npm run check` runs it, with the lab's stack
 * config passed directly) finds exactly what was broken by hand and exits 1; `repair` (a new
 * convergeToken, every create re-run as an update: here through the converge harness) fixes
 * it; `check` exits 0 again; a node that is down makes `check` exit 2 naming it.
 */
const ROOT = "/srv/cw";
const UPLOAD = `${ROOT}/storage-user/models-upload`;

const stackSite = () => {
  const { config, secretKeys } = labStack();
  return siteFromConfig(config, (k) => secretKeys.includes(k));
};
const converge = async (token?: string) => {
  const { config, secretKeys } = labStack();
  const withToken = token ? { ...config, "modelshare:convergeToken": token } : config;
  return run(await declare({ stack: "lab", config: withToken, secretKeys }, () => new Site("site", loadSite())));
};
const changed = (steps: Step[]) => steps.reduce((n, s) => n + s.changed, 0);

describe("drift on the lab site", () => {
  beforeAll(async () => {
    await converge();
  });
  afterAll(async () => {
    await onNode("node1", `rm -f /var/tmp/fill && rm -rf ${ROOT} /etc/modelshare`); // leave node1 fresh for the other lab files
  });

  it("check finds nothing on a converged site, and reports the storage", async () => {
    const nodes = await checkSite(stackSite());
    expect(exitCode(nodes), formatText(nodes)).toBe(0);
    expect(nodes.map((n) => [n.node, n.sessions])).toEqual([["node1", 1]]); // one SSH connection for all its components
    expect(formatText(nodes)).toMatch(/storage on node1: \d+\.\d GB free at \/srv\/cw \(storage\.minFreeGB: 1\.0 GB\)/);
  });

  it("check names exactly what was broken by hand and exits 1; repair fixes it; check exits 0", async () => {
    const avail = Number(await onNode("node1", `df -P -B1 ${ROOT} | awk 'NR == 2 { print $4 }'`));
    await onNode(
      "node1",
      [
        `rm ${UPLOAD}/vae`,
        `chmod 0700 ${ROOT}/projects`,
        `fallocate -l ${avail - 500_000_000} /var/tmp/fill`, // leaves about 0.5 GB, below minFreeGB: 1
      ].join(" && "),
    );
    const before = await onNode("node1", `find ${ROOT} -printf '%p %m %u:%g %s\\n' | sort | sha256sum`);
    const nodes = await checkSite(stackSite());
    expect(exitCode(nodes)).toBe(1);
    const findings = nodes[0].components.flatMap((c) => c.drift.map((d) => `${c.component}: ${d}`));
    expect(findings).toEqual([
      expect.stringMatching(/^node1-layout: only 0\.\d GB are free on the filesystem holding \/srv\/cw, but storage\.minFreeGB asks for at least 1\.0 GB$/),
      "node1-layout: the mode of /srv/cw/projects is 0700, not 0755",
      "node1-links-storage-user/models-upload: link /srv/cw/storage-user/models-upload/vae -> ../../storage-models/models/vae is missing",
    ]);
    expect(await onNode("node1", `find ${ROOT} -printf '%p %m %u:%g %s\\n' | sort | sha256sum`)).toBe(before); // check wrote nothing

    await onNode("node1", "rm /var/tmp/fill"); // the admin frees space; repair converges the rest
    const repaired = await converge(new Date().toISOString());
    expect(changed(repaired)).toBe(2);
    expect(repaired.map((s) => s.code)).toEqual([0, 0, 0, 0]);
    const after = await checkSite(stackSite());
    expect(exitCode(after), formatText(after)).toBe(0);
  });

  it("names the owner planted (an old site's projects folder): no fake line counted, escaped in text, real in JSON", async () => {
    // Before the skeleton the projects folder was the owner's; what the owner made there stays.
    await onNode(
      "node1",
      `chown 1000:1000 ${ROOT}/projects && cd ${ROOT}/projects && setpriv --reuid=1000 --regid=1000 --clear-groups -- ` +
        `mkdir -- $'p\\ndrift: fake' $'t\\033]0;owned\\007' $'bad\\xff'`,
    );
    const nodes = await checkSite(stackSite());
    const layout = nodes[0].components.find((c) => c.component === "node1-layout")!;
    expect(layout.drift).toEqual([`${ROOT}/projects belongs to 1000:1000, not 0:0`]);
    const rows = layout.report.filter((r) => r.kind === "project");
    expect(rows.map((r) => r.escapedPath).sort()).toEqual([
      `${ROOT}/projects/bad\\xff`,
      `${ROOT}/projects/p\\ndrift: fake`,
      `${ROOT}/projects/t\\x1b]0;owned\\x07`,
    ]);
    expect(rows.map((r) => r.path).sort()).toEqual([`${ROOT}/projects/bad\ufffd`, `${ROOT}/projects/p\ndrift: fake`, `${ROOT}/projects/t\x1b]0;owned\x07`]);
    expect(formatText(nodes)).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u);
    expect(changed(await converge())).toBe(1); // the migration hands the folder back to root
    await onNode("node1", `rm -rf ${ROOT}/projects/*`);
    expect(exitCode(await checkSite(stackSite()))).toBe(0);
  });

  it("a node that is down: check exits 2 naming it, after the dials DIAL allows", async () => {
    lab("link", "node1", "down");
    try {
      const nodes = await checkSite(stackSite());
      expect(exitCode(nodes)).toBe(2);
      expect(formatText(nodes)).toContain(
        `node1 (10.77.0.11): could not be checked: could not connect to root@10.77.0.11:22 (${DIAL.dialErrorLimit} dials of at most ${DIAL.perDialTimeout} s)`,
      );
    } finally {
      lab("link", "node1", "up");
    }
  });
});
