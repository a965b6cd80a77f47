# --- free space ---
# check_free_space PATH MIN_BYTES KEY: the filesystem that holds PATH (or its nearest existing
# ancestor) has at least MIN_BYTES available to unprivileged users. Converging, less stops the
# deploy; checking, it is reported (with a "report: space" line for the storage report).
check_free_space() {
  local path=$1 min=$2 key=$3 probe=$1 avail message
  while [ ! -e "$probe" ]; do probe=$(dirname -- "$probe"); done
  # df's own words never end a run: whatever happened to PROBE meanwhile, the run says it.
  avail=$(df -P -B1 -- "$probe" 2>/dev/null | awk 'NR == 2 { print $4 }') || avail=""
  [ -n "$avail" ] || refuse "could not read the free space of the filesystem holding $probe (df could not: was it changed meanwhile?); run again."
  checking && report space "$avail" "$min" "$path"
  if [ "$avail" -lt "$min" ]; then
    message=$(awk -v a="$avail" -v m="$min" -v p="$path" -v k="$key" 'BEGIN { printf "only %.1f GB are free on the filesystem holding %s, but %s asks for at least %.1f GB", a / 1e9, p, k, m / 1e9 }')
    checking || refuse "$message; free some space or lower $key."
    drift "$message"
  fi
  note "$(awk -v a="$avail" -v p="$probe" 'BEGIN { printf "free space at %s: %.1f GB", p, a / 1e9 }')"
}
