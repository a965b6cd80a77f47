# --- the storage report (check only) ---
# report_usage KIND PATH...: for each folder, "report: KIND <bytes> <files> PATH": the bytes of
# the files inside and how many there are, links never followed.
report_usage() {
  local kind=$1 path
  shift
  for path in "$@"; do
    if [ ! -d "$path" ] || [ -L "$path" ]; then continue; fi
    find -P "$path" -type f -printf '%s\n' |
      awk -v kind="$kind" -v path="$path" '{ bytes += $1; files++ } END { printf "report: %s %d %d %s\n", kind, bytes, files, path }'
  done
}

# report_children KIND PARENT: report_usage for every real folder inside PARENT (the projects).
report_children() {
  local kind=$1 parent=$2
  local -a children=()
  if [ ! -d "$parent" ] || [ -L "$parent" ]; then return 0; fi
  mapfile -d '' children < <(find -P "$parent" -mindepth 1 -maxdepth 1 -type d -print0 | sort -z)
  [ "${#children[@]}" -eq 0 ] || report_usage "$kind" "${children[@]}"
}
