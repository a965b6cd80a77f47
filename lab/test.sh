#!/usr/bin/env bash
# The lab suite (`npm run test:lab`): boots fresh lab VMs, runs test/lab/ inside the lab's
# network namespace, and stops the VMs afterwards (MODELSHARE_LAB_KEEP=1 leaves them up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash lab/lab.sh down
if [ "${MODELSHARE_LAB_KEEP:-0}" != 1 ]; then
  trap 'bash lab/lab.sh down' EXIT
fi
bash lab/lab.sh up 3
bash lab/lab.sh exec -- npx --no-install vitest run --config vitest.lab.config.mts "$@"
