import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { linkFolders } from "../components/storage/paths";
import { renderStorageLayout } from "../components/storage/layout";
import { renderSymlinkSet } from "../components/storage/symlinkSet";
import { OWNER } from "./helpers/attack";
import { localStorage, tempRoot } from "./helpers/run";

/**
 * The model store on another filesystem (a tmpfs this test mounts in a private mount namespace,
 * as a ZFS dataset or second disk would be), the uploads on the temp folder's: `mv` would copy
 * under the final name there. Each round kills the merge (its whole process group) after a
 * different number of files, then checks that every file is whole under its final name in the store, or, absent
 * there, whole in the upload folder; then the next converge must finish the merge.
 */
const DRIVER = String.raw`
set -euo pipefail
root=$1 layout=$2 links=$3 rounds=$4
work=$(mktemp -d)
upload=$root/storage-user/models-upload/checkpoints
store=$root/storage-models/models/checkpoints
now() { date +%s%N; }
# A file is fine when whole under its final name, or (absent there) whole where it was.
check() {
  local sum rel
  while read -r sum rel; do
    if [ -e "$store/$rel" ]; then
      [ "$(sha256sum < "$store/$rel" | cut -d' ' -f1)" = "$sum" ] || echo "TRUNCATED $rel ($1)"
    elif [ -e "$upload/$rel" ] && [ ! -L "$upload" ]; then
      [ "$(sha256sum < "$upload/$rel" | cut -d' ' -f1)" = "$sum" ] || echo "DAMAGED $rel ($1)"
    else
      echo "LOST $rel ($1)"
    fi
  done < "$work/expected"
}
fresh() {
  if mountpoint -q "$root/storage-models"; then umount "$root/storage-models"; fi
  rm -rf "$root" && mkdir -p "$root/storage-models"
  mount -t tmpfs -o size=256m,mode=0775,uid=${OWNER.uid},gid=${OWNER.gid} modelshare-test "$root/storage-models"
  bash -s converge < "$layout" > /dev/null
  bash -s converge < "$links" > /dev/null
  rm "$upload" && mkdir -p "$upload/sub"
  for i in $(seq 12); do head -c $((700000 * (1 + i % 4))) /dev/urandom > "$upload/m$i.safetensors"; done
  for i in 1 2 3; do head -c 900000 /dev/urandom > "$upload/sub/s$i.bin"; done
  chown -R ${OWNER.uid}:${OWNER.gid} "$upload"
  (cd "$upload" && find . -type f -printf '%P\0' | xargs -0 sha256sum | sed 's/  / /') > "$work/expected"
}
fresh
[ "$(stat -c %d "$upload")" != "$(stat -c %d "$store")" ] || { echo "not two filesystems"; exit 1; }
start=$(now)
bash -s converge < "$links" > /dev/null
full=$(( ($(now) - start) / 1000000 ))
echo "full merge: $full ms"
check "uninterrupted"
killed=0
for round in $(seq "$rounds"); do
  fresh
  setsid bash -s converge < "$links" > "$work/out" 2>&1 &
  pid=$!
  # The kill is placed by progress, not by the clock (a busy machine would shift a timed kill
  # past the end): after the k-th file the run reports moved (k cycles through 0..11 of the 15),
  # plus up to 9 ms, so that it lands inside a copy as often as between two.
  want=$((round % 12))
  for _ in $(seq 3000); do
    [ "$(grep -c '^changed: moved' "$work/out" || true)" -lt "$want" ] || break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  sleep "0.00$((RANDOM % 10))"
  if kill -KILL -- "-$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" || true
  check "round $round, killed"
  bash -s converge < "$links" > "$work/out" 2>&1 || { echo "FINISH FAILED round $round"; cat "$work/out"; }
  [ -L "$root/storage-user/models-upload/checkpoints" ] || echo "NOT LINKED round $round"
  check "round $round, finished"
  if find "$store" -name '.modelshare-*' | grep -q .; then echo "LEFTOVER round $round"; fi
done
echo "killed=$killed"
`;

describe("a merge across filesystems", () => {
  it("killed at 20 points of its progress: every file is whole under its final name or still in the upload folder", () => {
    const root = tempRoot();
    const s = localStorage({ root, owner: OWNER });
    const dir = mkdtempSync(join(tmpdir(), "modelshare-crossfs-"));
    writeFileSync(join(dir, "layout"), renderStorageLayout(s));
    writeFileSync(join(dir, "links"), renderSymlinkSet(s, linkFolders(s)[0]));
    writeFileSync(join(dir, "driver.sh"), DRIVER);
    const r = spawnSync("unshare", ["-m", "--propagation", "private", "bash", join(dir, "driver.sh"), root, join(dir, "layout"), join(dir, "links"), "20"], {
      encoding: "utf8",
      timeout: 170_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^full merge: \d+ ms$/m);
    expect(r.stdout.split("\n").filter((l) => /^(TRUNCATED|DAMAGED|LOST|FINISH|NOT LINKED|LEFTOVER)/.test(l))).toEqual([]);
    // Kills land by progress; one that came after the run's end would prove nothing, and 20
    // rounds with none landing would mean the test exercised no interruption at all.
    expect(Number(/killed=(\d+)/.exec(r.stdout)?.[1])).toBeGreaterThanOrEqual(1);
  }, 180_000);
});
