# --- modelshare prelude: strict mode, change counter, per-host lock ---
set -euo pipefail
umask 022
changed=0
note() { printf '%s\n' "$*"; }
did() { changed=$((changed + 1)); printf 'changed: %s\n' "$*"; }
refuse() { printf 'modelshare: %s\n' "$*" >&2; exit 1; }
# One lock per host and user: /run/lock is world-writable on Debian, and a lock file root made
# there could not be reopened by the unprivileged dev-stack user.
lock_dir=/run/lock
if [ ! -d "$lock_dir" ] || [ ! -w "$lock_dir" ]; then lock_dir=${TMPDIR:-/tmp}; fi
lock_file="$lock_dir/modelshare-$(id -u).lock"
exec 9>>"$lock_file"
flock -w 600 9 || refuse "another modelshare run on $(hostname) has held $lock_file for 10 minutes; wait for it or end it, then run again."
