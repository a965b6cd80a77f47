# --- the declared models (components/models) ---
# The fetcher (fetch.py) is root's, outside the tree; its state (what it hashed) is in a folder
# of the owner's outside the tree. It runs as the storage owner only: it downloads into the
# store, never follows a link there and never replaces a file; root never reads what it wrote.

# models_home: where the fetcher and its state live: the system's places for root, the user's
# own (XDG) places otherwise; MODELSHARE_MODELS_HOME puts both under one folder (the tests).
models_home() {
  if [ -n "${MODELSHARE_MODELS_HOME-}" ]; then
    models_lib=$MODELSHARE_MODELS_HOME/lib models_state=$MODELSHARE_MODELS_HOME/state
  elif [ "$EUID" -eq 0 ]; then
    # Not under /var/lib/modelshare: that folder is root's alone (0700), and the owner must
    # reach its state.
    models_lib=/usr/local/lib/modelshare models_state=/var/lib/modelshare-models
  else
    models_lib=${XDG_DATA_HOME:-$HOME/.local/share}/modelshare models_state=${XDG_STATE_HOME:-$HOME/.local/state}/modelshare/models
  fi
}

# models_tool SOURCE: the fetcher in place (root's 0644 in a folder of root's), python3 there.
# Sets models_current=yes when the installed fetcher is this program's.
models_current=no
models_tool() {
  models_home
  if [ "$EUID" -eq 0 ]; then ensure_packages python3; fi
  if [ ! -d "$models_lib" ]; then
    act "$models_lib is missing" "made $models_lib" install -d -m 0755 -- "$models_lib"
  fi
  if [ -L "$models_lib" ] || { [ -d "$models_lib" ] && [ "$(stat -c %u -- "$models_lib")" != "$EUID" ]; }; then
    refuse "$models_lib must be a real folder of uid $EUID (it holds the model fetcher, which the storage owner runs); remove what is there, then run again."
  fi
  install_file "$models_lib/fetch.py" 0644 "$1"
  if [ -f "$models_lib/fetch.py" ] && [ "$(cat -- "$models_lib/fetch.py")" = "$1" ]; then models_current=yes; fi
}

# models_use_intake (storage.intake: staging): the fetcher runs as modelshare-intake, the only
# account that writes the store then (the storage layout made it). A declared model is pinned
# by its hash, so it goes straight into the store, not through staging.
models_intake=no
models_use_intake() {
  id -u modelshare-intake >/dev/null 2>&1 || refuse "the account modelshare-intake is missing; converge the storage layout (storage.intake: staging makes it), then run again."
  models_intake=yes
}

# models_as FUNCTION [ARG...]: FUNCTION run as the fetcher's runner (models_owner).
models_as() {
  if [ "$models_intake" = yes ]; then
    models_owner
    run_as "$models_uid" "$models_gid" clear "$@"
  else
    as_owner "$@"
  fi
}

# models_owner: who runs the fetcher: modelshare-intake with staging; else as as_owner decides
# it: the storage owner; unmanaged, the root folder's owner (for root) or this user.
# shellcheck disable=SC2154 # owner_uid, owner_gid, storage_root: set by the program
models_owner() {
  if [ "$models_intake" = yes ]; then
    models_uid=$(id -u modelshare-intake) models_gid=$(id -g modelshare-intake)
    return 0
  fi
  models_uid=$owner_uid models_gid=$owner_gid
  [ -z "$models_uid" ] || return 0
  if [ "$EUID" -eq 0 ] && [ -d "$storage_root" ] && [ ! -L "$storage_root" ]; then
    read -r models_uid models_gid < <(stat -c '%u %g' -- "$storage_root")
  else
    models_uid=$EUID models_gid=$(id -g)
  fi
}

# models_state_dir: the state's folder, the fetcher's runner's (0700), in a parent of root's.
models_state_dir() {
  models_home
  models_owner
  if [ ! -d "$models_state" ] && [ ! -L "$models_state" ]; then
    if [ "$EUID" -eq 0 ]; then
      act "$models_state is missing" "made $models_state (the model fetcher's state, uid $models_uid's)" models_make_state
    else
      act "$models_state is missing" "made $models_state (the model fetcher's state)" install -d -m 0700 -- "$models_state"
    fi
    return 0
  fi
  if [ -L "$models_state" ] || [ ! -d "$models_state" ] || [ "$(stat -c '%u %a' -- "$models_state")" != "$models_uid 700" ]; then
    refuse "$models_state, the model fetcher's state folder, must be a real folder of uid $models_uid with mode 0700; remove what is there (it holds only hashes the fetcher can compute again), then run again."
  fi
}

