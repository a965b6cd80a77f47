# --- a ComfyUI checkout pointed at the shared folders (root checks; the checkout's files are
# written as its owner; models are moved by a uid that is not root: the checkout's owner, or,
# for a checkout of root's, the storage owner after root handed them over) ---

# comfyui_checkout PATH BASE: PATH is a real ComfyUI checkout (main.py, folder_paths.py) outside
# the shared storage BASE; sets comfyui_uid/comfyui_gid to its owner, as whom everything in it
# is done.
comfyui_uid='' comfyui_gid=''
comfyui_checkout() {
  require_no_link "$1"
  if [ ! -f "$1/main.py" ] || [ ! -f "$1/folder_paths.py" ]; then
    refuse "$1 is not a ComfyUI checkout (no main.py and folder_paths.py there); fix comfyui.installs[].path, then run again."
  fi
  comfyui_outside "$2" "$1" "the checkout"
  read -r comfyui_uid comfyui_gid < <(stat -c '%u %g' -- "$1")
}

# comfyui_outside BASE PATH WHAT: code (WHAT at PATH) never resolves into the shared storage,
# where SMB users and containers write: the config rules see the spelling, this the links.
comfyui_outside() {
  local tree real
  tree=$(readlink -f -- "$1" 2>/dev/null) || return 0
  real=$(readlink -f -- "$2" 2>/dev/null) || return 0
  [ -n "$tree" ] && [ -n "$real" ] || return 0
  case $real/ in
    "$tree"/*) refuse "$3 ($2) resolves to $real, inside the shared storage $1, where SMB users and containers write: code there would run as ComfyUI. Keep it apart from the data (e.g. under /opt), then run again." ;;
  esac
}

# comfyui_as FUNCTION ARG...: FUNCTION as the checkout's owner, with its groups (its way into
# the shared store is the storage owner's group, or being that owner).
comfyui_as() {
  if [ "$EUID" = "$comfyui_uid" ]; then "$@"; else run_as "$comfyui_uid" "$comfyui_gid" init "$@"; fi
}

# comfyui_code_dir DIR BASE (root): DIR, the shared custom_nodes folder, holds code every
# ComfyUI that names it imports. It is named only if no one but root can change it or any
# folder from BASE down to it (the layout makes them root's, 0755): never SMB users, containers
# or the storage owner.
comfyui_code_dir() {
  local dir=$1 base=$2 path=$2 rest meta
  require_no_link "$dir"
  [ -d "$dir" ] || refuse "$dir, the shared custom_nodes folder (comfyui.sharedCustomNodes), is missing; converge the storage layout first, then run again."
  rest=${dir#"$base"}
  while :; do
    meta=$(stat -c '%u %a' -- "$path")
    if [ "${meta% *}" != 0 ] || [ $((8#${meta#* } & 8#022)) -ne 0 ]; then
      refuse "$path is $(stat -c '%U:%G %a' -- "$path"), so others than root can change what is in $dir, code every ComfyUI that names it would import; modelshare names it only when root alone can write it and every folder above it (storage.owner as {uid, gid}: the layout makes them root's, 0755). Fix the owner and mode, or set comfyui.sharedCustomNodes to false, then run again."
    fi
    [ -n "$rest" ] || break
    rest=${rest#/}
    path=$path/${rest%%/*}
    case $rest in */*) rest=${rest#*/} ;; *) rest="" ;; esac
  done
}

