# --- the model catalog (components/catalog) ---
# The tool (catalog.py) is root's, outside the tree; its index is in a folder of the owner's
# outside the tree. The tool runs as the owner only: it opens every name in the store without
# following links and never unpickles, and root never reads what it wrote (a planted index can
# only lie to the report, never make root act).

# catalog_home: where the tool and the index live: the system's places for root, the user's own
# (XDG) places otherwise; MODELSHARE_CATALOG_HOME puts both under one folder (the tests).
catalog_home() {
  if [ -n "${MODELSHARE_CATALOG_HOME-}" ]; then
    catalog_lib=$MODELSHARE_CATALOG_HOME/lib catalog_state=$MODELSHARE_CATALOG_HOME/state
  elif [ "$EUID" -eq 0 ]; then
    # Not under /var/lib/modelshare: that folder is root's alone (0700: the SMB passwords'
    # state), and the owner must reach the index.
    catalog_lib=/usr/local/lib/modelshare catalog_state=/var/lib/modelshare-catalog
  else
    catalog_lib=${XDG_DATA_HOME:-$HOME/.local/share}/modelshare catalog_state=${XDG_STATE_HOME:-$HOME/.local/state}/modelshare/catalog
  fi
}

# catalog_tool SOURCE: the tool in place (root's 0644 in a folder of root's), python3 there.
# Sets catalog_current=yes when the installed tool is this program's.
catalog_current=no
catalog_tool() {
  catalog_home
  if [ "$EUID" -eq 0 ]; then ensure_packages python3; fi
  if [ ! -d "$catalog_lib" ]; then
    act "$catalog_lib is missing" "made $catalog_lib" install -d -m 0755 -- "$catalog_lib"
  fi
  if [ -L "$catalog_lib" ] || { [ -d "$catalog_lib" ] && [ "$(stat -c %u -- "$catalog_lib")" != "$EUID" ]; }; then
    refuse "$catalog_lib must be a real folder of uid $EUID (it holds the catalog tool, which the storage owner runs); remove what is there, then run again."
  fi
  install_file "$catalog_lib/catalog.py" 0644 "$1"
  if [ -f "$catalog_lib/catalog.py" ] && [ "$(cat -- "$catalog_lib/catalog.py")" = "$1" ]; then catalog_current=yes; fi
}

# catalog_owner: who runs the tool, as as_owner decides it: the storage owner; unmanaged, the
# root folder's owner (for root) or this user.
# shellcheck disable=SC2154 # owner_uid, owner_gid, storage_root: set by the program
catalog_owner() {
  catalog_uid=$owner_uid catalog_gid=$owner_gid
  [ -z "$catalog_uid" ] || return 0
  if [ "$EUID" -eq 0 ] && [ -d "$storage_root" ] && [ ! -L "$storage_root" ]; then
    read -r catalog_uid catalog_gid < <(stat -c '%u %g' -- "$storage_root")
  else
    catalog_uid=$EUID catalog_gid=$(id -g)
  fi
}

# catalog_index: the index's folder, the tool's runner's (0700), in a parent of root's: the
# owner writes its index there and nowhere else outside the tree.
catalog_index() {
  catalog_home
  catalog_owner
  if [ ! -d "$catalog_state" ] && [ ! -L "$catalog_state" ]; then
    if [ "$EUID" -eq 0 ]; then
      act "$catalog_state is missing" "made $catalog_state (the catalog's index, uid $catalog_uid's)" catalog_make_index
    else
      act "$catalog_state is missing" "made $catalog_state (the catalog's index)" install -d -m 0700 -- "$catalog_state"
    fi
    return 0
  fi
  if [ -L "$catalog_state" ] || [ ! -d "$catalog_state" ] || [ "$(stat -c '%u %a' -- "$catalog_state")" != "$catalog_uid 700" ]; then
    refuse "$catalog_state, the catalog's index folder, must be a real folder of uid $catalog_uid with mode 0700; remove what is there (it holds only hashes the catalog can compute again), then run again."
  fi
}

# catalog_make_index (root): the parents root's (0755), the folder the runner's (0700).
# shellcheck disable=SC2154 # catalog_state, catalog_uid, catalog_gid: set by catalog_home, catalog_owner
catalog_make_index() {
  install -d -m 0755 -- "$(dirname -- "$catalog_state")"
  install -d -m 0700 -o "$catalog_uid" -g "$catalog_gid" -- "$catalog_state"
}

# catalog_report STORE STABLE_SECONDS (check): every model judged and hashed, as the owner.
# shellcheck disable=SC2154 # storage_root: set by the program
catalog_report() {
  catalog_home
  if [ "$catalog_current" != yes ]; then
    note "the catalog tool in $catalog_lib is not this version's: converge, then check again for the model report."
    return 0
  fi
  if [ ! -d "$1" ] || [ -L "$1" ]; then
    note "no model store at $1 yet: nothing to catalogue."
    return 0
  fi
  # Root looks for the index's folder (check makes nothing): without one, the run reads every
  # file and keeps nothing; with one, the owner must be able to use it, or the run stops.
  local index=""
  if [ -d "$catalog_state" ] && [ ! -L "$catalog_state" ]; then index=$catalog_state/index.json; fi
  as_owner catalog_scan "$catalog_lib/catalog.py" "$index" "$1" "$2"
}

# catalog_dedupe STORE STABLE_SECONDS (check): the scan of catalog_report, then every duplicate
# name of a model linked to one file (catalog.py --dedupe), as the owner: never root, so a
# name planted in the tree can only make it touch what the owner could touch anyway. It needs
# the index (its lock keeps two runs apart), so it never makes one.
catalog_dedupe() {
  catalog_home
  if [ "$catalog_current" != yes ]; then
    refuse "the catalog tool in $catalog_lib is not this version's: converge first, then dedupe."
  fi
  if [ ! -d "$1" ] || [ -L "$1" ]; then
    note "no model store at $1 yet: nothing to dedupe."
    return 0
  fi
  if [ ! -d "$catalog_state" ] || [ -L "$catalog_state" ]; then
    refuse "no catalog index folder at $catalog_state: run npm run check once first."
  fi
  as_owner catalog_scan "$catalog_lib/catalog.py" "$catalog_state/index.json" "$1" "$2" --dedupe
}

# catalog_scan TOOL INDEX STORE STABLE_SECONDS [OPTION...] (as the owner): the tool's framed
# rows, with the index file INDEX (none when empty) and the tool's OPTIONs (--dedupe).
# shellcheck disable=SC2154 # frame: set by the prelude (the child's own, as the owner)
catalog_scan() {
  local -a index=()
  local said line
  [ -z "$2" ] || index=(--index "$2")
  # Its rows go straight out; what it says on stderr becomes notes, or the refusal's reason.
  if ! { said=$(python3 -I "$1" --frame "$frame" --stable-seconds "$4" "${index[@]}" "${@:5}" "$3" 2>&1 >&3 3>&-); } 3>&1; then
    refuse "the catalog stopped: ${said##*$'\n'}"
  fi
  [ -z "$said" ] || while IFS= read -r line; do note "$line"; done <<<"$said"
}

# catalog_remove: the tool goes; the index stays (hashes of the models, which stay too).
catalog_remove() {
  catalog_home
  if [ -f "$catalog_lib/catalog.py" ] && [ ! -L "$catalog_lib/catalog.py" ]; then
    act "the catalog tool $catalog_lib/catalog.py is there" "removed $catalog_lib/catalog.py" rm -f -- "$catalog_lib/catalog.py"
  fi
}
