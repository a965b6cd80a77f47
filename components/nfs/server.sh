# --- the NFS export (privileged: packages, /etc/exports.d or ganesha's config, the server) ---
# modelshare's exports live in a file of their own, so the admin's /etc/exports (and their
# other files in /etc/exports.d) survive converge and destroy.
NFS_EXPORTS=/etc/exports.d/modelshare.exports
GANESHA_CONF=/etc/ganesha/ganesha.conf
GANESHA_OURS=/etc/ganesha/modelshare.conf
GANESHA_INCLUDE="%include \"$GANESHA_OURS\""

# nfs_export_path PATH: an exported folder is a real folder that the storage owner cannot
# swap for a link: the kernel resolves the path again at every `exportfs -r` and every boot
# (ganesha at every start), long after this check, so the check is that nobody but root can
# rename anything on the way (nfs_way): the skeleton the storage layout makes.
# shellcheck disable=SC2154 # storage_root: set by the program
nfs_export_path() {
  nfs_way "$1" "the exported folder" "$storage_root"
  [ -d "$1" ] || refuse "$1, an exported folder, does not exist; the storage layout makes it: converge it first."
}

# nfs_kernel_exports CONTENT PATH...: the kernel server exports CONTENT (the PATHs) from
# modelshare's file.
# exportfs has no dry run, so a changed file is tried live: if `exportfs -ra` reports an error,
# the previous file comes back (and is applied again) and the run fails with exportfs's words.
nfs_kernel_exports() {
  local content=$1 old="" err path
  shift
  if [ -f "$NFS_EXPORTS" ] && [ ! -L "$NFS_EXPORTS" ] && [ "$(cat -- "$NFS_EXPORTS")" = "$content" ]; then
    for path in "$@"; do
      # Compared as text (awk), not as a pattern: a path may hold . or +.
      exportfs -s 2>/dev/null | awk -v path="$path" '$1 == path { found = 1 } END { exit !found }' || act "$path is not exported (the export table lost it)" "exported $path again" exportfs -ra
    done
    return 0
  fi
  if checking; then
    drift "$NFS_EXPORTS differs from what modelshare writes there"
    return 0
  fi
  mkdir -p /etc/exports.d
  [ ! -L "$NFS_EXPORTS" ] || refuse "$NFS_EXPORTS is a symbolic link; modelshare writes its own file there: remove the link, then run again."
  [ ! -f "$NFS_EXPORTS" ] || old=$(cat -- "$NFS_EXPORTS")
  printf '%s\n' "$content" >"$NFS_EXPORTS.modelshare-new"
  mv -fT -- "$NFS_EXPORTS.modelshare-new" "$NFS_EXPORTS"
  if ! err=$(exportfs -ra 2>&1) || printf '%s\n' "$err" | grep -q "$NFS_EXPORTS"; then
    if [ -n "$old" ]; then printf '%s\n' "$old" >"$NFS_EXPORTS"; else rm -f -- "$NFS_EXPORTS"; fi
    exportfs -ra >/dev/null 2>&1 || true
    printf '%s\n' "$err" >&2
    refuse "exportfs rejects modelshare's exports (its words are above); the previous exports are back in place. Fix the site config (nfs.clients, nfs.mountOptions) or the admin's exports, then run again."
  fi
  did "wrote $NFS_EXPORTS and applied it (exportfs -ra)"
}

# nfs_kernel_unexport: destroy: modelshare's exports file goes and the export table follows.
nfs_kernel_unexport() {
  [ -e "$NFS_EXPORTS" ] || return 0
  remove_file "$NFS_EXPORTS"
  checking || ! command -v exportfs >/dev/null || exportfs -ra
}

# nfs_no_kernel_server: ganesha and the kernel server cannot both hold port 2049.
nfs_no_kernel_server() {
  if systemctl is-active --quiet nfs-server 2>/dev/null; then
    refuse "the kernel NFS server (nfs-server) runs on this node, and nfs-ganesha cannot share port 2049 with it; stop it (systemctl disable --now nfs-server) or use nfs.server: kernel, then run again."
  fi
}

nfs_no_ganesha() {
  if systemctl is-active --quiet nfs-ganesha 2>/dev/null; then
    refuse "nfs-ganesha runs on this node, and the kernel NFS server cannot share port 2049 with it; stop it (systemctl disable --now nfs-ganesha) or use nfs.server: ganesha, then run again."
  fi
}