# comfyui_paths CHECKOUT SECTION_JSON BASE PYTHON...: extra_model_paths.yaml holds modelshare's
# section (read and written with a YAML library: ruamel.yaml keeps the admin's comments, PyYAML
# does not and the run says so), the admin's sections as they were. Invalid YAML of theirs stops
# the run with the parser's words; the file is never overwritten then. A Python (or its
# environment) that resolves into the shared storage BASE is refused before it ever runs.
comfyui_paths() {
  local checkout=$1 section=$2 base=$3 file=$1/extra_model_paths.yaml py="" candidate new said
  shift 3
  for candidate in "$@"; do
    if [ -x "$candidate" ] || command -v -- "$candidate" >/dev/null 2>&1; then
      comfyui_outside "$base" "$(command -v -- "$candidate")" "the Python $candidate"
      case $candidate in */bin/*) comfyui_outside "$base" "${candidate%/bin/*}" "the Python environment of $candidate" ;; esac
      if "$candidate" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("ruamel") or u.find_spec("yaml") else 1)' 2>/dev/null; then
        py=$candidate
        break
      fi
    fi
  done
  [ -n "$py" ] || refuse "no Python with a YAML library (ruamel.yaml or PyYAML) among: $*; ComfyUI's own environment has PyYAML: set comfyui.installs[].python to its python, then run again."
  [ ! -L "$file" ] || refuse "$file is a symbolic link; modelshare writes that file itself: replace the link by the file, then run again."
  # Checking writes nothing in the checkout: the candidate goes to a private temp file.
  if checking; then new=$(mktemp); else new=$(mktemp -- "$file.modelshare-XXXXXX"); fi
  if ! said=$("$py" - "$file" "$section" "$new" <<'PY' 2>&1
import json, os, sys
path, section, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
try:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    yaml, kept = YAML(), True
    load, dump = yaml.load, lambda data, f: yaml.dump(data, f)
except ImportError:
    import yaml as pyyaml
    from yaml import YAMLError
    kept = False
    load = pyyaml.safe_load
    dump = lambda data, f: pyyaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
try:
    data = load(text) if text.strip() else None
except YAMLError as e:
    sys.exit(f"{path} is not valid YAML, so modelshare leaves it as it is: {e}")
if data is None:
    data = {}
if not isinstance(data, dict):
    sys.exit(f"{path} does not hold sections (its top level is not a mapping), so modelshare leaves it as it is")
if section is None:
    data.pop("modelshare", None)
else:
    # ComfyUI's loader before utils/extra_config.py split every value as text: is_default would
    # stop it at start. Such a checkout gets the section without it (its own folders come first).
    if not os.path.exists(os.path.join(os.path.dirname(path), "utils", "extra_config.py")) and section.pop("is_default", None) is not None:
        print("note: " + os.path.dirname(path) + " predates ComfyUI's is_default (it has no utils/extra_config.py): its own models folders stay first for downloads; update the checkout to have them land in the shared store")
    data["modelshare"] = section
with open(out, "w", encoding="utf-8") as f:
    dump(data, f)
if not kept and "#" in text:
    print("note: PyYAML does not keep comments: the comments in " + path + " are gone (a copy of the file is beside it); install ruamel.yaml to keep them")
PY
  ); then
    rm -f -- "$new"
    refuse "$said"
  fi
  if [ -f "$file" ] && cmp -s -- "$new" "$file"; then
    rm -f -- "$new"
    return 0
  fi
  if checking; then
    rm -f -- "$new"
    drift "$file lacks modelshare's section as the config gives it"
    return 0
  fi
  local line
  [ -z "$said" ] || while IFS= read -r line; do note "$line"; done <<<"$said"
  # The admin's file as it was before modelshare first wrote it.
  if [ -f "$file" ] && [ ! -e "$file.modelshare-backup" ]; then cp -p -- "$file" "$file.modelshare-backup"; fi
  chmod --reference="$checkout" -- "$new" 2>/dev/null && chmod a-x -- "$new"
  mv -fT -- "$new" "$file"
  did "wrote modelshare's section in $file"
}

# comfyui_no_paths CHECKOUT BASE PYTHON...: destroy: modelshare's section goes, the rest stays.
comfyui_no_paths() {
  local file=$1/extra_model_paths.yaml
  if [ ! -f "$file" ] || [ -L "$file" ] || ! grep -q '^modelshare:' -- "$file"; then return 0; fi
  local checkout=$1 base=$2
  shift 2
  comfyui_paths "$checkout" null "$base" "$@"
}

# comfyui_migrate STORE FOLDER:CATEGORY... (root): models in the checkout's own models/FOLDER
# move into STORE/CATEGORY by the merge rules (a name with other content on both sides stops the
# run, nothing moved); the folder and ComfyUI's put_*_here placeholders stay, for git, and stay
# the checkout owner's. Root never moves them itself: STORE/CATEGORY is the storage owner's,
# who can rename names in it at any moment. A checkout of another user's: that user moves them
# (comfyui_move). A checkout of root's: root hands them to the storage owner inside the
# checkout, which moves them (comfyui_take_over).
# shellcheck disable=SC2154 # owner_*: set by the program
comfyui_migrate() {
  local store=$1 pair uid=$owner_uid gid=$owner_gid
  shift
  if [ "$comfyui_uid" != 0 ] || [ "$EUID" -ne 0 ]; then
    comfyui_as comfyui_move "$store" "$@"
    return 0
  fi
  # unmanaged: whoever owns the store
  if [ -z "$uid" ]; then read -r uid gid < <(stat -c '%u %g' -- "$store"); fi
  if [ "$uid" = 0 ]; then # root's own store: no other uid to guard against
    comfyui_move "$store" "$@"
    return 0
  fi
  for pair in "$@"; do comfyui_take_over "${pair%%:*}" "$store/${pair#*:}" "$uid" "$gid"; done
}

# comfyui_models SRC: SRC holds models (anything but the placeholders and a hand-over folder).
comfyui_models() {
  [ -n "$(find -P "$1" -mindepth 1 -maxdepth 1 ! -name 'put_*_here' ! -name .modelshare-handover -print -quit)" ]
}

# comfyui_move STORE FOLDER:CATEGORY... (as the checkout's owner, who owns SRC and can write
# STORE through the storage owner's group, or is that owner).
comfyui_move() {
  local store=$1 pair src dest
  shift
  for pair in "$@"; do
    src=${pair%%:*} dest=$store/${pair#*:}
    if [ ! -d "$src" ] || [ -L "$src" ]; then continue; fi
    comfyui_models "$src" || continue
    [ -w "$dest" ] || refuse "the checkout's owner ($EUID) cannot write $dest, so the models in $src cannot move there; put that user in the storage owner's group, then run again."
    if checking; then
      drift "$src holds models; converge moves them into $dest"
      continue
    fi
    merge_into "$src" "$dest" 'put_*_here'
    did "moved the models in $src into $dest"
  done
}

# comfyui_take_over SRC DEST UID GID (root; SRC in a checkout of root's): the storage owner
# UID:GID compares first (nothing moved on a conflict); root hands the models over inside SRC
# (comfyui_hand); the owner merges them into DEST; root removes the emptied hand-over folder. A
# hand-over an earlier run made but could not merge (a name planted in DEST meanwhile) is merged
# first.
comfyui_take_over() {
  local src=$1 dest=$2 uid=$3 gid=$4 stage=$1/.modelshare-handover
  if [ ! -d "$src" ] || [ -L "$src" ]; then return 0; fi
  if ! comfyui_models "$src" && [ ! -e "$stage" ] && [ ! -L "$stage" ]; then return 0; fi
  if checking; then
    drift "$src holds models; converge moves them into $dest"
    return 0
  fi
  run_as "$uid" "$gid" clear comfyui_precheck "$src" "$dest"
  if [ -d "$stage" ] && [ ! -L "$stage" ] && [ "$(stat -c %u -- "$stage")" = "$uid" ]; then
    run_as "$uid" "$gid" clear merge_into "$stage" "$dest" .
    comfyui_unstage "$src"
  fi
  if comfyui_models "$src" || [ -d "$stage" ]; then # models, or root's hand-over an interrupted run left
    comfyui_hand "$src" "$uid" "$gid"
    run_as "$uid" "$gid" clear merge_into "$stage" "$dest" .
    comfyui_unstage "$src"
  fi
  did "moved the models in $src into $dest"
}

# comfyui_precheck SRC DEST (as the storage owner): it can reach SRC and write DEST, and no name
# holds other content on both sides (merge_conflicts: nothing is handed over, nothing moved).
comfyui_precheck() {
  local src=$1 dest=$2
  { [ -x "$src" ] && [ -r "$src" ]; } || refuse "the storage owner ($EUID) cannot reach $src, so the models of this checkout of root's cannot be handed to it there; let it pass (o+rx on the checkout's folders down to $src), or move the models into $dest yourself, then run again."
  [ -w "$dest" ] || refuse "the storage owner ($EUID) cannot write $dest; converge the storage layout, then run again."
  merge_conflicts "$src" "$dest" 'put_*_here' .modelshare-handover
  if [ -d "$src/.modelshare-handover" ] && [ -x "$src/.modelshare-handover" ]; then
    merge_conflicts "$src/.modelshare-handover" "$dest"
  fi
}

# comfyui_hand SRC UID GID (root): SRC is root's and no one else may write it, so root can act
# in it. Its models (all but the placeholders) move, by rename, into SRC/.modelshare-handover, a
# folder only root can enter while it fills; a file with other hard links is refused first (it
# may be a file elsewhere on the system too). Then everything in it is given to UID:GID (chown
# -h from find -P: never through a link), the folder itself last, so the owner reaches nothing
# in it before all of it is theirs.
comfyui_hand() {
  local src=$1 uid=$2 gid=$3 stage=.modelshare-handover meta name shared
  local -a names=()
  enter_dir "$src"
  read -r -a meta < <(stat -c '%u %g %a' .)
  if [ "${meta[0]}" != 0 ] || [ $((8#${meta[2]} & 8#002)) -ne 0 ] || { [ $((8#${meta[2]} & 8#020)) -ne 0 ] && [ "${meta[1]}" != 0 ]; }; then
    cd /
    refuse "$src belongs to $(stat -c '%U:%G, mode %a' -- "$src") in a checkout of root's: root moves models only out of folders no one else can write. Make it root's and not writable by others, or move its models into the store yourself, then run again."
  fi
  if [ -L "$stage" ] || { [ -e "$stage" ] && { [ ! -d "$stage" ] || [ "$(stat -c %u -- "$stage")" != 0 ]; }; }; then
    cd /
    refuse "$src/$stage is in the way and is not left by an interrupted modelshare run; move it away, then run again."
  fi
  mapfile -d '' names < <(find -P . -mindepth 1 -maxdepth 1 ! -name 'put_*_here' ! -name "$stage" -printf '%P\0')
  if [ "${#names[@]}" -gt 0 ]; then
    shared=$(find -P "${names[@]/#/./}" ! -type d -links +1 -printf '%P\n' -quit)
    [ -z "$shared" ] || { cd /; refuse "$src/$shared has other hard links, so it may be a file elsewhere on this system too; modelshare will not hand it to $uid:$gid. Move it out of $src, then run again."; }
  fi
  [ -d "$stage" ] || mkdir -m 0700 -- "$stage"
  for name in "${names[@]}"; do
    mv -n -T -- "$name" "$stage/$name"
    if [ -e "$name" ] || [ -L "$name" ]; then
      cd /
      refuse "$src/$name is also in $src/$stage, left by an interrupted modelshare run; move one of them away, then run again."
    fi
  done
  enter_dir "$src/$stage"
  find -P . -mindepth 1 \( -type d -o -links 1 \) -exec chown -h -- "$uid:$gid" {} +
  chown -h -- "$uid:$gid" .
  cd /
  did "handed the models in $src to $uid:$gid, who moves them"
}

# comfyui_unstage SRC (root): the emptied hand-over folder goes; one that holds entries again
# (someone put them there meanwhile) stops the run, kept.
comfyui_unstage() {
  enter_dir "$1"
  if [ -d .modelshare-handover ] && ! rmdir -- .modelshare-handover 2>/dev/null; then
    cd /
    refuse "$1/.modelshare-handover still holds entries that appeared while modelshare was moving them; run again."
  fi
  cd /
}

# comfyui_unit SERVICE DIR BASE (root; before anything changes): the unit exists, is root's alone
# and outside the shared storage (its ExecStart is code), has an ExecStart to add
# --output-directory DIR to and does not set it itself, and does not run as root: ComfyUI saves
# into DIR and loads models from folders SMB users and containers write, where a planted link
# would lead root's writes anywhere. Sets comfyui_unit_file and comfyui_exec.
comfyui_unit_file='' comfyui_exec=''
comfyui_unit() {
  local service=$1 dir=$2 unit real meta user
  unit=$(systemctl show -p FragmentPath --value -- "$service" 2>/dev/null) || true
  [ -f "${unit:-/nonexistent}" ] || refuse "no systemd unit $service on $(hostname); fix comfyui.installs[].service (or drop it and pass --output-directory $dir yourself), then run again."
  real=$(readlink -f -- "$unit")
  comfyui_outside "$3" "$real" "the unit file of $service"
  meta=$(stat -c '%u %a' -- "$real")
  if [ "${meta% *}" != 0 ] || [ $((8#${meta#* } & 8#022)) -ne 0 ]; then
    refuse "$unit ($(stat -c '%U:%G %a' -- "$real")) can be changed by others than root, and its ExecStart is what $service runs; make it root's and not writable by others, then run again."
  fi
  comfyui_exec=$(sed -n 's/^ExecStart=//p' -- "$unit" | tail -n 1)
  [ -n "$comfyui_exec" ] || refuse "$unit has no ExecStart line to add --output-directory to; pass --output-directory $dir yourself, then run again."
  case $comfyui_exec in *--output-directory*) refuse "$unit already sets --output-directory; remove it there (modelshare adds it), then run again." ;; esac
  user=$(systemctl show -p User --value -- "$service" 2>/dev/null) || true
  if [ "$(systemctl show -p DynamicUser --value -- "$service" 2>/dev/null)" != yes ]; then
    case $user in "" | root | 0) refuse "$service runs as root, and it would save into $dir and load models from folders every SMB user and container can write, where a planted link leads root's writes anywhere; run it as its own user (User= in the unit), then run again." ;; esac
  fi
  comfyui_unit_file=$unit
}

# comfyui_output SERVICE DIR (root, after comfyui_unit): ComfyUI's service saves into DIR
# (--output-directory: recent ComfyUI refuses to save into a symlinked output folder). A drop-in
# repeats the unit's own ExecStart with the flag added, read from the unit each run, so a
# changed unit is followed.
# shellcheck disable=SC2154 # file_changed: set by install_file
comfyui_output() {
  local service=$1 dir=$2 arg drop_in=/etc/systemd/system/$1.d/modelshare.conf
  [ -n "$comfyui_unit_file" ] || refuse "comfyui_output runs after comfyui_unit; this program is broken."
  arg=$dir
  case $dir in *[[:space:]]*) arg="\"$dir\"" ;; esac
  ensure_system_dir "${drop_in%/*}"
  install_file "$drop_in" 0644 "# modelshare: ComfyUI saves into the shared output folder
[Service]
ExecStart=
ExecStart=$comfyui_exec --output-directory $arg"
  if [ "$file_changed" = yes ]; then
    systemctl daemon-reload
    if systemctl is-active --quiet -- "$service"; then act "$service runs with its old output folder" "restarted $service" systemctl restart -- "$service"; fi
  fi
}

comfyui_no_output() {
  local drop_in=/etc/systemd/system/$1.d/modelshare.conf
  [ -e "$drop_in" ] || return 0
  remove_file "$drop_in"
  remove_system_dir "${drop_in%/*}"
  if ! checking; then
    systemctl daemon-reload
    if systemctl is-active --quiet -- "$1"; then systemctl restart -- "$1"; fi
  fi
}
