# --- the intake (components/intake; storage.intake: staging) ---
# Root only orchestrates: the service runs intake.py as root, which never opens a name in the
# tree itself; it lists and judges each upload as the storage owner, copies it into the store as
# modelshare-intake (who judges its own copy again before it takes a name there), and settles
# the upload (removed, or moved to rejected with a reason file) as the owner.

intake_lib=/usr/local/lib/modelshare

# intake_tool SOURCE: the tool in place beside the catalog's (root's 0644 in a folder of root's);
# it judges with catalog.py, which the catalog concern puts there.
intake_tool() {
  if [ ! -d "$intake_lib" ] || [ -L "$intake_lib" ] || [ "$(stat -c %u -- "$intake_lib")" != "$EUID" ]; then
    checking || refuse "$intake_lib, where the catalog tool lives, is missing or not uid $EUID's: converge the catalog (catalog.enabled: true), then run again."
  fi
  install_file "$intake_lib/intake.py" 0644 "$1"
  [ -f "$intake_lib/catalog.py" ] || checking || refuse "$intake_lib/catalog.py is missing; the intake judges uploads with it: converge the catalog (catalog.enabled: true), then run again."
}

# intake_config CONFIG: /etc/modelshare/intake.json, with the intake account's ids filled in
# (the storage layout made the account).
intake_config() {
  local uid gid text=$1
  if ! id -u modelshare-intake >/dev/null 2>&1; then
    checking || refuse "the account modelshare-intake is missing; converge the storage layout (storage.intake: staging makes it), then run again."
    drift "the account modelshare-intake is missing"
    return 0
  fi
  uid=$(id -u modelshare-intake) gid=$(id -g modelshare-intake)
  text=${text//@intake_uid@/$uid}
  text=${text//@intake_gid@/$gid}
  ensure_system_dir /etc/modelshare
  install_file /etc/modelshare/intake.json 0644 "$text"
}

# intake_units SERVICE TIMER: the service and the timer that starts it every half minute.
intake_units() {
  ensure_unit modelshare-intake.service "$1"
  ensure_unit modelshare-intake.timer "$2"
  ensure_service modelshare-intake.timer
}

# intake_remove: the timer, the service, the config and the tool go; the account, the staging
# and rejected folders and every model stay.
intake_remove() {
  remove_unit modelshare-intake.timer
  remove_unit modelshare-intake.service
  remove_file /etc/modelshare/intake.json
  remove_system_dir /etc/modelshare
  remove_file "$intake_lib/intake.py"
}

# intake_report STABLE [CATEGORY STAGING STORE]... (check, as the owner): each upload still in a
# staging folder, as `report: staging STATUS SIZE CATEGORY/NAME REASON` (the path escaped, its
# spaces as \x20): held when the store has that name already (the intake never replaces it),
# stuck when it settled long enough ago that the intake should have taken it, waiting otherwise.
# shellcheck disable=SC2154 # escaped: set by escape_line (prelude.sh)
intake_report() {
  local stable=$1 now entry size mtime name category staging store status why path
  shift
  now=$(date +%s)
  while [ "$#" -ge 3 ]; do
    category=$1 staging=$2 store=$3
    shift 3
    if [ ! -d "$staging" ] || [ -L "$staging" ]; then continue; fi
    while IFS= read -r -d '' entry; do
      size=${entry%% *} entry=${entry#* }
      mtime=${entry%% *} name=${entry#* }
      mtime=${mtime%.*}
      if [ $((now - mtime)) -lt "$stable" ]; then
        status=waiting why="still being written (changed in the last ${stable}s)"
      elif [ -e "$store/$name" ] || [ -L "$store/$name" ]; then
        status=held why="the store already has this name with other content, and the intake never replaces a model: rename the upload, or remove the store's file"
      elif [ $((now - mtime)) -gt $((stable + 300)) ]; then
        status=stuck why="settled over 5 minutes ago and still here: an incomplete upload waits up to an hour for the rest; otherwise see journalctl -u modelshare-intake"
      else
        status=waiting why="settled: the intake takes it within a minute"
      fi
      escape_line "$category/$name"
      path=${escaped// /\\x20}
      escape_line "$why"
      emit report "staging $status $size $path $escaped"
    done < <(find -P "$staging" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%s %T@ %f\0' 2>/dev/null)
  done
}
