/**
 * Lab converge figures: wall time of a first converge (fresh nodes) and of a second one (each
 * Command on its own SSH connection, as the provider runs them; the second also with one
 * connection per node), per node per run the SSH connections opened and remote commands run;
 * then check's wall time, in process and as `npm run check` (with its time to a first connection). Must run inside the
 * lab's namespace (bench/run.sh does that).
 */
import { Site } from "../components/site";
import { siteFromConfig } from "../components/stackConfig";
import { loadSite } from "../components/loadSite";
import { checkSite, exitCode } from "../ops/check";
import { run, type Step } from "../test/harness/converge";
import { declare } from "../test/harness/declare";
import { importLabImage, LAB_IMAGE, labImageTar, labStack } from "../test/harness/lab";
import { measureCheckStart } from "./checkStart";

// The full lab site (Pulumi.lab.yaml keeps SMB, NFS and services off so that the other lab suites
// stay quick): two SMB users, the lab host's address allowed; node2 and node3 mount and run a
// container each (the lab's imported image: it has no registry).
const PASSWORDS = { "modelshare:smbPasswordArtist": "bench artist", "modelshare:smbPasswordViewer": "bench viewer" };
const stack = () =>
  labStack((s) => {
    s["modelshare:smb"] = {
      enabled: true,
      hostsAllow: ["10.77.0.1"],
      users: [
        { name: "artist", passwordKey: "smbPasswordArtist" },
        { name: "viewer", passwordKey: "smbPasswordViewer", readOnly: true },
      ],
    };
    s["modelshare:nfs"] = { enabled: true };
    s["modelshare:services"] = {
      comfyui: { enabled: true, image: LAB_IMAGE, pull: "never", nodes: ["node2"] },
      fooocus: { enabled: true, image: LAB_IMAGE, pull: "never", nodes: ["node3"] },
    };
  }, PASSWORDS);

function report(label: string, steps: Step[], ms: number) {
  const perHost = new Map<string, { commands: number; dials: number; changed: number }>();
  for (const s of steps) {
    const h = perHost.get(s.host) ?? { commands: 0, dials: 0, changed: 0 };
    h.commands += 1;
    h.dials += s.dials;
    h.changed += s.changed;
    perHost.set(s.host, h);
  }
  const hosts = [...perHost].map(([host, h]) => `${host}: ssh_sessions=${h.dials} commands=${h.commands} changed=${h.changed}`).join("; ");
  console.log(`lab ${label} converge wall_s=${(ms / 1000).toFixed(1)} ${hosts}`);
  for (const st of steps) console.log(`  ${st.name} wall_s=${(st.ms / 1000).toFixed(1)} changed=${st.changed}`);
}

async function main() {
  // The first converge stops once, after installing docker, at the image the lab has no
  // registry for; the image is imported (not timed) and the converge goes on.
  const resources = await declare({ stack: "lab", ...stack() }, () => new Site("site", loadSite()));
  let t0 = Date.now();
  const first: Step[] = [];
  await run(resources, {
    dialPerCommand: true,
    onStep: (s) => {
      first.push(s);
    },
  }).catch((e: Error) => {
    if (!/is not on lab-node\d, and services\.\w+\.pull is never/.test(e.message)) throw e;
  });
  let ms = Date.now() - t0;
  const tar = labImageTar();
  await Promise.all(["node2", "node3"].map((n) => importLabImage(n, tar)));
  t0 = Date.now();
  const rest = await run(resources, { dialPerCommand: true });
  ms += Date.now() - t0;
  // A step counts once: from the first half where it finished there (it did the work), else
  // from the second. The wall figure holds both halves, so also the second half's re-runs of
  // the finished steps (no-ops, as in a second converge).
  report("first", [...first, ...rest.filter((r) => !first.some((s) => s.name === r.name))], ms);
  // The second converge twice: a connection per Command, as the provider dials; then one
  // connection per node for the whole run (what the lab tests do: the lower figure).
  const again = await declare({ stack: "lab", ...stack() }, () => new Site("site", loadSite()));
  t0 = Date.now();
  report("second", await run(again, { dialPerCommand: true }), Date.now() - t0);
  t0 = Date.now();
  report("second (one connection per node)", await run(again), Date.now() - t0);
  // npm run check on the converged site: every component's check variant, nodes in parallel.
  const { config, secretKeys } = stack();
  const site = siteFromConfig(config, (k) => secretKeys.includes(k));
  const started = Date.now();
  const nodes = await checkSite(site);
  const hosts = nodes
    .map((n) => `${n.host}: ssh_sessions=${n.sessions} commands=${n.components.length} drift=${n.components.reduce((d, c) => d + c.drift.length, 0)}`)
    .join("; ");
  console.log(`lab check (in process) wall_s=${((Date.now() - started) / 1000).toFixed(1)} exit=${exitCode(nodes)} ${hosts}`);
  // As a user runs it: a fresh process, its modules loaded, the stack read, then the nodes.
  const cli = measureCheckStart("lab", config, secretKeys);
  console.log(`lab check (npm run check) first_connection_s=${cli.firstConnectionS.toFixed(2)} wall_s=${cli.wallS.toFixed(1)} exit=${cli.exit}`);
}

// Ends once the figures are printed: a connection the harness's docker steps keep open would
// otherwise hold the process (and the lab, which bench/run.sh stops on exit) up.
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
