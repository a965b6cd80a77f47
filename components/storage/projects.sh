# --- project folders (as the owner) ---

# project_metadata DIR ID_JSON: DIR/metadata.json holds the project's id and the time it was
# first laid out; made once (O_EXCL: never over a file, nor through a link planted in its
# place), never rewritten: the studio may add to it.
project_metadata() {
  local file=$1/metadata.json
  [ ! -e "$file" ] && [ ! -L "$file" ] || return 0
  act "$file is missing" "wrote $file" write_metadata "$file" "$2"
}

write_metadata() {
  (set -C && printf '{\n  "id": %s,\n  "created": "%s"\n}\n' "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$1") 2>/dev/null ||
    changed_meanwhile "$1"
}

# projects_unlisted DIR ID...: a project folder that is not (or no longer) in the config stays as
# it is (its files are the studio's work); the run says so.
projects_unlisted() {
  local dir=$1 name
  shift
  [ -d "$dir" ] && [ ! -L "$dir" ] || return 0
  local -A listed=()
  for name in "$@"; do listed[$name]=1; done
  # LC_ALL=C: bash 5.2's read in a UTF-8 locale drops a 0x01 after an invalid sequence.
  while IFS= LC_ALL=C read -r -d '' name; do
    name=${name##*/}
    [ -n "${listed[$name]-}" ] || note "note: project folder $dir/$name is not in modelshare:projects; left as it is"
  done < <(find -P "$dir" -mindepth 1 -maxdepth 1 -type d -print0 | sort -z)
}
