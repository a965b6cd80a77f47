# --- warming (npm run warm): read the models once, through the worker's mount ---
# A warm is a read and nothing else: it runs as a check does (`bash -s check FRAME`: no lock, so
# a long warm never blocks a converge), root only looks at /proc/self/mounts, and every name in
# the tree is touched as the storage owner. How a planted link is kept out:
#   - find -P lists the category folders: it never follows a link, never descends into one, and
#     only regular files (-type f) are read; a link, a FIFO or a device is never opened;
#   - a category folder that is itself a link is not entered at all;
#   - each file is opened by dd with iflag=nofollow (O_RDONLY|O_NOFOLLOW): a file swapped for a
#     link after find listed it fails (ELOOP) instead of being read through it;
#   - and it all runs as the owner (as_owner), so even a folder swapped for a link above a file
#     can only lead to what the owner could read anyway: never a root-only file.
# Reads are sequential, in 8 MiB blocks, into /dev/null; nothing is written anywhere. A file the
# owner owns is opened with O_NOATIME too (the kernel allows it only to the file's owner).

# warm_mounts TAG MOUNT...: root, before any read. Each MOUNT (the worker's NFS mounts of the
# storage) must be mounted over NFS, or the reads would only read the empty folder below it.
# TAG is the FS-Cache cache nfs.cache binds (empty: nfs.cache is off). Off, a mount without fsc,
# or no such cache bound (a kernel without CacheFiles mounts with fsc all the same, and caches
# nothing), and the warm is said once to fill only the page cache.
warm_mounts() {
  local tag=$1 m want point type opts found uncached=""
  shift
  for m in "$@"; do
    # /proc/self/mounts escapes space, tab, newline and backslash in octal.
    want=${m//\\/\\134} want=${want// /\\040} want=${want//$'\t'/\\011} want=${want//$'\n'/\\012}
    found=""
    while read -r _ point type opts _; do
      # The last line for a point is the mount on top.
      [ "$point" != "$want" ] || found="$type $opts"
    done </proc/self/mounts
    read -r type opts <<<"${found:-none -}"
    case $type in
      nfs | nfs4) ;;
      none) refuse "$m is not mounted: converge this worker first (pulumi up), then warm it." ;;
      *) refuse "$m is mounted as $type, not over NFS: converge this worker first (pulumi up), then warm it." ;;
    esac
    [[ ,$opts, == *,fsc,* ]] || uncached=${uncached:-$m}
  done
  if [ -z "$tag" ]; then
    note "nfs.cache is off: this warm only fills the page cache, which the kernel drops under memory pressure; turn nfs.cache on to keep the models on this node's disk."
  elif [ -n "$uncached" ]; then
    note "$uncached is mounted without fsc (a mount older than nfs.cache): this warm only fills the page cache."
  elif [ "$#" -gt 0 ] && ! { [ -r /proc/fs/fscache/caches ] && grep -qw -- "$tag" /proc/fs/fscache/caches; }; then
    note "no FS-Cache cache $tag is bound on this node (its kernel lacks CacheFiles, or cachefilesd is not running): this warm only fills the page cache."
  fi
}

# warm_categories DIR...: as the owner. First what each category folder holds, then every file
# read once. Lines (through `report`, names escaped):
#   report: warm-category BYTES FILES DIR    what DIR holds (regular files, links not followed)
#   report: warm-links 0 N DIR               N links in DIR, not followed
#   report: warm-unlisted 0 N DIR            N folders in DIR the owner cannot list
#   report: warm-absent 0 0 DIR              no folder DIR (or a link there: not entered)
#   report: warmed BYTES 1 FILE              a file read, BYTES read
#   report: warm-failed 0 1 FILE             a file that could not be read (a note says why)
warm_categories() {
  local dir files bytes links unlisted f
  for dir in "$@"; do
    if [ -L "$dir" ] || [ ! -d "$dir" ]; then
      report warm-absent 0 0 "$dir"
      continue
    fi
    # No name in what find prints (a planted one could hold a newline): a letter and a size.
    read -r bytes files links unlisted < <(
      find -P "$dir" \( -type d ! \( -readable -executable \) -printf 'u\n' -prune \) -o \( -type f -printf 'f %s\n' \) -o \( -type l -printf 'l\n' \) 2>/dev/null |
        awk '$1 == "f" { b += $2; n++ } $1 == "l" { l++ } $1 == "u" { u++ } END { printf "%.0f %d %d %d\n", b, n, l, u }'
    )
    report warm-category "$bytes" "$files" "$dir"
    [ "$links" = 0 ] || report warm-links 0 "$links" "$dir"
    [ "$unlisted" = 0 ] || report warm-unlisted 0 "$unlisted" "$dir"
  done
  for dir in "$@"; do
    if [ -L "$dir" ] || [ ! -d "$dir" ]; then continue; fi
    # LC_ALL=C: bash 5.2's read in a UTF-8 locale drops a 0x01 after an invalid sequence.
    while IFS= LC_ALL=C read -r -d '' f; do
      warm_file "$f"
    done < <(find -P "$dir" -type f -print0 2>/dev/null)
  done
}

# warm_file FILE: one sequential read of FILE into /dev/null, never through a link.
warm_file() {
  local f=$1 flags=nofollow out last reason
  # -O: the file is ours (the owner's), so O_NOATIME is allowed and the read leaves its atime.
  [ ! -O "$f" ] || flags+=,noatime
  if out=$(LC_ALL=C dd if="$f" of=/dev/null bs=8M iflag="$flags" 2>&1); then
    last=${out##*$'\n'}
    last=${last%% byte*}  # "1 byte copied", "2 bytes (2 B) copied"
    [[ $last =~ ^[0-9]+$ ]] || last=$(stat -c %s -- "$f")
    report warmed "$last" 1 "$f"
  else
    # dd's last line ends with the reason (strerror), after the quoted name.
    last=${out##*$'\n'}
    reason=${last##*: }
    report warm-failed 0 1 "$f"
    note "could not read $f: $reason"
  fi
}
