# --- the NFS mount on a worker (privileged: nfs-common, a systemd mount unit, the mount) ---
# A hard NFS mount of a server that does not answer hangs every access forever, so every
# access to the mount point goes through `timeout`, and a converge fails with a sentence
# instead of hanging. Only findmnt (which reads /proc, not the mount) runs without one.
NFS_WAIT=${MODELSHARE_NFS_WAIT:-20}
# Where the mount units live (tests point it at a folder of their own).
NFS_UNITS=${MODELSHARE_UNIT_DIR:-/etc/systemd/system}

# Where nfs-common reads settings beside /etc/nfs.conf, and where the kernel keeps each
# mount's readahead (tests point both at folders of their own).
NFS_CONF_D=${MODELSHARE_NFS_CONF_DIR:-/etc/nfs.conf.d}
NFS_BDI=${MODELSHARE_BDI_DIR:-/sys/class/bdi}
# The first line of modelshare's readahead setting (exports.ts renders the same).
NFS_READAHEAD_TAG="# modelshare (nfs.readAheadKiB): the readahead of this worker's NFSv4 mounts; rewritten by every converge, removed on destroy."

# The first line of every mount unit modelshare writes (exports.ts renders the same): how a
# later run finds the units no longer configured. NFS_OLD_TAG: units written before it.
NFS_UNIT_TAG="# modelshare: an NFS mount of the storage; rewritten by every converge, removed when no longer configured and on destroy."
NFS_OLD_TAG="# Written by modelshare; removed on destroy."

# nfs_mount WHERE WHAT UNIT UNIT_CONTENT MARKER_CONTENT: the storage root's export WHAT
# mounted at WHERE by a mount unit of modelshare's (UNIT, named after WHERE as systemd
# requires), proven by the export's marker file, and only then enabled at boot.
nfs_mount() {
  local where=$1 what=$2 unit=$3 marker=$5 source state
  source=$(nfs_source "$where")
  # systemd resolves WHERE at every start: a mount point the owner could swap gets no unit.
  [ -n "$source" ] || nfs_way "$where" "the mount point" /nonexistent
  nfs_unit "$unit" "$4"
  if [ -n "$source" ] && [ "$source" != "$what" ]; then
    act "$where holds $source, not $what" "unmounted $source from $where" nfs_unmount "$where" "$unit"
    if checking; then return 0; fi
    source=""
    nfs_way "$where" "the mount point" /nonexistent
  fi
  if [ -n "$source" ]; then
    state=$(nfs_marker_state "$where" "$marker")
    [ "$state" != silent ] || nfs_silent "$where" "$what" "$NFS_WAIT"
    if [ "$state" = other ]; then
      act "$where does not show this site's export (its marker is missing or another site's)" "unmounted $where (wrong or stale export)" nfs_unmount "$where" "$unit"
      if checking; then return 0; fi
      source=""
      nfs_way "$where" "the mount point" /nonexistent
    fi
  fi
  if [ -z "$source" ]; then
    nfs_local_files "$where"
    act "$what is not mounted at $where" "mounted $what at $where" nfs_start "$where" "$what" "$unit"
    checking || nfs_proven "$where" "$what" "$marker"
  else
    nfs_cache_option "$where" "$what" "$unit" "$4" "$marker"
  fi
  nfs_enabled "$unit"
}

# nfs_cache_option WHERE WHAT UNIT UNIT_CONTENT MARKER: a mount made before nfs.cache was
# turned on (or off) runs with(out) fsc until it is mounted again: it is, when nothing uses it.
# A mount in use (a container reading a model) is not pulled away: the run says so and
# changes nothing. Stopped through systemd, which then knows it is down before it starts it.
nfs_cache_option() {
  local where=$1 what=$2 unit=$3 want=without have=without mounted
  case ",$(printf '%s\n' "$4" | sed -n 's/^Options=//p')," in *,fsc,*) want=with ;; esac
  case ",$(findmnt -n -M "$where" -o OPTIONS 2>/dev/null | tail -n 1 || true)," in *,fsc,*) have=with ;; esac
  [ "$want" != "$have" ] || return 0
  if checking; then
    drift "$where is mounted $have the local cache (fsc); its unit says $want"
    return 0
  fi
  # Inner mounts first (the read-only model store); the step after this one mounts them again.
  while read -r mounted; do
    [ -n "$mounted" ] || continue
    if ! nfs_stopped "$mounted"; then
      note "$mounted is in use, so $where stays mounted $have the local cache (fsc) until it is next mounted: stop what uses it (or reboot), then converge again"
      return 0
    fi
  done < <(findmnt -n -R -M "$where" -o TARGET | tail -n +2 | tac)
  if ! nfs_stopped "$where"; then
    note "$where is in use, so it stays mounted $have the local cache (fsc) until it is next mounted: stop what uses it (or reboot), then converge again"
    return 0
  fi
  nfs_start "$where" "$what" "$unit"
  nfs_proven "$where" "$what" "$5"
  did "mounted $what at $where again, $want the local cache (fsc)"
}

