# --- the local cache of NFS reads on a worker (privileged: a module, a package, a unit, a
# root-only folder on the worker's own disk; nothing inside the storage tree) ---

# The first line of the folder's marker: only a folder that holds it is ever emptied.
CACHE_MARKER=.modelshare-cache
CACHE_MARKER_TEXT="modelshare: FS-Cache data of this worker's NFS mount (cachefilesd); emptied and removed on destroy."
# How long a started cachefilesd may take to bind its cache (tests shorten it).
CACHE_WAIT=${MODELSHARE_CACHE_WAIT:-20}

# cache_kernel: sets cache_kernel=yes when the kernel can cache NFS reads (CacheFiles loaded or
# built in, or loadable). Without it the worker is told so once and its mount works uncached:
# the other steps then do nothing. Checking never loads the module: it asks modprobe what it
# would do, and only a module file it would insert counts (an `install` rule in modprobe.d, as
# used to forbid a module, runs a command instead, which converging would find fails).
cache_kernel=no
cache_kernel() {
  if [ -d /sys/module/cachefiles ]; then
    cache_kernel=yes
  elif checking; then
    case $(modprobe -n -v cachefiles 2>/dev/null || true) in *insmod*cachefiles*) cache_kernel=yes ;; *) cache_kernel=no ;; esac
  elif modprobe -q cachefiles 2>/dev/null; then
    cache_kernel=yes
  else
    cache_kernel=no
  fi
  if [ "$cache_kernel" = no ]; then
    note "this kernel cannot cache NFS reads (no CacheFiles module: CONFIG_CACHEFILES); $(hostname) mounts the storage uncached"
    if checking; then report cache-off 0 0 "$(uname -r)"; fi
  fi
  return 0
}

# cache_packages ETC_DIR: cachefilesd installed, and the folder of modelshare's files in /etc.
cache_packages() {
  [ "$cache_kernel" = yes ] || return 0
  ensure_packages cachefilesd
  ensure_system_dir "$1"
}

# cache_dir DIR: DIR is a folder of root's, mode 0700, holding the marker; made when missing,
# with the system folders above it. Every folder above it must be root's and writable by root
# alone, or someone else could swap DIR for a link before root writes or empties it. A DIR
# there already must be root's, and empty or modelshare's: its files would be mixed with the
# cache's and emptied on destroy.
cache_dir() {
  local dir=$1
  [ "$cache_kernel" = yes ] || return 0
  cache_root_only_above "$dir" || refuse "$cache_unsafe, above nfs.cache.dir ($dir), $cache_unsafe_why; the cache needs a place only root can change: choose another folder, or fix that one, then run again."
  [ ! -L "$dir" ] || refuse "$dir (nfs.cache.dir) is a symbolic link (to $(readlink -- "$dir")); the cache needs a real folder: remove the link, then run again."
  if [ -e "$dir" ]; then
    [ -d "$dir" ] || refuse "$dir (nfs.cache.dir) is a file; move it away or choose another folder, then run again."
    [ "$(stat -c %u -- "$dir")" = 0 ] || refuse "$dir (nfs.cache.dir) belongs to uid $(stat -c %u -- "$dir"), not root; modelshare makes the cache folder itself: choose a new folder, then run again."
    if [ ! -f "$dir/$CACHE_MARKER" ] && [ -n "$(ls -A -- "$dir")" ]; then
      refuse "$dir (nfs.cache.dir) holds files modelshare did not put there; choose an empty or new folder for the cache, then run again."
    fi
  else
    act "$dir does not exist" "made $dir" mkdir -p -m 0700 -- "$dir"
    if checking; then return 0; fi
  fi
  [ "$(stat -c %a -- "$dir")" = 700 ] || act "$dir has mode $(stat -c %a -- "$dir"), not 0700" "gave $dir mode 0700" chmod 0700 -- "$dir"
  install_file "$dir/$CACHE_MARKER" 0600 "$CACHE_MARKER_TEXT"
}

