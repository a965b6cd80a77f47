/**
 * How long and how much memory it takes to declare a site's resource graph under Pulumi's
 * mocks, for a site of N nodes (one storage node, N-1 workers). Prints one line; run by
 * bench/run.sh in a fresh process per size so memory figures do not mix.
 */
import { Site } from "../components/site";
import { loadSite } from "../components/loadSite";
import { HOST_KEY as KEY, PRIVATE_KEY, SEEDS_ROOT, seedsLinks } from "../test/fixtures/site";
import { declare } from "../test/harness/declare";

async function main() {
  const n = Number(process.argv[2] ?? 20);
  const nodes = Array.from({ length: n }, (_, i) => ({
    name: `node${i + 1}`,
    host: `10.77.${Math.floor((i + 11) / 250)}.${((i + 11) % 250) + 1}`,
    hostKey: KEY,
    roles: i === 0 ? ["storage", "smb", "nfs-server"] : ["worker"],
  }));
  const config = {
    "modelshare:nodes": JSON.stringify(nodes),
    "modelshare:storage": JSON.stringify({ root: SEEDS_ROOT, links: seedsLinks() }),
    "modelshare:nfs": JSON.stringify({ enabled: true }),
    "modelshare:smb": JSON.stringify({ enabled: true, hostsAllow: ["10.0.0.0/8"], users: [{ name: "artist", passwordKey: "smbPasswordArtist" }] }),
    // Workers carry resources too: ComfyUI and Ollama on every one (docker, its provider, two containers).
    "modelshare:services": JSON.stringify({
      comfyui: { enabled: true, image: "registry.example.lan/comfyui:1", nodes: nodes.slice(1).map((w) => ({ name: w.name, gpus: "all" })) },
      ollama: { enabled: true, nodes: nodes.slice(1).map((w) => w.name) },
    }),
    "modelshare:sshKey": PRIVATE_KEY,
    "modelshare:smbPasswordArtist": "bench",
  };
  const started = process.hrtime.bigint();
  const resources = await declare(
    { stack: "bench", config, secretKeys: ["modelshare:sshKey", "modelshare:smbPasswordArtist"] },
    () => new Site("site", loadSite()),
  );
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const { maxRSS } = process.resourceUsage();
  console.log(
    `graph nodes=${n} resources=${resources.length} custom=${resources.filter((r) => r.custom).length} time_ms=${ms.toFixed(0)} heap_mb=${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} max_rss_mb=${(maxRSS / 1024).toFixed(1)}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
