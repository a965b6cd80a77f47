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
# Reports carry data, not text to trust. A name from the tree may hold a newline or a terminal's
# escape bytes, so every message goes through escape_line: one line, nothing a terminal acts
# on. A reader (`npm run check`) passes a random token after the verb (`bash -s check TOKEN`):
# then every line the program prints starts with it, and a refusal too, and the reader takes
# only those. Without one (a person, the Pulumi log) lines are as ever: `changed: …`, `drift: …`.
frame=""
refuse_frame=""
note() { escape_line "$*"; emit note "$escaped"; }
did() { changed=$((changed + 1)); escape_line "$*"; emit changed "$escaped"; }
drift() { drifted=$((drifted + 1)); escape_line "$*"; emit drift "$escaped"; }
# report KIND BYTES COUNT PATH: one row of the storage report (check only).
report() { escape_line "$1 $2 $3 $4"; emit report "$escaped"; }
# complain MESSAGE: a line of modelshare's to stderr (refuse: the last one).
complain() { escape_line "$*"; printf '%smodelshare: %s\n' "${refuse_frame:+$refuse_frame }" "$escaped" >&2; }
refuse() { complain "$@"; exit 1; }
# emit KIND LINE: LINE (escaped already) framed for a reader, or as a person reads it.
emit() {
  if [ -n "$frame" ]; then printf '%s %s: %s\n' "$frame" "$1" "$2"
  elif [ "$1" = note ]; then printf '%s\n' "$2"
  else printf '%s: %s\n' "$1" "$2"; fi
}

# escape_line TEXT [BACKSLASH]: sets `escaped` to TEXT as one line a terminal shows as it is:
# backslash, LF, tab and CR as \\ \n \t \r; every other control byte, invalid UTF-8 byte, C1
# control, line separator and bidi control as \xHH, byte by byte (so the name can be decoded
# back). Printable UTF-8 stays. Pure bash in the C locale (bytes), no process per message; a
# printable ASCII text takes one pattern test. BACKSLASH replaces `\\` (a line that is escaped
# already passes with `\`).
escape_line() {
  local LC_ALL=C s=$1 bs="\\\\" run c n
  [ "$#" -lt 2 ] || bs=$2
  escaped=
  [[ $s == *[!\ -\[\]-~]* ]] || { escaped=$s; return 0; }
  # Byte patterns of what stays: well-formed UTF-8 past the C1 controls, no overlong forms, no
  # surrogates, up to U+10FFFF; and of what is escaped although well-formed (U+200E/F, U+2028
  # to U+202E, U+2066 to U+2069: they break or reorder what a terminal shows).
  local u2=$'[\xc2][\xa0-\xbf]*' u2b=$'[\xc3-\xdf][\x80-\xbf]*' \
    u3=$'[\xe0][\xa0-\xbf][\x80-\xbf]*' u3b=$'[\xe1-\xec\xee\xef][\x80-\xbf][\x80-\xbf]*' u3c=$'[\xed][\x80-\x9f][\x80-\xbf]*' \
    u4=$'[\xf0][\x90-\xbf][\x80-\xbf][\x80-\xbf]*' u4b=$'[\xf1-\xf3][\x80-\xbf][\x80-\xbf][\x80-\xbf]*' u4c=$'[\xf4][\x80-\x8f][\x80-\xbf][\x80-\xbf]*' \
    bidi=$'[\xe2][\x80][\x8e\x8f\xa8-\xae]*' bidi2=$'[\xe2][\x81][\xa6-\xa9]*'
  while [ -n "$s" ]; do
    run=${s%%[!\ -\[\]-~]*}
    escaped+=$run s=${s:${#run}}
    # shellcheck disable=SC2254 # the byte patterns are globs
    case $s in
      '') break ;;
      \\*) escaped+=$bs n=1 ;;
      $'\n'*) escaped+='\n' n=1 ;;
      $'\t'*) escaped+='\t' n=1 ;;
      $'\r'*) escaped+='\r' n=1 ;;
      $bidi | $bidi2) printf -v c '\\x%02x' "'$s"; escaped+=$c n=1 ;;
      $u2 | $u2b) escaped+=${s:0:2} n=2 ;;
      $u3 | $u3b | $u3c) escaped+=${s:0:3} n=3 ;;
      $u4 | $u4b | $u4c) escaped+=${s:0:4} n=4 ;;
      *) printf -v c '\\x%02x' "'$s"; escaped+=$c n=1 ;;
    esac
    s=${s:n}
  done
}

