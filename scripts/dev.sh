#!/usr/bin/env bash
# Deploys (or previews, or destroys) the dev stack: a one-node site on this machine under
# ~/modelshare-dev, with a local file state backend in .pulumi-state/ and no account.
# The Pulumi CLI: a `pulumi` already on PATH, else the `pulumi` npm package's, which downloads
# the CLI on first use (needs internet once).
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

# A pulumi on PATH other than this project's npm wrapper (npm run puts node_modules/.bin first).
cli=""
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  if [ "$dir" != "$PWD/node_modules/.bin" ] && [ -x "$dir/pulumi" ]; then cli="$dir/pulumi" && break; fi
done
pulumi() {
  if [ -n "$cli" ]; then "$cli" "$@"; else npx --no-install pulumi "$@"; fi
}
if ! out=$(pulumi version 2>&1); then
  printf 'modelshare: the Pulumi CLI could not be run; it said:\n%s\n' "$out" >&2
  printf 'modelshare: the pulumi npm package downloads the CLI on first use, which needs internet access. Install the Pulumi CLI by hand (see Pulumi'"'"'s installation guide) so that a pulumi command is on PATH, then run npm run dev again.\n' >&2
  exit 1
fi

# `pulumi stack init` writes the passphrase's encryptionsalt into Pulumi.dev.yaml, a tracked
# file. Keep it beside the state instead: put it back for each run, take it out afterwards.
salt="$state/dev.encryptionsalt"
stack_file="$PWD/Pulumi.dev.yaml"
put_salt() { if [ -s "$salt" ] && ! grep -q '^encryptionsalt:' "$stack_file"; then { cat "$salt"; cat "$stack_file"; } >"$stack_file.tmp" && mv "$stack_file.tmp" "$stack_file"; fi; }
take_salt() {
  if grep -q '^encryptionsalt:' "$stack_file"; then
    grep '^encryptionsalt:' "$stack_file" >"$salt"
    grep -v '^encryptionsalt:' "$stack_file" >"$stack_file.tmp" && mv "$stack_file.tmp" "$stack_file"
  fi
}
trap take_salt EXIT
put_salt

if ! out=$(pulumi stack select dev 2>&1); then
  case "$out" in
    *"no stack named"*) pulumi stack init dev --secrets-provider passphrase ;;
    *) printf 'modelshare: pulumi stack select dev failed:\n%s\n' "$out" >&2; exit 1 ;;
  esac
fi
case "$action" in
  up)
    pulumi up --stack dev --yes "$@"
    root=$(pulumi stack output storageRoot --stack dev)
    printf '\nmodelshare: the dev stack is up. Its outputs:\n'
    pulumi stack output --stack dev
    printf '\nmodelshare: the folders it made under %s:\n' "$root"
    (cd "$root" && find . -mindepth 1 -maxdepth 3 | sort | sed 's|^\./|  |')
    ;;
  preview) pulumi preview --stack dev --diff "$@" ;;
  destroy)
    root=$(pulumi stack output storageRoot --stack dev 2>/dev/null || true)
    pulumi destroy --stack dev --yes "$@"
    printf '\nmodelshare: removed the category links (and a links folder left empty). Kept: %s with every folder and file in it; modelshare never deletes models, outputs or inputs.\n' "${root:-the storage root}"
    ;;
esac
