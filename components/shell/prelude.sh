# --- modelshare prelude: strict mode, change counter, lock, the privilege split ---
# The privilege model. Everything under the storage root can be written by the storage owner
# (SMB users are forced to it, containers and custom nodes run as it), so any name inside the
# tree may have been planted. Root does only what needs root: the root folder itself, `chown`
# that never follows a link, system files. Every step inside the tree runs as the owner (see
# as_owner), so a planted link can only ever reach what the owner could reach anyway.
#
# The program arrives on stdin (`bash -s converge`), so that no login shell (csh, fish) ever
# parses it; everything is a function, and main runs with stdin from /dev/null, so no command
# can eat the rest of the program.
set -euo pipefail
umask 022
changed=0
drifted=0
run_mode=converge
note() { printf '%s\n' "$*"; }
did() { changed=$((changed + 1)); printf 'changed: %s\n' "$*"; }
drift() { drifted=$((drifted + 1)); printf 'drift: %s\n' "$*"; }
refuse() { printf 'modelshare: %s\n' "$*" >&2; exit 1; }
checking() { [ "$run_mode" = check ]; }

# act FOUND MADE COMMAND...: the one place that decides between changing and reporting.
# Converging, it runs COMMAND and prints "changed: MADE"; checking (bash -s check), it runs
# nothing and prints "drift: FOUND". Every helper makes its changes through it, so each
# component gets its check variant from the same steps.
act() {
  local found=$1 made=$2
  shift 2
  if checking; then
    drift "$found"
    return 0
  fi
  "$@"
  did "$made"
}

# take_lock: one modelshare run at a time per host (as root) or per user. Root locks a folder
# only root can enter (/run/modelshare, 0700), so no other user can hold, block or plant it;
# an unprivileged run (the dev stack) locks a 0700 folder of its own. The holder writes its
# pid into the folder, so a run that finds the lock held can say who holds it.
take_lock() {
  local dir wait=${MODELSHARE_LOCK_WAIT:-600} holder=""
  if [ "$EUID" -eq 0 ]; then
    dir=/run/modelshare
  else
    dir=${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/modelshare-$EUID
  fi
  [ -L "$dir" ] || [ -e "$dir" ] || mkdir -m 0700 -- "$dir" 2>/dev/null || true
  if [ -L "$dir" ] || [ ! -d "$dir" ] || [ "$(stat -c '%u %a' -- "$dir")" != "$EUID 700" ]; then
    refuse "$dir, modelshare's lock folder, must be a real folder of uid $EUID with mode 0700; someone else made it: remove it, then run again."
  fi
  exec 9<"$dir"
  if ! flock -w "$wait" 9; then
    [ ! -f "$dir/holder" ] || read -r holder <"$dir/holder" || true
    if [ -n "$holder" ] && [ -d "/proc/$holder" ]; then holder="pid $holder"; else holder="its pid is not known"; fi
    refuse "another modelshare run on $(hostname) ($holder) has held the lock on $dir for $wait seconds; wait for it or end it, then run again."
  fi
  printf '%s\n' "$$" >"$dir/holder"
}

# as_owner FUNCTION: runs FUNCTION, a step list of this program, as the storage owner: in a
# child bash holding this program's functions, with the owner's uid and gid only (no
# supplementary groups, no capabilities, no way to gain privileges). Its changes count as
# ours; its refusal is ours. Without root, or already the owner, it runs in place.
# shellcheck disable=SC2154 # program_title, storage_root, owner_*: set by the program
as_owner() {
  local fn=$1 uid=$owner_uid gid=$owner_gid
  if [ -z "$uid" ]; then # unmanaged: the root folder's owner, whoever made it
    if [ -d "$storage_root" ] && [ ! -L "$storage_root" ]; then
      read -r uid gid < <(stat -c '%u %g' -- "$storage_root")
    else
      uid=$EUID gid=$(id -g)
    fi
  fi
  if [ "$EUID" = "$uid" ] || { [ "$EUID" -ne 0 ] && [ -z "$owner_uid" ]; }; then
    "$fn"
    return
  fi
  if [ "$EUID" -ne 0 ]; then
    refuse "the steps inside $storage_root run as the storage owner $uid:$gid, and only root can become it; run as root or as that user."
  fi
  run_as "$uid" "$gid" clear "$fn"
}

# run_as UID GID GROUPS FUNCTION [ARG...] (root): runs FUNCTION (with ARGs) in a child bash holding this program's
# functions, as UID:GID with no capabilities and no way to gain privileges; GROUPS is clear (no
# supplementary groups: the storage owner) or init (the user's own groups, from /etc/group: a
# service user such as ollama, whose access comes through its groups). Its changes count as
# ours; its refusal is ours.
# shellcheck disable=SC2154 # program_title, storage_root, owner_*: set by the program
run_as() {
  local uid=$1 gid=$2 groups=$3 line pid fd
  shift 3
  # An empty environment: nothing of root's (HOME, BASH_ENV, SSH_CLIENT, which makes bash read
  # ~/.bashrc as if sshd had started it) reaches the steps.
  exec {fd}< <(cd / && exec setpriv --reuid="$uid" --regid="$gid" "--$groups-groups" --no-new-privs -- \
    env -i HOME=/ LC_ALL=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "$(declare -f; declare -p program_title storage_root owner_uid owner_gid run_mode)"$'\nset -euo pipefail; umask 022; changed=0 drifted=0; "$@"' \
    "modelshare: $program_title (as $uid:$gid)" "$@" </dev/null)
  pid=$!
  while IFS= read -r -u "$fd" line; do
    case $line in "changed: "*) changed=$((changed + 1)) ;; "drift: "*) drifted=$((drifted + 1)) ;; esac
    printf '%s\n' "$line"
  done
  exec {fd}<&-
  wait "$pid" || exit "$?"
}

# check_owner: what a check does as the owner: the converge steps (reporting), then the report.
check_owner() {
  converge_owner
  report_owner
}

# modelshare_main VERB: converge (create and update) or remove (delete): the privileged steps
# first, then the owner's, under the lock; the closing changed=N line shows a second run
# changed nothing. check: the converge steps, changing nothing (no lock either: it writes
# nothing), then the report steps; the closing drift=N line counts what converge would change.
# shellcheck disable=SC2154 # owner_steps: set by the program
modelshare_main() {
  case "${1-}" in
    converge | remove)
      take_lock
      "${1}_privileged"
      [ "$owner_steps" = no ] || as_owner "${1}_owner"
      printf 'changed=%d\n' "$changed"
      ;;
    check)
      run_mode=check
      converge_privileged
      report_privileged
      [ "$owner_steps" = no ] || as_owner check_owner
      printf 'drift=%d\n' "$drifted"
      ;;
    *) refuse "usage: bash -s converge|check|remove < program (got: ${1-nothing})" ;;
  esac
}