# new_frame: a random frame token (128 bits from /dev/urandom, in hex) in `new_frame`.
new_frame() {
  new_frame=$(od -An -N16 -tx1 /dev/urandom)
  new_frame=${new_frame//[!0-9a-f]/}
  [ "${#new_frame}" = 32 ] || refuse "could not read 16 random bytes from /dev/urandom."
}
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
  if ! flock -n 9; then
    # Said before the wait, which can last minutes: a run that seems to hang says why.
    [ ! -f "$dir/holder" ] || read -r holder <"$dir/holder" || true
    note "another modelshare run on $(hostname) holds the lock (pid ${holder:-unknown}); waiting up to $wait s for it to finish"
    holder=""
  fi
  if ! flock -w "$wait" 9; then
    [ ! -f "$dir/holder" ] || read -r holder <"$dir/holder" || true
    if [ -n "$holder" ] && [ -d "/proc/$holder" ]; then holder="pid $holder"; else holder="its pid is not known"; fi
    refuse "another modelshare run on $(hostname) ($holder) has held the lock on $dir for $wait seconds; wait for it or end it, then run again."
  fi
  printf '%s\n' "$$" >"$dir/holder"
}

# as_owner FUNCTION [ARG...]: runs FUNCTION (a step list of this program, or a helper with its
# ARGs) as the storage owner: in a child bash holding this program's functions, with the
# owner's uid and gid only (no supplementary groups, no capabilities, no way to gain
# privileges). Its changes count as ours; its refusal is ours. Without root, or already the
# owner, it runs in place.
# shellcheck disable=SC2154 # program_title, storage_root, owner_*: set by the program
as_owner() {
  local fn=$1 uid=$owner_uid gid=$owner_gid
  shift
  if [ -z "$uid" ]; then # unmanaged: the root folder's owner, whoever made it
    if [ -d "$storage_root" ] && [ ! -L "$storage_root" ]; then
      read -r uid gid < <(stat -c '%u %g' -- "$storage_root")
    else
      uid=$EUID gid=$(id -g)
    fi
  fi
  if [ "$EUID" = "$uid" ] || { [ "$EUID" -ne 0 ] && [ -z "$owner_uid" ]; }; then
    "$fn" "$@"
    return
  fi
  if [ "$EUID" -ne 0 ]; then
    refuse "the steps inside $storage_root run as the storage owner $uid:$gid, and only root can become it; run as root or as that user."
  fi
  run_as "$uid" "$gid" clear "$fn" "$@"
}

# run_as UID GID GROUPS FUNCTION [ARG...] (root): runs FUNCTION (with ARGs) in a child bash holding this program's
# functions, as UID:GID with no capabilities and no way to gain privileges; GROUPS is clear (no
# supplementary groups: the storage owner) or init (the user's own groups, from /etc/group: a
# service user such as ollama, whose access comes through its groups). Its changes count as
# ours (only the lines that carry the frame it was given count); its refusal is ours.
# shellcheck disable=SC2154 # program_title, storage_root, owner_*: set by the program
run_as() {
  # Bytes, whatever the locale: bash 5.2's ${line#…} reads stray memory on invalid UTF-8 there.
  local LC_ALL=C uid=$1 gid=$2 groups=$3 line pid fd kind child
  shift 3
  new_frame
  child=$new_frame
  # An empty environment: nothing of root's (HOME, BASH_ENV, SSH_CLIENT, which makes bash read
  # ~/.bashrc as if sshd had started it) reaches the steps.
  exec {fd}< <(cd / && exec setpriv --reuid="$uid" --regid="$gid" "--$groups-groups" --no-new-privs -- \
    env -i HOME=/ LC_ALL=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "$(declare -f; declare -p program_title storage_root owner_uid owner_gid run_mode refuse_frame)"$'\nset -euo pipefail; umask 022; changed=0 drifted=0 frame=$1; shift; "$@"' \
    "modelshare: $program_title (as $uid:$gid)" "$child" "$@" </dev/null)
  pid=$!
  while IFS= read -r -u "$fd" line; do
    # Only a line carrying the child's frame is one of its reports; anything else (a tool's own
    # output, which may quote a planted name) is shown as a note, escaped, and never counted.
    kind=""
    case $line in "$child "*) line=${line#"$child "} kind=${line%%: *} ;; esac
    case $kind in
      changed) changed=$((changed + 1)) ;;
      drift) drifted=$((drifted + 1)) ;;
      note | report) ;;
      *) escape_line "$line"; emit note "(output as $uid:$gid) $escaped"; continue ;;
    esac
    # Escaped by the child already (its `\\` stay as they are); anything else is escaped now.
    escape_line "${line#*: }" "\\"
    emit "$kind" "$escaped"
  done
  exec {fd}<&-
  wait "$pid" || exit "$?"
}