# nfs_stopped WHERE: its mount unit stopped and nothing mounted there any more (never lazily).
nfs_stopped() {
  timeout "$NFS_WAIT" systemctl stop -- "$(systemd-escape --path --suffix=mount -- "$1")" 2>/dev/null || true
  ! findmnt -n -M "$1" >/dev/null
}

# nfs_models_mount WHERE WHAT UNIT UNIT_CONTENT PARENT: the model store's read-only export
# WHAT mounted over its own place WHERE inside the root's mount at PARENT (mounted first). It
# hides only what it shows, so the folders there are no "local files"; the way down from
# PARENT is the server's skeleton, which the owner must not be able to rename either (owner:
# unmanaged, the owner of the mounted root folder).
nfs_models_mount() {
  local where=$1 what=$2 unit=$3 parent=$5 source
  source=$(nfs_source "$where")
  if [ -z "$source" ] && [ -z "$(nfs_source "$parent")" ]; then
    # Checking only: converging, the root's mount came first or the run stopped there.
    checking || refuse "$parent, which holds $where, is not mounted; run again."
    drift "$what is not mounted at $where"
    [ -f "$NFS_UNITS/$unit" ] || drift "$NFS_UNITS/$unit differs from what modelshare writes there"
    return 0
  fi
  [ -n "$source" ] || nfs_way "$where" "the model store's mount point" "$parent"
  nfs_unit "$unit" "$4"
  if [ -n "$source" ] && { [ "$source" != "$what" ] || ! nfs_read_only "$where"; }; then
    act "$where holds $source, not $what read-only" "unmounted $source from $where" nfs_unmount "$where" "$unit"
    if checking; then return 0; fi
    source=""
    nfs_way "$where" "the model store's mount point" "$parent"
  fi
  if [ -z "$source" ]; then
    [ -d "$where" ] || refuse "$where does not show through the mount of $parent (the model store is missing on the server?); converge the storage node, then run again."
    act "$what is not mounted at $where" "mounted $what at $where (read-only)" nfs_start "$where" "$what" "$unit"
    checking || nfs_models_proven "$where" "$what"
  fi
  nfs_enabled "$unit"
}

# nfs_models_proven WHERE WHAT: the new mount is WHAT, read-only, and answers.
nfs_models_proven() {
  if [ "$(nfs_source "$1")" != "$2" ] || ! nfs_read_only "$1"; then refuse "$1 does not show $2 read-only after mounting it; see journalctl -u for its unit, then run again."; fi
  timeout "$NFS_WAIT" ls -- "$1" >/dev/null 2>&1 || nfs_silent "$1" "$2" "$NFS_WAIT"
}

nfs_source() { findmnt -n -M "$1" -o SOURCE 2>/dev/null | tail -n 1 || true; }

nfs_read_only() {
  case ",$(findmnt -n -M "$1" -o OPTIONS 2>/dev/null | tail -n 1 || true)," in *,ro,*) return 0 ;; esac
  return 1
}

# nfs_unit UNIT CONTENT: the unit file holds CONTENT. A unit enabled with other content is
# disabled first: it is enabled again only once its new mount has converged (nfs_enabled).
# shellcheck disable=SC2154 # file_changed: set by install_file
nfs_unit() {
  local unit=$1 path=$NFS_UNITS/$1
  if systemctl is-enabled --quiet -- "$unit" 2>/dev/null && ! { [ -f "$path" ] && [ ! -L "$path" ] && [ "$(cat -- "$path")" = "$2" ]; }; then
    act "$unit is enabled at boot but is not what modelshare writes" "disabled $unit until its new mount is proven" systemctl disable --quiet -- "$unit"
  fi
  install_file "$path" 0644 "$2"
  [ "$file_changed" = no ] || systemctl daemon-reload
}

# nfs_enabled UNIT: enabled at boot. The callers reach it only once the mount converged in
# this run (mounted and proven): a boot never mounts what no converge has seen work.
nfs_enabled() {
  systemctl is-enabled --quiet -- "$1" 2>/dev/null || act "$1 is not enabled at boot" "enabled $1" systemctl enable --quiet -- "$1"
}

