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
  local root=$1 uid=$2 gid=$3 mode=$4 key=$5 cur
  require_parent "$root" "$key"
  require_no_link "$root"
  if [ ! -e "$root" ]; then
    if [ -n "$uid" ] && [ "$EUID" -ne 0 ] && [ "$EUID:$(id -g)" != "$uid:$gid" ]; then
      refuse "$root would have to belong to $uid:$gid, and only root can do that; run as root or set storage.owner to \"unmanaged\"."
    fi
    # Made private, then given its owner and mode from inside; it counts as one change.
    act "the storage root $root is missing" "created folder $root" make_root "$root" "$uid" "$gid" "$mode"
    return 0
  fi
  [ -d "$root" ] || refuse "$root is a file, but modelshare keeps a folder there; move the file away, then run again."
  enter_dir "$root"
  cur=$(stat -c '%u:%g' .)
  if [ -n "$uid" ] && [ "$cur" != "$uid:$gid" ]; then
    [ "$EUID" -eq 0 ] || checking || refuse "$root belongs to $cur, not $uid:$gid, and only root can change that; run as root or set storage.owner to \"unmanaged\"."
    act "$root belongs to $cur, not $uid:$gid" "owner of $root: $cur -> $uid:$gid" chown -h -- "$uid:$gid" .
  fi
  cur=$(stat -c '%a' .)
  if [ "$((8#$cur))" -ne "$((8#$mode))" ]; then
    act "the mode of $root is $cur, not $mode" "mode of $root: $cur -> $mode" chmod -- "$mode" .
  fi
  cd /
}

make_root() {
  mkdir -m 0700 -- "$1" 2>/dev/null || changed_meanwhile "$1"
  enter_dir "$1"
  if [ -n "$2" ]; then chown -h -- "$2:$3" .; fi
  chmod -- "$4" .
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
    [ "$EUID" -eq 0 ] || checking || refuse "$path belongs to $cur, not $uid:$gid, and only root can change that; run as root or set storage.owner to \"unmanaged\"."
    act "$path belongs to $cur, not $uid:$gid" "owner of $path: $cur -> $uid:$gid" chown_inside "$path" "$uid:$gid"
  done < <(stat -c '%u:%g %n' -- "${found[@]}" 2>/dev/null) # one gone meanwhile: ensure_dir sees to it
}

chown_inside() {
  enter_dir "$1"
  chown -h -- "$2" .
  cd /
}

# ensure_dir PATH MODE [KNOWN] (as the owner): PATH is a real folder with that mode; no component
# of it is a link. KNOWN: its mode as ensure_dirs read it, saving a stat.
ensure_dir() {
  local path=$1 mode=$2 cur=${3-}
  require_no_link "$path"
  if [ -e "$path" ] && [ ! -d "$path" ]; then
    refuse "$path is a file, but modelshare keeps a folder there; move the file away, then run again."
  fi
  if [ ! -d "$path" ]; then
    act "folder $path is missing" "created folder $path" make_dir "$path" "$mode"
    return 0
  fi
  [ -n "$cur" ] || cur=$(stat -c '%a' -- "$path" 2>/dev/null) || changed_meanwhile "$path"
  if [ "$((8#$cur))" -ne "$((8#$mode))" ]; then
    act "the mode of $path is $cur, not $mode" "mode of $path: $cur -> $mode" chmod_inside "$path" "$mode"
  fi
}

# ensure_dirs PATH MODE [PATH MODE]... (as the owner): ensure_dir for each, in the order given
# (parents first), reading the modes of those that exist with one stat.
ensure_dirs() {
  local i path mode
  local -a existing=()
  local -A known=()
  for ((i = 1; i < $#; i += 2)); do
    path=${!i}
    if [ -d "$path" ] && [ ! -L "$path" ]; then existing+=("$path"); fi
  done
  if [ "${#existing[@]}" -gt 0 ]; then
    while read -r mode path; do known[$path]=$mode; done < <(stat -c '%a %n' -- "${existing[@]}" 2>/dev/null)
  fi
  while [ "$#" -gt 0 ]; do
    ensure_dir "$1" "$2" "${known[$1]-}"
    shift 2
  done
}

make_dir() {
  mkdir -m "$2" -- "$1" 2>/dev/null || changed_meanwhile "$1"
  chmod_inside "$1" "$2" # a setgid parent would otherwise pass its bit on
}
