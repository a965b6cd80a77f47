# --- the storage report (check only) ---
# report_usage KIND PATH...: for each folder, "report: KIND <bytes> <files> PATH" (through
# `report`, so the path is escaped): the bytes of the files inside and how many there are, links
# never followed.
report_usage() {
  local kind=$1 path id bytes files
  local -a real=() ids=()
  local -A usage=()
  shift
  for path in "$@"; do
    if [ -d "$path" ] && [ ! -L "$path" ]; then real+=("$path"); fi
  done
  [ "${#real[@]}" -gt 0 ] || return 0
  # One walk for all of them, and no name in what find prints (a planted one could hold a
  # newline): each folder it starts from is known by its device and inode, each file by its size.
  mapfile -t ids < <(stat -c '%d:%i' -- "${real[@]}" 2>/dev/null || true)
  if [ "${#ids[@]}" -ne "${#real[@]}" ]; then # one went away meanwhile: ask one at a time
    for id in "${!real[@]}"; do ids[id]=$(stat -c '%d:%i' -- "${real[id]}" 2>/dev/null || echo gone); done
  fi
  while read -r id bytes files; do usage[$id]="$bytes $files"; done < <(
    find -P "${real[@]}" \( -type d -printf 'd %d %D:%i\n' \) -o \( -type f -printf 'f %s\n' \) |
      awk '$1 == "d" { if ($2 == 0) { at = $3; n[at] += 0; b[at] += 0 } next }
        { b[at] += $2; n[at]++ }
        END { for (at in n) printf "%s %.0f %d\n", at, b[at], n[at] }'
  )
  for id in "${!real[@]}"; do
    [ "${ids[id]}" != gone ] || continue
    read -r bytes files <<<"${usage[${ids[id]}]-0 0}"
    report "$kind" "$bytes" "$files" "${real[id]}"
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
