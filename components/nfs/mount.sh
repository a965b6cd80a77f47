# --- the NFS mount on a worker (privileged: nfs-common, a systemd mount unit, the mount) ---
# A hard NFS mount of a server that does not answer hangs every access forever, so every
# access to the mount point goes through `timeout`, and a converge fails with a sentence
# instead of hanging. Only findmnt (which reads /proc, not the mount) runs without one.
NFS_WAIT=${MODELSHARE_NFS_WAIT:-20}

# nfs_mount WHERE WHAT UNIT UNIT_CONTENT MARKER_CONTENT: WHERE holds WHAT, mounted now and at
# every boot by a mount unit of modelshare's (UNIT, named after WHERE as systemd requires), and
# proven by the export's marker file (MARKER_CONTENT empty: an inner mount, proven by its
# source alone).
nfs_mount() {
  local where=$1 what=$2 unit=$3 marker=$5 source state
  ensure_unit "$unit" "$4"
  systemctl is-enabled --quiet -- "$unit" 2>/dev/null || act "$unit is not enabled at boot" "enabled $unit" systemctl enable --quiet -- "$unit"
  source=$(findmnt -n -M "$where" -o SOURCE 2>/dev/null | tail -n 1 || true)
  if [ -n "$source" ] && [ "$source" != "$what" ]; then
    act "$where holds $source, not $what" "unmounted $source from $where" nfs_unmount "$where" "$unit"
    source=""
  fi
  if [ -n "$source" ] && [ -n "$marker" ]; then
    state=$(nfs_marker_state "$where" "$marker")
    [ "$state" != silent ] || nfs_silent "$where" "$what" "$NFS_WAIT"
    if [ "$state" = other ]; then
      act "$where does not show this site's export (its marker is missing or another site's)" "unmounted $where (wrong or stale export)" nfs_unmount "$where" "$unit"
      source=""
    fi
  fi
  [ -z "$source" ] || return 0
  nfs_local_files "$where"
  act "$what is not mounted at $where" "mounted $what at $where" nfs_start "$where" "$what" "$unit"
  checking || [ -z "$marker" ] || nfs_proven "$where" "$what" "$marker"
}

# nfs_proven WHERE WHAT CONTENT: a new mount shows this site's marker. A server that has just
# (re)started answers no NFSv4 open during its grace period (90 s by default), so a new mount
# waits for it up to MODELSHARE_NFS_GRACE seconds (120), each try bounded, then gives up.
nfs_proven() {
  local where=$1 what=$2 marker=$3 state deadline=$((SECONDS + ${MODELSHARE_NFS_GRACE:-120}))
  while :; do
    state=$(nfs_marker_state "$where" "$marker")
    case $state in
      ok) return 0 ;;
      other) refuse "$where shows $what, but not this site's marker file (.modelshare-export): another site's export? Check the server, then run again." ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || nfs_silent "$where" "$what" "${MODELSHARE_NFS_GRACE:-120}"
    sleep 2
  done
}

nfs_silent() {
  refuse "the NFS server of $2 (mounted at $1) does not answer: reading its marker timed out after $3 s. Is the storage node up and its NFS server running?"
}

# nfs_local_files WHERE: a mount point that holds local files is never mounted over: they
# would vanish from sight. It is made (as a system folder) when missing.
nfs_local_files() {
  local where=$1 found
  [ ! -L "$where" ] || refuse "$where is a symbolic link (to $(readlink -- "$where")); modelshare mounts only on a real folder: remove the link, then run again."
  if [ ! -e "$where" ]; then
    act "$where does not exist" "made $where" mkdir -p -- "$where"
    return 0
  fi
  [ -d "$where" ] || refuse "$where is a file, where modelshare mounts the storage; move it away, then run again."
  found=$(timeout "$NFS_WAIT" ls -A -- "$where" | head -n 10 | tr '\n' ' ') || refuse "$where did not answer within ${NFS_WAIT}s."
  [ -z "$found" ] || refuse "$where holds local files ($found), and mounting the storage there would hide them; move them away, then run again."
}

# nfs_start WHERE WHAT UNIT: mounted through its unit, within a bounded time. On failure the
# words of mount.nfs itself (the server's reason), which systemd logs under the unit.
nfs_start() {
  local where=$1 what=$2 unit=$3 out reason since
  since=$(date +%s)
  if ! out=$(timeout "$((NFS_WAIT + 10))" systemctl start -- "$unit" 2>&1); then
    reason=$(journalctl -u "$unit" --since "@$since" -o cat --no-pager 2>/dev/null | grep -m 1 'mount\.nfs' || true)
    refuse "could not mount $what (server ${what%:/*}, export /${what#*:/}) at $where: ${reason:-${out:-no answer within $((NFS_WAIT + 10)) s}}"
  fi
}

# nfs_marker_state WHERE CONTENT: ok (the marker at WHERE holds CONTENT), other (it does
# not, or cannot be read: missing, stale) or silent (no answer in time). Read as the storage
# owner (never as root: a link planted in the export would resolve on this node), through
# timeout (a hard mount of a dead server would hang it forever).
# shellcheck disable=SC2154 # owner_uid, owner_gid: set by the program
nfs_marker_state() {
  local got rc=0 uid=${owner_uid:-65534} gid=${owner_gid:-65534}
  # First a name that does not exist: its lookup must reach the server, where the marker may
  # be answered from the client's cache (an NFSv4 read delegation) by a server that is gone.
  timeout "$NFS_WAIT" setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- \
    stat -- "$1/.modelshare-probe-$$-$RANDOM" >/dev/null 2>&1 || rc=$?
  if [ "$rc" = 124 ]; then echo silent; return 0; fi
  rc=0
  got=$(timeout "$NFS_WAIT" setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- cat -- "$1/.modelshare-export" 2>/dev/null) || rc=$?
  if [ "$rc" = 124 ]; then echo silent; elif [ "$rc" = 0 ] && [ "$got" = "$2" ]; then echo ok; else echo other; fi
}

# nfs_unmount WHERE UNIT: unmounted; lazily (saying so) when something still uses it.
nfs_unmount() {
  local where=$1 unit=$2
  if ! timeout "$NFS_WAIT" systemctl stop -- "$unit" 2>/dev/null && findmnt -n -M "$where" >/dev/null; then
    timeout "$NFS_WAIT" umount -- "$where" 2>/dev/null || {
      umount -l -- "$where"
      note "$where was busy: unmounted lazily (it goes when the last process using it lets go)"
    }
  fi
}

# nfs_unmounted WHERE UNIT: destroy: unmounted, its unit gone; the files stay on the server.
nfs_unmounted() {
  local where=$1 unit=$2
  if findmnt -n -M "$where" >/dev/null; then act "$where is still mounted" "unmounted $where" nfs_unmount "$where" "$unit"; fi
  remove_unit "$unit"
}
