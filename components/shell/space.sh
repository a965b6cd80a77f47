# --- free space ---
# check_free_space PATH MIN_BYTES KEY: the filesystem that holds PATH (or its nearest existing
# ancestor) has at least MIN_BYTES available to unprivileged users.
check_free_space() {
  local path=$1 min=$2 key=$3 probe=$1 avail
  while [ ! -e "$probe" ]; do probe=$(dirname -- "$probe"); done
  avail=$(df -P -B1 -- "$probe" | awk 'NR == 2 { print $4 }')
  [ -n "$avail" ] || refuse "could not read the free space of the filesystem holding $probe from df."
  if [ "$avail" -lt "$min" ]; then
    refuse "$(awk -v a="$avail" -v m="$min" -v p="$path" -v k="$key" 'BEGIN { printf "only %.1f GB are free on the filesystem holding %s, but %s asks for at least %.1f GB; free some space or lower %s.", a / 1e9, p, k, m / 1e9, k }')"
  fi
  note "$(awk -v a="$avail" -v p="$probe" 'BEGIN { printf "free space at %s: %.1f GB", p, a / 1e9 }')"
}
