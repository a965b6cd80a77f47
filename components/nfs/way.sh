# --- the way to an exported folder or a mount point: nothing on it the storage owner can swap ---
# The kernel resolves an export's path again at every `exportfs -r` (and at boot), systemd a
# mount point at every start: a folder on the way that the storage owner can write would let
# the owner rename the next one between converges and put a link in its place. So every folder
# on the way is a real folder that the owner cannot write (root's, 0755, as the storage layout
# makes the folders above the leaves); the last one may be the owner's: it is what is served.

# nfs_owner_ids REF: prints the storage owner's uid and its groups (the gid first): the
# program's owner, or (unmanaged) REF's owner, as as_owner takes it.
# shellcheck disable=SC2154 # owner_uid, owner_gid: set by the program
nfs_owner_ids() {
  local uid=$owner_uid gid=$owner_gid more
  if [ -z "$uid" ]; then
    [ -d "$1" ] || { echo ""; return 0; }
    read -r uid gid < <(stat -c '%u %g' -- "$1")
  fi
  more=$(id -G -- "$uid" 2>/dev/null || true)
  echo "$uid $gid $more"
}

# nfs_writes DIR UID GROUPS...: UID (holding GROUPS) may create, rename and remove names in
# DIR: it owns DIR (it may chmod it), or a group of its or everyone may write there.
nfs_writes() {
  local dir=$1 uid=$2 u g a
  shift 2
  read -r u g a < <(stat -c '%u %g %a' -- "$dir")
  [ "$u" = "$uid" ] || [ $((8#$a & 8#002)) != 0 ] || { [ $((8#$a & 8#020)) != 0 ] && [[ " $* " == *" $g "* ]]; }
}

# nfs_swappable DIR NEXT UID GROUPS...: UID could rename (or make first) NEXT, a name in DIR:
# it may write DIR, unless DIR is sticky (like /tmp), not UID's, and NEXT exists and is not
# UID's either.
nfs_swappable() {
  local dir=$1 next=$2 uid=$3
  nfs_writes "$dir" "${@:3}" || return 1
  [ -e "$next" ] || return 0
  [ "$(stat -c %u -- "$dir")" != "$uid" ] || return 0
  [ $((8#$(stat -c %a -- "$dir") & 8#1000)) = 0 ] || [ "$(stat -c %u -- "$next")" = "$uid" ]
}

# nfs_way PATH WHAT REF: every folder from / down to PATH is a real folder, and the storage
# owner (the program's, or REF's owner when unmanaged) can rename none of them. It stops at
# the first name that does not exist, in a folder the owner cannot write (the caller makes it,
# as root). An owner of uid 0 is root already: then only links are refused.
nfs_way() {
  local path=$1 what=$2 rest=${1#/} at="" parent=/ ids
  read -r -a ids < <(nfs_owner_ids "$3")
  while [ -n "$rest" ]; do
    at="${at}/${rest%%/*}"
    case $rest in */*) rest=${rest#*/} ;; *) rest="" ;; esac
    if [ -L "$at" ]; then
      refuse "$at, on the way to $what $path, is a symbolic link (to $(readlink -- "$at")); modelshare serves and mounts only real folders: put the real folder there, then run again."
    fi
    if [ "${#ids[@]}" -gt 0 ] && [ "${ids[0]}" != 0 ] && nfs_swappable "$parent" "$at" "${ids[@]}"; then
      refuse "$parent can be written by the storage owner (uid ${ids[0]}), who could rename $at, on the way to $what $path, and put a link in its place between converges; make the folders above the leaves root's (the storage layout does, with storage.owner: {uid, gid}) or move $path out of the owner's reach, then run again."
    fi
    [ -e "$at" ] || return 0
    [ -d "$at" ] || refuse "$at, on the way to $what $path, is not a folder; move it away, then run again."
    parent=$at
  done
}
