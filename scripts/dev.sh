#!/usr/bin/env bash
# Deploys (or previews, or destroys) the dev stack: a one-node site on this machine under
# ~/modelshare-dev, with a local file state backend in .pulumi-state/ and no account.
# The `pulumi` npm package downloads the Pulumi CLI on first use (needs internet once).
set -euo pipefail
action=${1:-up}
case "$action" in
  up | preview | destroy) shift || true ;;
  *) printf 'usage: npm run dev [-- up|preview|destroy] [pulumi flags]\n' >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
state="$PWD/.pulumi-state"
mkdir -p "$state"
# A file backend keeps state here, not in an account; an empty passphrase is enough because
# the dev stack holds no secrets (a real site sets PULUMI_CONFIG_PASSPHRASE itself).
export PULUMI_BACKEND_URL="file://$state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
export PULUMI_SKIP_UPDATE_CHECK=true
pulumi() { npx --no-install pulumi "$@"; }
pulumi stack select dev 2>/dev/null || pulumi stack init dev --secrets-provider passphrase
case "$action" in
  up) pulumi up --stack dev --yes "$@" ;;
  preview) pulumi preview --stack dev --diff "$@" ;;
  destroy) pulumi destroy --stack dev --yes "$@" ;;
esac