# cache_root_only_above DIR: every existing folder above DIR is real, root's, and writable by
# root alone. Otherwise fails, naming it (cache_unsafe) and why (cache_unsafe_why).
cache_unsafe="" cache_unsafe_why=""
cache_root_only_above() {
  local at=$1
  while [ "$at" != / ]; do
    at=$(dirname -- "$at")
    [ -e "$at" ] || [ -L "$at" ] || continue
    cache_unsafe=$at
    if [ -L "$at" ]; then cache_unsafe_why="is a symbolic link (to $(readlink -- "$at"))"; return 1; fi
    if [ "$(stat -c %u -- "$at")" != 0 ]; then cache_unsafe_why="belongs to uid $(stat -c %u -- "$at")"; return 1; fi
    if [ $((8#$(stat -c %a -- "$at") & 8#022)) -ne 0 ]; then cache_unsafe_why="may be written by others than root (mode $(stat -c %a -- "$at"))"; return 1; fi
  done
  return 0
}

# cache_service UNIT TAG: the daemon runs this config, restarted when its unit or config
# changed (file_changed from the steps before), and its cache is bound: the kernel lists TAG
# among its caches. A daemon that will not start stops the run with its own last words.
# shellcheck disable=SC2154 # file_changed, service_started: set by install_file, ensure_service
cache_service() {
  local unit=$1 tag=$2 deadline
  [ "$cache_kernel" = yes ] || return 0
  ensure_service "$unit"
  if [ "$service_started" = no ] && [ "${cache_changed:-no}" = yes ]; then
    act "$unit runs an older configuration" "restarted $unit" systemctl restart -- "$unit"
  fi
  if checking; then return 0; fi
  deadline=$((SECONDS + CACHE_WAIT))
  until cache_bound "$tag"; do
    if [ "$SECONDS" -ge "$deadline" ] || ! systemctl is-active --quiet -- "$unit"; then
      journalctl -u "$unit" -n 5 -o cat --no-pager >&2 2>/dev/null || true
      refuse "cachefilesd did not bring up the cache ($unit, its last lines are above): is the folder on a filesystem with extended attributes (ext4, xfs, btrfs)?"
    fi
    sleep 1
  done
}

# cache_bound TAG: the kernel has a cache of that tag (FS-Cache's own list).
# (Tests point MODELSHARE_FSCACHE_CACHES at a file of their own.)
cache_bound() { grep -qw -- "$1" "${MODELSHARE_FSCACHE_CACHES:-/proc/fs/fscache/caches}" 2>/dev/null; }

# cache_file PATH MODE CONTENT: install_file, remembering that the daemon needs a restart.
cache_changed=no
# shellcheck disable=SC2154 # file_changed: set by install_file
cache_file() {
  [ "$cache_kernel" = yes ] || return 0
  install_file "$@"
  [ "$file_changed" = no ] || cache_changed=yes
}

# cache_unit NAME CONTENT: the daemon's unit, as cache_file.
# shellcheck disable=SC2154 # file_changed: set by install_file
cache_unit() {
  [ "$cache_kernel" = yes ] || return 0
  ensure_unit "$@"
  [ "$file_changed" = no ] || cache_changed=yes
}

# cache_report DIR: "report: cache <bytes cached> <bytes free> DIR" for the check's report.
cache_report() {
  local dir=$1 used free
  [ "$cache_kernel" = yes ] && [ -d "$dir" ] && [ ! -L "$dir" ] || return 0
  used=$(du -sb --one-file-system -- "$dir" 2>/dev/null | cut -f1) || used=0
  free=$(df -B1 --output=avail -- "$dir" 2>/dev/null | tail -n 1 | tr -d ' ') || free=0
  report cache "${used:-0}" "$free" "$dir"
}

# cache_emptied DIR: on destroy (or when nfs.cache.dir moved), a cache folder modelshare made
# (its marker says so) loses cachefilesd's two trees, the marker, then itself. A folder
# without the marker is left alone, with a note.
cache_emptied() {
  local dir=$1 sub
  if [ -L "$dir" ] || [ ! -d "$dir" ]; then return 0; fi
  if ! cache_root_only_above "$dir" || [ "$(stat -c %u -- "$dir")" != 0 ]; then
    note "left $dir: it is not root's, or a folder above it is not root's alone, so emptying it could reach elsewhere"
    return 0
  fi
  if [ ! -f "$dir/$CACHE_MARKER" ]; then
    note "left $dir: it has no $CACHE_MARKER, so modelshare did not make it"
    return 0
  fi
  for sub in cache graveyard; do
    if [ -d "$dir/$sub" ] && [ ! -L "$dir/$sub" ]; then act "$dir/$sub holds cached data" "emptied $dir/$sub" rm -rf --one-file-system -- "${dir:?}/$sub"; fi
  done
  remove_file "$dir/$CACHE_MARKER"
  if ! checking; then rmdir -- "$dir" 2>/dev/null || note "left $dir: it holds files besides the cache's"; fi
}

# cache_previous CONF: the folder the config in place names (before this run rewrites it).
cache_previous_dir=""
cache_previous() {
  if [ -f "$1" ] && [ ! -L "$1" ]; then cache_previous_dir=$(sed -n 's/^dir //p' -- "$1" | head -n 1); fi
  return 0
}

# cache_moved DIR: when the config named another folder than DIR, that old cache is emptied
# (after the daemon moved to DIR: callers run this after cache_service).
cache_moved() {
  if [ -n "$cache_previous_dir" ] && [ "$cache_previous_dir" != "$1" ]; then cache_emptied "$cache_previous_dir"; fi
}