# nfs_stale_units KEEP...: every mount unit modelshare wrote (its first line says so) that is
# not among KEEP: a mount point that moved, the models mount of a modelsReadOnly turned off;
# with no KEEP (destroy), all of them. Each is unmounted (inner mounts first), disabled and
# removed; the files stay on the server.
nfs_stale_units() {
  local keep=" $* " f unit where list=""
  for f in "$NFS_UNITS"/*.mount; do
    if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
    case $(head -n 1 -- "$f") in "$NFS_UNIT_TAG" | "$NFS_OLD_TAG") ;; *) continue ;; esac
    unit=${f##*/}
    case $keep in *" $unit "*) continue ;; esac
    where=$(sed -n 's/^Where=//p' -- "$f" | head -n 1)
    list+="${#where} $unit $where"$'\n'
  done
  while read -r _ unit where; do
    [ -n "$unit" ] || continue
    note "$unit mounts $where, which the site no longer configures"
    nfs_unmounted "$where" "$unit"
  done < <(printf '%s' "$list" | sort -rn)
}

# nfs_proven WHERE WHAT CONTENT: a new mount shows this site's marker. A server that has just
# (re)started answers no NFSv4 open during its grace period (90 s by default), so a new mount
# waits for it up to MODELSHARE_NFS_GRACE seconds (120), each try bounded, then gives up.
nfs_proven() {
  local where=$1 what=$2 marker=$3 state deadline=$((SECONDS + ${MODELSHARE_NFS_GRACE:-120})) said=no
  while :; do
    state=$(nfs_marker_state "$where" "$marker")
    case $state in
      ok) return 0 ;;
      other) refuse "$where shows $what, but not this site's marker file (.modelshare-export): another site's export? Check the server, then run again." ;;
    esac
    if [ "$said" = no ]; then
      note "waiting up to ${MODELSHARE_NFS_GRACE:-120} s for the NFS server of $what to answer (one that has just started answers nothing during its grace period, 90 s by default)"
      said=yes
    fi
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

# nfs_unmounted WHERE UNIT: a mount no longer configured (or destroyed): unmounted, its unit
# disabled and gone; the files stay on the server.
nfs_unmounted() {
  local where=$1 unit=$2
  if [ -n "$where" ] && findmnt -n -M "$where" >/dev/null; then act "$where is still mounted" "unmounted $where" nfs_unmount "$where" "$unit"; fi
  [ -e "$NFS_UNITS/$unit" ] || [ -L "$NFS_UNITS/$unit" ] || return 0
  checking || systemctl disable --quiet -- "$unit" 2>/dev/null || true
  remove_file "$NFS_UNITS/$unit"
  checking || systemctl daemon-reload
}

# nfs_readahead_conf [CONTENT]: modelshare's [nfsrahead] setting in nfs.conf.d, which udev
# applies to every new NFS mount, at boot too; with no CONTENT (nfs.readAheadKiB: 0, and
# destroy) none. A file of that name that is not modelshare's is never overwritten or removed.
nfs_readahead_conf() {
  local path=$NFS_CONF_D/modelshare.conf
  if { [ -e "$path" ] || [ -L "$path" ]; } && ! { [ -f "$path" ] && [ ! -L "$path" ] && [ "$(head -n 1 -- "$path")" = "$NFS_READAHEAD_TAG" ]; }; then
    [ -n "${1-}" ] || { note "$path is not modelshare's (its first line is not modelshare's): left as it is"; return 0; }
    refuse "$path is not modelshare's (its first line is not modelshare's), and modelshare writes the NFS readahead there (nfs.readAheadKiB): move it away (or set nfs.readAheadKiB: 0), then run again."
  fi
  if [ -z "${1-}" ]; then
    remove_file "$path"
    return 0
  fi
  [ -d "$NFS_CONF_D" ] || act "$NFS_CONF_D does not exist" "made $NFS_CONF_D" mkdir -p -- "$NFS_CONF_D"
  install_file "$path" 0644 "$1"
}

# nfs_readahead KIB WHERE...: each mount at WHERE reads KIB KiB ahead. A mount made before the
# setting was there (or with another value) is set in place: no remount. Runs after udev has
# applied the setting to a mount this run made, so that the two never disagree.
nfs_readahead() {
  local kib=$1 where dev have
  shift
  if command -v udevadm >/dev/null; then timeout "$NFS_WAIT" udevadm settle >/dev/null 2>&1 || true; fi
  for where; do
    # From /proc, never the mount itself (a dead server would hang it). Not mounted: checking,
    # and the mount's own step has said so.
    dev=$(findmnt -n -M "$where" -o MAJ:MIN 2>/dev/null | tail -n 1 | tr -d ' ' || true)
    [ -n "$dev" ] || continue
    have=$(cat -- "$NFS_BDI/$dev/read_ahead_kb" 2>/dev/null || true)
    if [ -z "$have" ]; then
      note "could not read the readahead of $where ($NFS_BDI/$dev/read_ahead_kb); it is set at its next mount"
      continue
    fi
    [ "$have" = "$kib" ] || act "$where reads $have KiB ahead, not $kib (nfs.readAheadKiB)" "set $where to read $kib KiB ahead" nfs_write "$NFS_BDI/$dev/read_ahead_kb" "$kib"
  done
}

nfs_write() { printf '%s\n' "$2" >"$1"; }
