# --- the storage report (check only) ---
# report_usage KIND PATH...: for each folder, "report: KIND <bytes> <files> PATH": the bytes of
# the files inside and how many there are, links never followed.
report_usage() {
  local kind=$1 path
  local -a real=()
  shift
  for path in "$@"; do
    if [ -d "$path" ] && [ ! -L "$path" ]; then real+=("$path"); fi
  done
  [ "${#real[@]}" -gt 0 ] || return 0
  # One walk for all of them: each file counts for the folder it was found under (%H).
  { printf '%s\t\n' "${real[@]}"; find -P "${real[@]}" -type f -printf '%H\t%s\n'; } |
    awk -F '\t' -v kind="$kind" '
      $2 == "" { order[++n] = $1; next }
      { bytes[$1] += $2; files[$1]++ }
      END { for (i = 1; i <= n; i++) printf "report: %s %d %d %s\n", kind, bytes[order[i]], files[order[i]], order[i] }'
}

# report_children KIND PARENT: report_usage for every real folder inside PARENT (the projects).
report_children() {
  local kind=$1 parent=$2
  local -a children=()
  if [ ! -d "$parent" ] || [ -L "$parent" ]; then return 0; fi
  mapfile -d '' children < <(find -P "$parent" -mindepth 1 -maxdepth 1 -type d -print0 | sort -z)
  [ "${#children[@]}" -eq 0 ] || report_usage "$kind" "${children[@]}"
}