# check_owner: what a check does as the owner: the converge steps (reporting), then the report.
check_owner() {
  converge_owner
  report_owner
}

# require_supported_system (root): what root changes on a node (packages, system files) is done
# the Debian way, with apt; on anything else it would fail half-way, so the run stops before
# its first step, in one sentence. Units need systemd besides (require_systemd, where they are
# made). Without root (the dev stack) only folders and links in the user's own tree are made:
# any Linux will do.
require_supported_system() {
  local id="" like="" name="" missing=()
  local key value
  # Read in bash: every program runs this, and under emulation (the lab) each sed or tr
  # process costs a tenth of a second.
  if [ -r /etc/os-release ]; then
    while IFS='=' read -r key value || [ -n "$key" ]; do
      value=${value//\"/}
      case $key in ID) id=$value ;; ID_LIKE) like=$value ;; PRETTY_NAME) name=$value ;; esac
    done </etc/os-release
  fi
  case " $id $like " in *" debian "* | *" ubuntu "*) ;; *) missing+=("is not Debian or Ubuntu") ;; esac
  command -v apt-get >/dev/null 2>&1 || missing+=("has no apt-get")
  [ "${#missing[@]}" -eq 0 ] && return 0
  refuse "$(hostname) (${name:-no /etc/os-release}) $(printf '%s, ' "${missing[@]}" | sed 's/, $//'); modelshare manages Debian and Ubuntu nodes (apt; systemd where it installs services; tested on Debian 12), so nothing was changed here."
}

# modelshare_main VERB: converge (create and update) or remove (delete): the privileged steps
# first, then the owner's, under the lock; the closing changed=N line shows a second run
# changed nothing. check: the converge steps, changing nothing (no lock either: it writes
# nothing), then the report steps; the closing drift=N line counts what converge would change.
# FRAME (32 hex digits, chosen by the reader) then heads every line printed, refusals included.
# shellcheck disable=SC2154 # owner_steps: set by the program
modelshare_main() {
  if [ "$#" -gt 1 ]; then
    [[ $# = 2 && $2 =~ ^[0-9a-f]{32}$ ]] || refuse "usage: bash -s converge|check|remove [FRAME: 32 hex digits] < program"
    frame=$2 refuse_frame=$2
  fi
  if [ "$EUID" -eq 0 ]; then require_supported_system; fi
  case "${1-}" in
    converge | remove)
      take_lock
      "${1}_privileged"
      [ "$owner_steps" = no ] || as_owner "${1}_owner"
      printf '%schanged=%d\n' "${frame:+$frame }" "$changed"
      ;;
    check)
      run_mode=check
      converge_privileged
      report_privileged
      [ "$owner_steps" = no ] || as_owner check_owner
      printf '%sdrift=%d\n' "${frame:+$frame }" "$drifted"
      ;;
    *) refuse "usage: bash -s converge|check|remove < program (got: ${1-nothing})" ;;
  esac
}
