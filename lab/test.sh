#!/usr/bin/env bash
# The lab suite (`npm run test:lab`): boots fresh lab VMs, runs test/lab/ inside the lab's
# network namespace, and stops the VMs afterwards (MODELSHARE_LAB_KEEP=1 leaves them up).
#
# Two labs, two halves of the suite at once: under emulation a lab keeps one VM busy at a
# time, so one lab leaves the second core idle. The second lab has its own namespace and folder
# (the same addresses inside), shares the first one's image, and boots before either half
# starts. Each half's output is printed when both are done; a JSON report asked for with
# --outputFile.json=FILE holds both halves. MODELSHARE_LAB_HALVES=1 runs one lab, one suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The first half: files that together take about half the time (a CI rehearsal, 2026-12-02,
# both halves at once on the 2-core machine: smb 24 min, services 18, warm, drift, models,
# harness 5; the other half: nfs 26, installers 11, cache 6, converge 5; 48 min each). The
# second half is every other lab file, so a new file always runs.
FIRST=(test/lab/services.lab.test.ts test/lab/smb.lab.test.ts test/lab/drift.lab.test.ts test/lab/warm.lab.test.ts test/lab/harness.lab.test.ts test/lab/models.lab.test.ts)

base=${MODELSHARE_LAB_DIR:-$HOME/.cache/modelshare-lab}
second_dir=$base/second
second=(env MODELSHARE_LAB_DIR="$second_dir" MODELSHARE_LAB_NS=modelshare-lab-2 MODELSHARE_LAB_IMAGES="$base/images")
vitest=(npx --no-install vitest run --config vitest.lab.config.mts)

bash lab/lab.sh down
"${second[@]}" bash lab/lab.sh down
if [ "${MODELSHARE_LAB_KEEP:-0}" != 1 ]; then
  trap 'bash lab/lab.sh down; "${second[@]}" bash lab/lab.sh down' EXIT
fi
bash lab/lab.sh up 3

# One lab, one run: when asked for, or when a file or filter is given (npm run test:lab --
# test/lab/x.lab.test.ts); options alone (CI's reporters) keep the two halves.
single=no
[ "${MODELSHARE_LAB_HALVES:-2}" != 1 ] || single=yes
for a in "$@"; do
  case $a in -*) ;; *) single=yes ;; esac
done
if [ "$single" = yes ]; then
  bash lab/lab.sh exec -- "${vitest[@]}" "$@"
  exit
fi

# The report options apply to both halves; each writes its own JSON, merged below.
json="" args=()
for a in "$@"; do
  case $a in --outputFile.json=*) json=${a#--outputFile.json=} ;; *) args+=("$a") ;; esac
done
rest=()
for f in test/lab/*.lab.test.ts; do
  [[ " ${FIRST[*]} " == *" $f "* ]] || rest+=("$f")
done
logs=$(mktemp -d)
# The second lab boots before the first half starts, not beside it: three VMs booting under
# emulation kept both cores so busy that SSH handshakes into the first lab took longer than the
# 10 s per dial that pulumi up (and so the harness) allows, and smb.lab's first converges failed
# "could not connect" (a CI rehearsal, 2026-12-01: sshd logged the client gone mid-handshake).
if ! "${second[@]}" bash lab/lab.sh up 3 >"$logs/second.log" 2>&1; then
  cat "$logs/second.log"
  exit 1
fi
bash lab/lab.sh exec -- "${vitest[@]}" "${args[@]}" --outputFile.json="$logs/first.json" "${FIRST[@]}" >"$logs/first.log" 2>&1 &
first_pid=$!
second_status=0
"${second[@]}" bash lab/lab.sh exec -- "${vitest[@]}" "${args[@]}" --outputFile.json="$logs/second.json" "${rest[@]}" >>"$logs/second.log" 2>&1 || second_status=$?
first_status=0
wait "$first_pid" || first_status=$?
printf '\n==== lab, first half (%s)\n' "${FIRST[*]}"
cat "$logs/first.log"
printf '\n==== lab, second half (%s)\n' "${rest[*]}"
cat "$logs/second.log"
if [ -n "$json" ]; then
  # Both halves' counts and files in one report; a half that wrote none counts as a failure.
  JSON_OUT=$json node -e '
    const fs = require("fs");
    const out = { numPassedTests: 0, numFailedTests: 0, testResults: [] };
    for (const f of process.argv.slice(2)) {
      if (!fs.existsSync(f)) { out.numFailedTests += 1; continue; }
      const r = JSON.parse(fs.readFileSync(f, "utf8"));
      out.numPassedTests += r.numPassedTests; out.numFailedTests += r.numFailedTests;
      out.testResults.push(...r.testResults);
    }
    fs.writeFileSync(process.env.JSON_OUT, JSON.stringify(out));
  ' "$logs/first.json" "$logs/second.json"
fi
rm -rf "$logs"
[ "$first_status" = 0 ] && [ "$second_status" = 0 ]