# nfs_ganesha_exports CONTENT: ganesha's exports in modelshare's own file, included from
# ganesha.conf; a change restarts ganesha, and if it does not come up the previous file comes
# back and the run fails with ganesha's last log lines.
# shellcheck disable=SC2154 # file_changed: set by install_file
nfs_ganesha_exports() {
  local content=$1 old=""
  [ ! -f "$GANESHA_OURS" ] || old=$(cat -- "$GANESHA_OURS")
  install_file "$GANESHA_OURS" 0644 "$content"
  local changed_ours=$file_changed
  if ! grep -qxF -- "$GANESHA_INCLUDE" "$GANESHA_CONF" 2>/dev/null; then
    if checking; then
      drift "$GANESHA_CONF does not include $GANESHA_OURS"
    else
      install_file "$GANESHA_CONF" 0644 "$(cat -- "$GANESHA_CONF" 2>/dev/null || true)"$'\n'"# modelshare's exports (written by modelshare, removed on destroy)"$'\n'"$GANESHA_INCLUDE"
      changed_ours=yes
    fi
  fi
  ensure_service rpcbind
  ensure_service nfs-ganesha
  if [ "$changed_ours" = yes ] && ! checking; then
    systemctl restart nfs-ganesha
    sleep 2
    if ! systemctl is-active --quiet nfs-ganesha; then
      journalctl -u nfs-ganesha -n 5 -o cat --no-pager >&2 || true
      if [ -n "$old" ]; then printf '%s\n' "$old" >"$GANESHA_OURS"; else rm -f -- "$GANESHA_OURS"; fi
      systemctl restart nfs-ganesha || true
      refuse "nfs-ganesha did not start with modelshare's exports (its last lines are above); the previous exports are back in place."
    fi
    note "restarted nfs-ganesha with the new exports"
  fi
}

# nfs_ganesha_unexport: destroy: modelshare's file and include line go; ganesha restarts.
nfs_ganesha_unexport() {
  local content
  if grep -qxF -- "$GANESHA_INCLUDE" "$GANESHA_CONF" 2>/dev/null; then
    content=$(grep -vxF -e "$GANESHA_INCLUDE" -e "# modelshare's exports (written by modelshare, removed on destroy)" -- "$GANESHA_CONF" || true)
    install_file "$GANESHA_CONF" 0644 "$content"
  fi
  [ -e "$GANESHA_OURS" ] || return 0
  remove_file "$GANESHA_OURS"
  checking || ! systemctl is-active --quiet nfs-ganesha || systemctl restart nfs-ganesha || true
}

# The marker: the file workers read to prove they see this site's export, at the export's
# root. In the storage layout's skeleton the root folder is root's and the owner cannot write
# it: root writes the marker (nfs_root_marker). Where the owner can write the root folder
# (owner: unmanaged, a skeleton not yet migrated), root never acts there: the owner does
# (nfs_owner_marker). Exactly one of the two writes.

# nfs_root_marker PATH CONTENT (as root): the marker, when the owner cannot write its folder.
nfs_root_marker() {
  local ids
  read -r -a ids < <(nfs_owner_ids "$storage_root")
  [ -d "${1%/*}" ] || return 0
  if [ "${#ids[@]}" -eq 0 ] || [ "${ids[0]}" = 0 ] || ! nfs_writes "${1%/*}" "${ids[@]}"; then nfs_marker "$1" "$2"; fi
}

# nfs_owner_marker PATH CONTENT (as the owner): the marker, when the owner can write its folder.
nfs_owner_marker() {
  [ ! -w "${1%/*}" ] || nfs_marker "$1" "$2"
}

# nfs_marker PATH CONTENT: written beside itself and renamed into place, world-readable, the
# writer's own (a marker the owner wrote before the skeleton became root's is replaced).
nfs_marker() {
  local path=$1 content=$2
  [ ! -L "$path" ] || act "$path is a symbolic link" "removed the link $path" rm -f -- "$path"
  if [ -f "$path" ] && [ "$(cat -- "$path")" = "$content" ] && [ "$(stat -c '%a %u' -- "$path")" = "644 $EUID" ]; then return 0; fi
  act "$path does not hold this site's marker" "wrote the export marker $path" nfs_write_marker "$path" "$content"
}

# The temporary name is removed first and made anew (noclobber: O_EXCL): a link the owner put
# there while it could still write the folder is never followed.
nfs_write_marker() {
  rm -f -- "$1.modelshare-new"
  (set -C && printf '%s\n' "$2" >"$1.modelshare-new")
  chmod 0644 "$1.modelshare-new"
  mv -fT -- "$1.modelshare-new" "$1"
}
