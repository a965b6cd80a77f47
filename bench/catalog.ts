/**
 * How fast the catalog (components/catalog/catalog.py) hashes a store, against `sha256sum` on the
 * same files, and what a second run reads. Usage: npx tsx bench/catalog.ts [GiB] [files]
 * (default 2 GiB in 8 files, under /var/tmp: a disk, not tmpfs). Prints figures, asserts nothing.
 *
 * Both read the files from the page cache (each timing after one warm-up read), so the figure
 * compares the hashing, which is what could fall behind a disk; with root and a writable
 * /proc/sys/vm/drop_caches it also times both cold (the disk's own speed).
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

const gib = Number(process.argv[2] ?? 2);
const files = Number(process.argv[3] ?? 8);
const TOOL = join(__dirname, "../components/catalog/catalog.py");
const dir = mkdtempSync("/var/tmp/modelshare-bench-catalog-");
const indexDir = mkdtempSync("/var/tmp/modelshare-bench-index-");

/** A safetensors file of `size` bytes: an honest header, then random tensor data. */
function writeModel(path: string, size: number) {
  const header = (n: number) => Buffer.from(JSON.stringify({ w: { dtype: "U8", shape: [n], data_offsets: [0, n] } }));
  let h = header(size);
  h = header(size - 8 - h.length);
  const body = size - 8 - h.length;
  const fd = openSync(path, "w");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeSync(fd, len);
  writeSync(fd, h);
  const chunk = randomBytes(8 << 20);
  for (let left = body; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  closeSync(fd);
}

const seconds = (argv: string[]) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return { s: Number(process.hrtime.bigint() - t) / 1e9, out: r.stdout };
};
const dropCaches = () => spawnSync("bash", ["-c", "sync && echo 3 > /proc/sys/vm/drop_caches"]).status === 0;

try {
  const size = Math.floor((gib * 2 ** 30) / files);
  for (let i = 0; i < files; i++) writeModel(join(dir, `model-${i}.safetensors`), size);
  const bytes = size * files;
  const mb = (s: number) => (bytes / 1e6 / s).toFixed(0);
  const paths = Array.from({ length: files }, (_, i) => join(dir, `model-${i}.safetensors`));
  const sum = ["sha256sum", ...paths];
  const index = join(indexDir, "index.json");
  const tool = (withIndex: boolean) => [
    "python3",
    "-I",
    TOOL,
    "--stable-seconds",
    "1",
    "--now",
    String(Date.now() / 1000 + 60),
    "--frame",
    "",
    ...(withIndex ? ["--index", index] : []),
    dir,
  ];
  console.log(`catalog store=${(bytes / 2 ** 30).toFixed(2)}GiB files=${files}`);
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[1];
  // Three pairs each way, the order alternating, so neither side gains from going second.
  const pairs = (before: () => void) =>
    [0, 1, 2].map((i) => {
      const timed = (argv: string[]) => (before(), seconds(argv).s);
      if (i % 2 === 0) return [timed(sum), timed(tool(false))];
      const t = timed(tool(false));
      return [timed(sum), t];
    });
  const line = (what: string, runs: number[][]) => {
    const [a, b] = [median(runs.map((r) => r[0])), median(runs.map((r) => r[1]))];
    console.log(`catalog ${what} (median of 3) sha256sum=${mb(a)}MB/s tool=${mb(b)}MB/s ratio=${(a / b).toFixed(2)}`);
  };
  if (dropCaches()) line("cold", pairs(dropCaches));
  else console.log("catalog cold: not measured (no writable /proc/sys/vm/drop_caches)");
  seconds(["bash", "-c", 'cat -- "$@" >/dev/null', "warm-up", ...paths]);
  line(
    "warm",
    pairs(() => {}),
  );
  const first = seconds(tool(true));
  const second = seconds(tool(true));
  const read = (out: string) => /report: catalog (\d+) (\d+) /.exec(out)?.slice(1, 3).join(" bytes, files hashed: ");
  console.log(`catalog index first=${first.s.toFixed(2)}s read ${read(first.out)}; second=${second.s.toFixed(2)}s read ${read(second.out)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
  rmSync(indexDir, { recursive: true, force: true });
}
