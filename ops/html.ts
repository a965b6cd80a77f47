import type { Site } from "../components/config";
import { siteClusterObjects } from "../components/kubernetes/objects";
import { isLocal } from "../components/node/hostRules";
import { planSite } from "../components/plan";
import type { ShareFolder } from "../components/smb/share";
import { exitCode, human, type NodeCheck, type ReportLine } from "./check";

/**
 * `npm run check -- <stack> --html <file>`: the site on one self-contained page (no script, no
 * file or address it loads): which node runs what, where the share, the export, each mount and
 * each service are, what drifted, and the storage report as bars. Every text from the config or
 * a node is escaped: a name from the tree is data, never markup.
 */
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d6dbe4}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eef0f4;vertical-align:top}
code{font:13px ui-monospace,monospace;background:#f3f5f8;padding:0 .2rem}
.ok{color:#11723a}.bad{color:#b3261e}.bar{background:#e7ebf2;height:.9rem;border-radius:.2rem;min-width:8rem}
.bar span{display:block;height:100%;background:#3866c9;border-radius:.2rem}.low span{background:#b3261e}
.status{font-size:1.1rem;padding:.6rem .8rem;border-radius:.3rem;background:#f3f5f8}`;

export function formatHtml(config: Site, nodes: readonly NodeCheck[], stack: string, at = new Date()): string {
  const plan = planSite(config);
  const code = exitCode([...nodes]);
  const status = code === 0 ? "nothing drifted" : code === 1 ? "findings: see below" : "a node could not be checked";
  const body = [
    `<h1>modelshare: ${esc(stack)}</h1>`,
    `<p class="status ${code === 0 ? "ok" : "bad"}">${esc(status)} (checked ${esc(at.toISOString())})</p>`,
    "<h2>Nodes</h2>",
    table(
      ["node", "address", "roles", "check"],
      [
        ...config.nodes.map((n) => nodeRow(n.name, isLocal(n) ? "this machine" : n.host, n.roles.join(", "), nodes)),
        // The cluster (modelshare:kubernetes), checked beside the nodes: its API server's address.
        ...nodes.filter((c) => !config.nodes.some((n) => n.name === c.node)).map((c) => nodeRow(c.node, c.host, "Kubernetes cluster", nodes)),
      ],
    ),
    ...where(plan),
    ...clusterWhere(config),
    ...drift(nodes),
    ...storage(config, nodes),
  ];
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>modelshare: ${esc(stack)}</title><style>${STYLE}</style></head>\n<body>\n${body.join("\n")}\n</body></html>\n`;
}

function nodeRow(name: string, address: string, roles: string, nodes: readonly NodeCheck[]): string[] {
  const c = nodes.find((x) => x.node === name);
  const findings = c ? c.components.reduce((a, x) => a + x.drift.length + (x.refusal ? 1 : 0), 0) : 0;
  const state = !c ? "not checked" : c.error ? `could not be checked: ${c.error}` : findings ? `${findings} finding(s)` : "no drift";
  return [esc(name), `<code>${esc(address)}</code>`, esc(roles), `<span class="${state === "no drift" ? "ok" : "bad"}">${esc(state)}</span>`];
}

/** The services in the cluster and their URLs there. */
function clusterWhere(config: Site): string[] {
  const cluster = siteClusterObjects(config);
  if (!cluster) return [];
  return [
    "<h2>Services in the cluster</h2>",
    table(
      ["namespace", "service", "address"],
      cluster.services.map((s) => [esc(config.kubernetes.namespace), esc(s.service), `<code>${esc(s.url)}</code>`]),
    ),
  ];
}

function table(head: string[], rows: string[][]): string {
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</table>`;
}

/** Where each thing is: the share (Explorer and Finder), the export and mounts, the services. */
function where(plan: ReturnType<typeof planSite>): string[] {
  const out: string[] = [];
  const smb = plan.find((i) => i.kind === "smb");
  if (smb) {
    const folders = Object.entries(smb.outputs.folders as Record<string, ShareFolder>);
    out.push(
      "<h2>SMB share</h2>",
      `<p>Explorer: <code>${esc(String(smb.outputs.unc))}</code> · Finder: <code>${esc(String(smb.outputs.url))}</code></p>`,
      table(
        ["folder", "Windows", "macOS"],
        folders.map(([f, p]) => [esc(f), `<code>${esc(p.windows)}</code>`, `<code>${esc(p.finder)}</code>`]),
      ),
    );
  }
  const server = plan.find((i) => i.kind === "nfs-server");
  if (server) {
    out.push(
      "<h2>NFS</h2>",
      `<p>Export <code>${esc(String(server.outputs.export))}</code>; from another Linux machine: <code>${esc(String(server.outputs.mountCommand))}</code></p>`,
      table(
        ["worker", "mounted at"],
        plan.filter((i) => i.kind === "nfs-mount").map((m) => [esc(m.node.name), `<code>${esc(String(m.outputs.mountPoint))}</code>`]),
      ),
    );
  }
  const services = plan.filter((i) => i.kind === "service" && i.spec);
  if (services.length) {
    out.push(
      "<h2>Services</h2>",
      table(
        ["node", "service", "container", "address"],
        services.map((s) => {
          const port = s.spec!.ports.find((p) => p.protocol === "tcp");
          const host = port?.ip && port.ip !== "0.0.0.0" ? port.ip : s.node.host;
          const url = port ? `http://${host.includes(":") ? `[${host}]` : host}:${port.external}` : "";
          return [esc(s.node.name), esc(s.spec!.service), `<code>${esc(s.spec!.name)}</code>`, url ? `<code>${esc(url)}</code>` : "no TCP port"];
        }),
      ),
    );
  }
  return out;
}

function drift(nodes: readonly NodeCheck[]): string[] {
  const rows = nodes.flatMap((n) =>
    n.components.flatMap((c) => [
      ...c.drift.map((d) => [esc(n.node), esc(c.component), esc(d)]),
      ...(c.refusal ? [[esc(n.node), esc(c.component), `converge would refuse: ${esc(c.refusal)}`]] : []),
    ]),
  );
  return ["<h2>Drift</h2>", rows.length ? table(["node", "component", "what converge would change"], rows) : '<p class="ok">none</p>'];
}

/** The storage report as bars: free space against the minimum, then sizes per folder. */
function storage(config: Site, nodes: readonly NodeCheck[]): string[] {
  const node = nodes.find((n) => n.node === config.nodes.find((x) => x.roles.includes("storage"))?.name);
  const report = node?.components.flatMap((c) => c.report) ?? [];
  const out = ["<h2>Storage</h2>"];
  const space = report.find((r) => r.kind === "space");
  if (space) {
    const low = space.bytes < space.count;
    out.push(
      `<p>${esc(human(space.bytes))} free at <code>${esc(space.escapedPath)}</code>; the minimum is ${esc(human(space.count))}${low ? ' <span class="bad">BELOW THE MINIMUM</span>' : ""}</p>`,
      `<div class="bar${low ? " low" : ""}" title="free space against twice the minimum"><span style="width:${Math.min(100, Math.round((space.bytes / Math.max(1, 2 * space.count)) * 100))}%"></span></div>`,
    );
  }
  for (const [kind, title] of [
    ["category", "Model categories"],
    ["output", "Output folders"],
    ["project", "Projects"],
  ] as const) {
    const rows = report.filter((r) => r.kind === kind);
    if (rows.length) out.push(`<h3>${title}</h3>`, bars(rows));
  }
  if (!node) out.push("<p>The storage node was not checked.</p>");
  return out;
}

function bars(rows: readonly ReportLine[]): string {
  const most = Math.max(1, ...rows.map((r) => r.bytes));
  return table(
    ["folder", "size", "files", ""],
    rows.map((r) => [
      `<code>${esc(r.escapedPath.slice(r.escapedPath.lastIndexOf("/") + 1))}</code>`,
      esc(human(r.bytes)),
      esc(String(r.count)),
      `<div class="bar"><span style="width:${Math.round((r.bytes / most) * 100)}%"></span></div>`,
    ]),
  );
}
