import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { parseSite } from "../components/config";
import type { ComponentCheck, NodeCheck } from "../ops/check";
import { formatHtml } from "../ops/html";
import { seedsWithComfyUI } from "./fixtures/site";

/**
 * The page of the site (issue 21, item 5): `npm run check -- <stack> --html FILE`. Its text from
 * the seeds' site with SMB, NFS and ComfyUI and a check with drift; names from a node escaped;
 * and the page in a real headless browser (Debian's chromium): its text as the browser shows
 * it, and a screenshot that is not blank.
 */
const raw = seedsWithComfyUI();
raw.smb = { enabled: true, hostsAllow: ["192.168.0.0/24"], users: [{ name: "artist", passwordKey: "smbPasswordArtist" }] };
const config = parseSite(raw, { homedir: "/home/ada" });
const component = (c: Partial<ComponentCheck> & { component: string }): ComponentCheck => ({ drift: [], report: [], models: [], ...c });
const report = (kind: "space" | "category" | "output" | "project", bytes: number, count: number, path: string) => ({
  kind,
  bytes,
  count,
  path,
  escapedPath: path,
});
const nodes: NodeCheck[] = [
  {
    node: "storage",
    host: "192.168.0.6",
    sessions: 1,
    ms: 1,
    components: [
      component({
        component: "storage-layout",
        drift: ["the mode of /vol/service/cw/projects is 0700, not 0755"],
        report: [
          report("space", 40e9, 50e9, "/vol/service/cw"),
          report("category", 12e9, 3, "/vol/service/cw/storage-models/models/checkpoints"),
          report("category", 3e9, 9, `/vol/service/cw/storage-models/models/<img onerror=x>&"`),
          report("output", 1e6, 1, "/vol/service/cw/storage-user/output/ComfyUI"),
        ],
      }),
    ],
  },
  { node: "gpu1", host: "192.168.0.21", sessions: 1, ms: 1, components: [component({ component: "gpu1-nfs-mount" })] },
  { node: "gpu2", host: "gpu2.lan", sessions: 0, ms: 1, error: "could not connect", components: [] },
];
const page = formatHtml(config, nodes, "seeds", new Date("2026-12-01T12:00:00Z"));

describe("the site's page", () => {
  it("shows the nodes and their roles, the share's paths, the export and mounts, the services, the drift and the storage", () => {
    expect(page).toMatch(/^<!doctype html>/);
    for (const text of [
      "modelshare: seeds",
      "a node could not be checked (checked 2026-12-01T12:00:00.000Z)",
      "storage, smb, nfs-server",
      "could not be checked: could not connect",
      "\\\\192.168.0.6\\ki_Daten",
      "smb://192.168.0.6/ki_Daten/storage-user/models-upload/",
      "192.168.0.6:/vol/service/cw",
      "modelshare-comfyui",
      "http://127.0.0.1:8188",
      "the mode of /vol/service/cw/projects is 0700, not 0755",
      "40.0 GB free",
      "BELOW THE MINIMUM",
      "12.0 GB",
    ])
      expect(page).toContain(text.replace(/&/g, "&amp;"));
  });

  it("escapes every name from a node: a name holding markup stays text", () => {
    expect(page).not.toContain("<img");
    expect(page).toContain("&lt;img onerror=x&gt;&amp;&quot;");
    expect(page).not.toMatch(/<(link|img|iframe|script)\b|src=|href=/); // runs and loads nothing
  });
});

/** Every pixel of an 8-bit RGB(A) PNG, unfiltered: enough to tell a blank page from a drawn one. */
function pngPixels(png: Buffer): { width: number; height: number; channels: number; data: Buffer } {
  let at = 8;
  let width = 0,
    height = 0,
    channels = 0;
  const idat: Buffer[] = [];
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.toString("ascii", at + 4, at + 8);
    const chunk = png.subarray(at + 8, at + 8 + len);
    if (type === "IHDR") {
      width = chunk.readUInt32BE(0);
      height = chunk.readUInt32BE(4);
      expect(chunk[8]).toBe(8);
      channels = { 2: 3, 6: 4 }[chunk[9]] ?? 0;
      expect(channels).toBeGreaterThan(0);
    } else if (type === "IDAT") idat.push(chunk);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const data = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= channels ? data[y * stride + x - channels] : 0;
      const b = y > 0 ? data[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? data[(y - 1) * stride + x - channels] : 0;
      const p = a + b - c;
      const pred = [
        0,
        a,
        b,
        (a + b) >> 1,
        Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c,
      ][filter];
      data[y * stride + x] = (v + pred) & 0xff;
    }
  }
  return { width, height, channels, data };
}

describe("the page in a headless browser", () => {
  const dir = mkdtempSync(join(tmpdir(), "modelshare-html-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const chromium = (...args: string[]) =>
    spawnSync("chromium", ["--headless", "--no-sandbox", "--disable-gpu", `--user-data-dir=${dir}/profile`, ...args], { encoding: "buffer", timeout: 120_000 });

  it("renders: the browser shows the page's text, and its screenshot is not blank", () => {
    expect(spawnSync("chromium", ["--version"]).error, "the page test needs Debian's chromium: apt-get install chromium").toBeUndefined();
    const file = join(dir, "site.html");
    writeFileSync(file, page);
    const dom = chromium("--dump-dom", `file://${file}`).stdout.toString();
    expect(dom).toContain("modelshare: seeds");
    expect(dom).toContain("http://127.0.0.1:8188");
    const shot = join(dir, "site.png");
    const r = chromium(`--screenshot=${shot}`, "--window-size=1000,1400", `file://${file}`);
    expect(r.status, r.stderr.toString()).toBe(0);
    const { width, height, channels, data } = pngPixels(readFileSync(shot));
    expect([width, height]).toEqual([1000, 1400]);
    // Not blank: many pixels differ from the first one (the white background), dark text among them.
    let differ = 0,
      dark = 0;
    for (let i = 0; i < data.length; i += channels) {
      if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) differ++;
      if (data[i] + data[i + 1] + data[i + 2] < 200) dark++;
    }
    expect(differ).toBeGreaterThan(width * height * 0.01);
    expect(dark).toBeGreaterThan(1000);
  });
});
