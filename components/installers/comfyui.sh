# --- a ComfyUI checkout pointed at the shared folders (root checks; the checkout's files are
# written as its owner, the models moved as its owner) ---

# comfyui_checkout PATH: PATH is a real ComfyUI checkout (main.py, folder_paths.py); sets
# comfyui_uid/comfyui_gid to its owner, as whom everything in it is done.
comfyui_uid='' comfyui_gid=''
comfyui_checkout() {
  require_no_link "$1"
  if [ ! -f "$1/main.py" ] || [ ! -f "$1/folder_paths.py" ]; then
    refuse "$1 is not a ComfyUI checkout (no main.py and folder_paths.py there); fix comfyui.installs[].path, then run again."
  fi
  read -r comfyui_uid comfyui_gid < <(stat -c '%u %g' -- "$1")
}

# comfyui_as FUNCTION ARG...: FUNCTION as the checkout's owner, with its groups (its way into
# the shared store is the storage owner's group, or being that owner).
comfyui_as() {
  if [ "$EUID" = "$comfyui_uid" ]; then "$@"; else run_as "$comfyui_uid" "$comfyui_gid" init "$@"; fi
}

# comfyui_paths CHECKOUT SECTION_JSON PYTHON...: extra_model_paths.yaml holds modelshare's section
# (read and written with a YAML library: ruamel.yaml keeps the admin's comments, PyYAML does not
# and the run says so), the admin's sections as they were. Invalid YAML of theirs stops the run
# with the parser's words; the file is never overwritten then.
comfyui_paths() {
  local checkout=$1 section=$2 file=$1/extra_model_paths.yaml py="" candidate new said
  shift 2
  for candidate in "$@"; do
    if [ -x "$candidate" ] || command -v -- "$candidate" >/dev/null 2>&1; then
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
  [ -z "$said" ] || note "$said"
  # The admin's file as it was before modelshare first wrote it.
  if [ -f "$file" ] && [ ! -e "$file.modelshare-backup" ]; then cp -p -- "$file" "$file.modelshare-backup"; fi
  chmod --reference="$checkout" -- "$new" 2>/dev/null && chmod a-x -- "$new"
  mv -fT -- "$new" "$file"
  did "wrote modelshare's section in $file"
}

# comfyui_no_paths CHECKOUT PYTHON...: destroy: modelshare's section goes, the rest stays.
comfyui_no_paths() {
  local file=$1/extra_model_paths.yaml
  if [ ! -f "$file" ] || [ -L "$file" ] || ! grep -q '^modelshare:' -- "$file"; then return 0; fi
  local checkout=$1
  shift
  comfyui_paths "$checkout" null "$@"
}

# comfyui_migrate STORE FOLDER:CATEGORY...: models in the checkout's own models/FOLDER move into
# STORE/CATEGORY by the merge rules (a name with other content on both sides stops the run,
# nothing moved); the folder and ComfyUI's put_*_here placeholders stay, for git.
comfyui_migrate() {
  local store=$1 pair src dest
  shift
  for pair in "$@"; do
    src=${pair%%:*} dest=$store/${pair#*:}
    if [ ! -d "$src" ] || [ -L "$src" ]; then continue; fi
    [ -n "$(find -P "$src" -mindepth 1 -maxdepth 1 ! -name 'put_*_here' -print -quit)" ] || continue
    [ -w "$dest" ] || refuse "the checkout's owner ($EUID) cannot write $dest, so the models in $src cannot move there; put that user in the storage owner's group, then run again."
    if checking; then
      drift "$src holds models; converge moves them into $dest"
      continue
    fi
    merge_into "$src" "$dest" 'put_*_here'
    did "moved the models in $src into $dest"
  done
}

# comfyui_output SERVICE DIR (root): ComfyUI's service saves into DIR (--output-directory: recent
# ComfyUI refuses to save into a symlinked output folder). A drop-in repeats the unit's own
# ExecStart with the flag added, read from the unit each run, so a changed unit is followed.
# shellcheck disable=SC2154 # file_changed: set by install_file
comfyui_output() {
  local service=$1 dir=$2 unit exec_start arg drop_in=/etc/systemd/system/$1.d/modelshare.conf
  unit=$(systemctl show -p FragmentPath --value -- "$service" 2>/dev/null) || true
  [ -f "${unit:-/nonexistent}" ] || refuse "no systemd unit $service on $(hostname); fix comfyui.installs[].service (or drop it and pass --output-directory $dir yourself), then run again."
  exec_start=$(sed -n 's/^ExecStart=//p' -- "$unit" | tail -n 1)
  [ -n "$exec_start" ] || refuse "$unit has no ExecStart line to add --output-directory to; pass --output-directory $dir yourself, then run again."
  case $exec_start in *--output-directory*) refuse "$unit already sets --output-directory; remove it there (modelshare adds it), then run again." ;; esac
  arg=$dir
  case $dir in *[[:space:]]*) arg="\"$dir\"" ;; esac
  ensure_system_dir "${drop_in%/*}"
  install_file "$drop_in" 0644 "# modelshare: ComfyUI saves into the shared output folder
[Service]
ExecStart=
ExecStart=$exec_start --output-directory $arg"
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
