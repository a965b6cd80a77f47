# --- folders ---
# ensure_dir PATH UID GID MODE: PATH is a real folder with that owner and mode. Empty UID/GID
# leaves ownership alone. MODE has a leading 0 digit more than chmod needs ("00775") because
# GNU chmod keeps a folder's setgid bit under a plain 4-digit numeric mode.
ensure_dir() {
  local path=$1 uid=$2 gid=$3 mode=$4 cur
  if [ -L "$path" ]; then
    refuse "$path is a symbolic link, but modelshare keeps a real folder there; point the config at the real folder (for storage.root: the link's target), or move the link away, then run again."
  fi
  if [ -e "$path" ] && [ ! -d "$path" ]; then
    refuse "$path is a file, but modelshare keeps a folder there; move the file away, then run again."
  fi
  if [ ! -d "$path" ]; then
    if [ -n "$uid" ] && [ "$(id -u)" -ne 0 ] && [ "$(id -u):$(id -g)" != "$uid:$gid" ]; then
      refuse "$path would have to belong to $uid:$gid, and only root can do that; run as root or set storage.owner to \"unmanaged\"."
    fi
    mkdir -m "$mode" -- "$path"
    [ -z "$uid" ] || chown -- "$uid:$gid" "$path"
    chmod -- "$mode" "$path" # a setgid parent would otherwise pass its bit on
    did "created folder $path"
    return 0
  fi
  if [ -n "$uid" ]; then
    cur=$(stat -c '%u:%g' -- "$path")
    if [ "$cur" != "$uid:$gid" ]; then
      if [ "$(id -u)" -ne 0 ]; then
        refuse "$path belongs to $cur, not $uid:$gid, and only root can change that; run as root or set storage.owner to \"unmanaged\"."
      fi
      chown -- "$uid:$gid" "$path"
      did "owner of $path: $cur -> $uid:$gid"
    fi
  fi
  cur=$(stat -c '%a' -- "$path")
  if [ "$((8#$cur))" -ne "$((8#$mode))" ]; then
    chmod -- "$mode" "$path"
    did "mode of $path: $cur -> $mode"
  fi
}

# require_parent PATH KEY: the folder that holds PATH exists. modelshare never creates it: a
# missing parent usually means a volume that is not mounted, and models written there would
# fill the system disk instead.
require_parent() {
  local parent
  parent=$(dirname -- "$1")
  [ -d "$parent" ] || refuse "$parent does not exist, so $2 ($1) cannot be created in it; mount the volume or create $parent, then run again."
}