# models_make_state (root): the parents root's (0755), the folder the runner's (0700).
# shellcheck disable=SC2154 # models_state, models_uid, models_gid: set by models_home, models_owner
models_make_state() {
  install -d -m 0755 -- "$(dirname -- "$models_state")"
  install -d -m 0700 -o "$models_uid" -g "$models_gid" -- "$models_state"
}

# models_fetch STORE JSON (converge): every declared model that is missing downloaded, verified
# and named, as the owner. Check fetches nothing: models_report says what converge would do.
models_fetch() {
  checking && return 0
  models_start "$1" || refuse "no model store at $1 (or a link there): converge the storage layout, then run again."
  models_as models_run fetch "$models_lib/fetch.py" "$models_use_state" "$1" "$2"
}

# models_report STORE JSON (check): each declared model present, missing, partial or different,
# as the owner, without the network.
models_report() {
  if [ "$models_current" != yes ]; then
    note "the model fetcher is not this version's: converge, then check again for the declared models."
    return 0
  fi
  if ! models_start "$1"; then
    note "no model store at $1 yet: the declared models are not there."
    return 0
  fi
  models_as models_run check "$models_lib/fetch.py" "$models_use_state" "$1" "$2"
}

# models_start STORE: the homes set, models_use_state the state folder when there is one (root
# only looks: the owner must be able to use it); fails when STORE is not a real folder.
models_start() {
  models_home
  models_use_state=""
  if [ -d "$models_state" ] && [ ! -L "$models_state" ]; then models_use_state=$models_state; fi
  [ -d "$1" ] && [ ! -L "$1" ]
}

# models_run VERB TOOL STATE STORE JSON (as the owner): the fetcher's rows, framed with a token
# of its own so that nothing else it prints passes for one. Converging, a fetched model is a
# change; checking, a missing or partial one is drift and every row goes to the report. What it
# says on stderr becomes notes; when it fails, its last line is the refusal, after every model
# was tried.
# shellcheck disable=SC2154 # new_frame: set by new_frame (prelude.sh)
models_run() {
  local -a state=()
  local out line code=0 tag last=""
  [ -z "$3" ] || state=(--state "$3")
  new_frame
  tag=$new_frame
  out=$(python3 -I "$2" --frame "$tag" "${state[@]}" "$1" "$4" "$5" 2>&1) || code=$?
  while IFS= read -r line; do
    case $line in
      "$tag report: "*) models_row "$1" "${line#"$tag report: "}" ;;
      '') ;;
      *)
        [ -z "$last" ] || note "$last"
        last=$line
        ;;
    esac
  done <<<"$out"
  if [ "$code" -ne 0 ]; then refuse "the model fetcher stopped: ${last:-exit $code}"; fi
  [ -z "$last" ] || note "$last"
}

# models_row VERB ROW: one row (`declared STATUS SIZE SHA PATH REASON`, escaped by the fetcher
# already: only its backslashes are kept as they are).
# shellcheck disable=SC2154 # escaped: set by escape_line (prelude.sh)
models_row() {
  local kind status size sha path
  read -r kind status size sha path _ <<<"$2"
  [ "$kind" = declared ] || return 0
  if [ "$1" = check ]; then
    escape_line "$2" "\\"
    emit report "$escaped"
    case $status in
      missing | partial)
        drifted=$((drifted + 1))
        escape_line "$path is $status: converge fetches it" "\\"
        emit drift "$escaped"
        ;;
    esac
  elif [ "$status" = fetched ]; then
    changed=$((changed + 1))
    escape_line "fetched $path ($size bytes, SHA-256 $sha)" "\\"
    emit changed "$escaped"
  fi
}

# models_remove: the fetcher goes; the models stay (they are the store's), and so does the state.
models_remove() {
  models_home
  if [ -f "$models_lib/fetch.py" ] && [ ! -L "$models_lib/fetch.py" ]; then
    act "the model fetcher $models_lib/fetch.py is there" "removed $models_lib/fetch.py" rm -f -- "$models_lib/fetch.py"
  fi
}
