#!/usr/bin/env bash
# Prints the benchmark figures (no pass/fail): graph size and build cost under mocks for sites
# of 20, 50 and 200 nodes, then, with `--lab`, converge times on fresh lab VMs (a connection per
# Command, as the provider dials; the second converge also on one per node) and check's time to
# its first connection (needs root, QEMU and debootstrap; see lab/README.md); with
# `--lab --delivery`, instead of the converge
# times, how fast a worker reads a model over NFS and its local cache (bench/delivery.ts).
# `--catalog [GiB] [files]`: only the catalog's hashing against sha256sum (bench/catalog.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--catalog" ]; then
  shift
  exec npx --no-install tsx bench/catalog.ts "$@"
fi
if [ "${1:-}" = "--delivery" ]; then
  echo "bench: --delivery runs on the lab: npm run bench -- --lab --delivery" >&2
  exit 2
fi
for n in 20 50 200; do
  npx --no-install tsx bench/graph.ts "$n"
done
if [ "${1:-}" = "--lab" ]; then
  bash lab/lab.sh down
  trap 'bash lab/lab.sh down' EXIT
  bash lab/lab.sh up 3 >/dev/null
  if [ "${2:-}" = "--delivery" ]; then
    bash lab/lab.sh exec -- npx --no-install tsx bench/delivery.ts
  else
    bash lab/lab.sh exec -- npx --no-install tsx bench/lab.ts
  fi
fi
