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

# require_safe_ancestors ROOT UID GID (privileged): no folder above ROOT can be changed by the
# storage owner UID:GID, or the owner could move the whole tree away and put a link in its place
# (every export, share and bind source would then lead wherever the link points). Writable by
# all is fine only with the sticky bit (/tmp): then only a name's owner may move it. UID empty
# or 0 (unmanaged, or root as the owner): there is no one to keep out.
require_safe_ancestors() {
  local at=$1 uid=$2 gid=$3 u g m
  [ -n "$uid" ] && [ "$uid" != 0 ] || return 0
  while [ "$at" != / ]; do
    at=$(dirname -- "$at")
    [ -e "$at" ] || continue # ensure_root names a missing parent
    read -r u g m < <(stat -c '%u %g %a' -- "$at")
    if [ "$u" = "$uid" ] || { [ "$g" = "$gid" ] && ((8#$m & 8#020)); } || { ((8#$m & 8#002)) && ! ((8#$m & 8#1000)); }; then
      refuse "$at, above the storage root, can be changed by the storage owner $uid:$gid (it belongs to $u:$g, mode $m), who could then move the storage tree away and put a link in its place; make it root's and writable by root alone (chown root:root $at; chmod go-w $at), then run again."
    fi
  done
}

# ensure_root ROOT UID GID MODE KEY (privileged): the storage root is a real folder with that
# owner and mode (its parent must exist). Empty UID/GID leaves ownership alone.
ensure_root() {
  require_parent "$1" "$5"
  if [ ! -e "$1" ] && [ ! -L "$1" ] && [ -n "$2" ] && [ "$EUID" -ne 0 ] && [ "$EUID:$(id -g)" != "$2:$3" ]; then
    refuse "$1 would have to belong to $2:$3, and only root can do that; run as root or set storage.owner to \"unmanaged\"."
  fi
  ensure_held_dir "$1" "$2" "$3" "$4"
}

# ensure_tree UID GID [PATH HOLDER MODE]... (privileged, parents first): each folder is a real
# folder with its holder and mode. HOLDER root: the skeleton above the leaves (and code), root's,
# so that the storage owner can never rename, replace or add a name in it; owner: a leaf, UID:GID's.
# Each is made and changed by root from inside (enter_dir), and only once its parent is root's
# (parents come first), so no name on the way can be swapped meanwhile. UID empty (owner
# unmanaged): ownership stays with whoever runs the program.
#
# One stat first reads every folder that is there: one that is a real folder (no link on its
# way) with its holder and mode already is left alone, unentered. A folder that is not as it
# should be, or whose name is a link (stat reads the link itself, not where it leads), takes
# the careful way. Nothing is changed on what that stat read, so a name swapped meanwhile can
# only leave a folder unrepaired until the next run, never have root act through it.
ensure_tree() {
  local uid=$1 gid=$2 i path holder mode want line
  local -a existing=()
  local -A known=()
  shift 2
  for ((i = 1; i < $#; i += 3)); do
    path=${!i}
    if [ -d "$path" ] && [ ! -L "$path" ]; then existing+=("$path"); fi
  done
  if [ "${#existing[@]}" -gt 0 ]; then
    # Split by hand: read would drop a space that ends a name (a root may end in one).
    while IFS= read -r line; do
      path=${line#* } path=${path#* }
      known[$path]=${line%" $path"}
    done < <(stat -c '%u:%g %a %n' -- "${existing[@]}" 2>/dev/null)
  fi
  while [ "$#" -ge 3 ]; do
    if [ -z "$uid" ]; then
      want=""
    elif [ "$2" = root ]; then
      want=0:0
    else
      want=$uid:$gid
    fi
    holder=${known[$1]-} mode=${holder#* } holder=${holder%% *}
    if [ -n "${known[$1]-}" ] && { [ -z "$want" ] || [ "$holder" = "$want" ]; } && [ "$((8#$mode))" -eq "$((8#$3))" ]; then
      require_no_link "$1"
    else
      ensure_held_dir "$1" "${want%:*}" "${want#*:}" "$3"
    fi
    shift 3
  done
}

# ensure_held_dir PATH UID GID MODE (privileged): PATH is a real folder of UID:GID with MODE,
# changed only from inside (enter_dir), so a link swapped in along the way cannot redirect the
# chown or chmod. A missing one is made private, then given its owner and mode from inside.
ensure_held_dir() {
  local path=$1 uid=$2 gid=$3 mode=$4 cur
  require_no_link "$path"
  if [ ! -e "$path" ]; then
    act "folder $path is missing" "created folder $path" make_held_dir "$path" "$uid" "$gid" "$mode"
    return 0
  fi
  [ -d "$path" ] || refuse "$path is a file, but modelshare keeps a folder there; move the file away, then run again."
  enter_dir "$path"
  cur=$(stat -c '%u:%g' .)
  if [ -n "$uid" ] && [ "$cur" != "$uid:$gid" ]; then
    [ "$EUID" -eq 0 ] || checking || refuse "$path belongs to $cur, not $uid:$gid, and only root can change that; run as root or set storage.owner to \"unmanaged\"."
    act "$path belongs to $cur, not $uid:$gid" "owner of $path: $cur -> $uid:$gid" chown -h -- "$uid:$gid" .
  fi
  cur=$(stat -c '%a' .)
  if [ "$((8#$cur))" -ne "$((8#$mode))" ]; then
    act "the mode of $path is $(shown_mode "$cur"), not $(shown_mode "$mode")" "mode of $path: $(shown_mode "$cur") -> $(shown_mode "$mode")" chmod -- "$mode" .
  fi
  cd /
}

make_held_dir() {
  mkdir -m 0700 -- "$1" 2>/dev/null || changed_meanwhile "$1"
  enter_dir "$1"
  if [ -n "$2" ]; then chown -h -- "$2:$3" .; fi
  chmod -- "$4" .
  cd /
}

# shown_mode MODE: a mode as people write it, four digits ("00755" and "755" are 0755).
shown_mode() { printf '%04o' "$((8#$1))"; }

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
    act "the mode of $path is $(shown_mode "$cur"), not $(shown_mode "$mode")" "mode of $path: $(shown_mode "$cur") -> $(shown_mode "$mode")" chmod_inside "$path" "$mode"
  fi
}

# ensure_dirs PATH MODE [PATH MODE]... (as the owner): ensure_dir for each, in the order given
# (parents first), reading the modes of those that exist with one stat.
ensure_dirs() {
  local i path mode line
  local -a existing=()
  local -A known=()
  for ((i = 1; i < $#; i += 2)); do
    path=${!i}
    if [ -d "$path" ] && [ ! -L "$path" ]; then existing+=("$path"); fi
  done
  if [ "${#existing[@]}" -gt 0 ]; then
    while IFS= read -r line; do known[${line#* }]=${line%% *}; done < <(stat -c '%a %n' -- "${existing[@]}" 2>/dev/null)
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
