# --- folders ---
# Modes carry one leading 0 more than chmod needs ("00775"): GNU chmod keeps a folder's setgid
# bit under a plain 4-digit numeric mode.

# require_parent PATH KEY: the folder that holds PATH exists. modelshare never creates it: a
# missing parent usually means a volume that is not mounted, and models written there would
# fill the system disk instead.
require_parent() {
  local parent
  parent=$(dirname -- "$1")
  [ -d "$parent" ] || refuse "$parent does not exist, so $2 ($1) cannot be created in it; mount the volume or create $parent, then run again."
}

# ensure_root ROOT UID GID MODE KEY (privileged): the storage root is a real folder with that
# owner and mode. It is changed only from inside (enter_dir), so a link swapped in along the
# way cannot redirect the chown or chmod. Empty UID/GID leaves ownership alone.
ensure_root() {
  local root=$1 uid=$2 gid=$3 mode=$4 key=$5 fresh=no cur
  require_parent "$root" "$key"
  require_no_link "$root"
  if [ ! -e "$root" ]; then
    if [ -n "$uid" ] && [ "$(id -u)" -ne 0 ] && [ "$(id -u):$(id -g)" != "$uid:$gid" ]; then
      refuse "$root would have to belong to $uid:$gid, and only root can do that; run as root or set storage.owner to \"unmanaged\"."
    fi
    mkdir -m 0700 -- "$root" # private until it has its owner and mode
    did "created folder $root"
    fresh=yes
  fi
  [ -d "$root" ] || refuse "$root is a file, but modelshare keeps a folder there; move the file away, then run again."
  enter_dir "$root"
  cur=$(stat -c '%u:%g' .)
  if [ -n "$uid" ] && [ "$cur" != "$uid:$gid" ]; then
    [ "$(id -u)" -eq 0 ] || refuse "$root belongs to $cur, not $uid:$gid, and only root can change that; run as root or set storage.owner to \"unmanaged\"."
    chown -h -- "$uid:$gid" .
    [ "$fresh" = yes ] || did "owner of $root: $cur -> $uid:$gid"
  fi
  cur=$(stat -c '%a' .)
  if [ "$((8#$cur))" -ne "$((8#$mode))" ]; then
    chmod -- "$mode" .
    [ "$fresh" = yes ] || did "mode of $root: $cur -> $mode"
  fi
  cd /
}

# own_dirs UID GID PATH... (privileged): each managed folder that exists belongs to UID:GID.
# Only root can change an owner; it does so from inside the folder (`chown -h .`), never
# through a path. Missing folders are left to ensure_dir, links to its refusal.
own_dirs() {
  local uid=$1 gid=$2 path cur
  local -a found=()
  shift 2
  for path in "$@"; do
    if [ -d "$path" ] && [ ! -L "$path" ]; then found+=("$path"); fi
  done
  [ "${#found[@]}" -gt 0 ] || return 0
  while read -r cur path; do
    [ "$cur" != "$uid:$gid" ] || continue
    [ "$(id -u)" -eq 0 ] || refuse "$path belongs to $cur, not $uid:$gid, and only root can change that; run as root or set storage.owner to \"unmanaged\"."
    enter_dir "$path"
    chown -h -- "$uid:$gid" .
    cd /
    did "owner of $path: $cur -> $uid:$gid"
  done < <(stat -c '%u:%g %n' -- "${found[@]}")
}

# ensure_dir PATH MODE (as the owner): PATH is a real folder with that mode; no component of it
# is a link.
ensure_dir() {
  local path=$1 mode=$2 cur
  require_no_link "$path"
  if [ -e "$path" ] && [ ! -d "$path" ]; then
    refuse "$path is a file, but modelshare keeps a folder there; move the file away, then run again."
  fi
  if [ ! -d "$path" ]; then
    mkdir -m "$mode" -- "$path"
    chmod -- "$mode" "$path" # a setgid parent would otherwise pass its bit on
    did "created folder $path"
    return 0
  fi
  cur=$(stat -c '%a' -- "$path")
  if [ "$((8#$cur))" -ne "$((8#$mode))" ]; then
    chmod -- "$mode" "$path"
    did "mode of $path: $cur -> $mode"
  fi
}
