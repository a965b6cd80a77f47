# --- the SMB share (privileged: accounts, Samba's configuration, smbd; nothing inside the tree) ---
# modelshare's shares live in a file of their own, /etc/samba/modelshare.conf, which smb.conf
# includes with one line at its end: the admin's shares and [global] lines are never
# rewritten, and destroy removes exactly the line and the file.
SMB_CONF=/etc/samba/smb.conf
SMB_OURS=/etc/samba/modelshare.conf
SMB_INCLUDE="include = $SMB_OURS"
SMB_COMMENT="# modelshare's shares (written by modelshare, removed on destroy); add your own lines above this comment."
smb_changed=no

# smb_owner: the account every SMB user is forced to (force user/group): the storage owner
# (for an unmanaged owner, the root folder's). Sets owner_user and owner_group; a uid or gid
# without an account gets one named modelshare, without a home or a login.
# shellcheck disable=SC2154 # owner_uid, owner_gid, storage_root: set by the program
smb_owner() {
  local uid=$owner_uid gid=$owner_gid
  if [ -z "$uid" ]; then
    require_no_link "$storage_root"
    [ -d "$storage_root" ] || refuse "$storage_root does not exist yet; converge the storage layout first."
    read -r uid gid < <(stat -c '%u %g' -- "$storage_root")
  fi
  if [ "$uid" = 0 ] || [ "$gid" = 0 ]; then
    refuse "the storage owner is $uid:$gid, so every SMB user would write as root; give storage.owner a user's uid and gid."
  fi
  owner_group=$(getent group "$gid" | cut -d: -f1) || owner_group=""
  if [ -z "$owner_group" ]; then
    ! getent group modelshare >/dev/null || refuse "gid $gid (the storage owner's) has no group, and the name modelshare is taken by another gid; make a group with gid $gid, then run again."
    act "no group has gid $gid (the storage owner's)" "made group modelshare with gid $gid" groupadd --gid "$gid" modelshare
    owner_group=modelshare
  fi
  owner_user=$(getent passwd "$uid" | cut -d: -f1) || owner_user=""
  if [ -z "$owner_user" ]; then
    ! getent passwd modelshare >/dev/null || refuse "uid $uid (the storage owner's) has no account, and the name modelshare is taken by another uid; make an account with uid $uid, then run again."
    act "no account has uid $uid (the storage owner's)" "made account modelshare with uid $uid (no login)" \
      useradd --uid "$uid" --gid "$gid" --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modelshare
    owner_user=modelshare
  fi
  owner_uid=$uid owner_gid=$gid
}

# smb_accounts NAME...: Samba needs a Unix account per user; a missing one is made as a system
# account without a home or a login shell (files are written as the storage owner anyway).
smb_accounts() {
  local name
  for name in "$@"; do
    getent passwd "$name" >/dev/null ||
      act "no account $name" "made system account $name (no login)" \
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$name"
  done
}

# smb_folders PATH...: each shared folder is a real folder with no link on the way to it: smbd
# would otherwise serve wherever a link planted there points.
smb_folders() {
  local path
  for path in "$@"; do
    require_no_link "$path"
    [ -d "$path" ] || refuse "$path, a shared folder, does not exist; the storage layout makes it: converge it first."
  done
}

# smb_names KEY NAME [KEY NAME]...: no section of the admin's own configuration (smb.conf and
# what it includes, without modelshare's include) is named NAME. Samba compares section names
# case-insensitively and merges two sections by one name into one share, so the admin's
# [Models] and modelshare's [models] would each get the other's settings.
smb_names() {
  local candidate sections section
  [ -f "$SMB_CONF" ] || return 0
  candidate=$(mktemp)
  grep -vxF -e "$SMB_INCLUDE" -e "$SMB_COMMENT" -- "$SMB_CONF" >"$candidate" || true
  # A configuration testparm rejects is named with testparm's words by smb_conf, next.
  sections=$({ testparm -s --suppress-prompt -- "$candidate" 2>/dev/null || true; } | sed -n 's/^\[\(.*\)\]$/\1/p')
  rm -f -- "$candidate"
  while [ "$#" -ge 2 ]; do
    while IFS= read -r section; do
      [ "${section,,}" != "${2,,}" ] ||
        refuse "the share name $2 ($1) is already a section of this node's Samba configuration, [$section], and Samba compares share names case-insensitively: the two would merge into one share. Choose another $1, or rename or remove [$section] in $SMB_CONF (or the file it includes), then run again."
    done <<<"$sections"
    shift 2
  done
}

# smb_one_filesystem SHARE FOLDER...: Samba's recycle module moves a file deleted over SMB into
# SHARE/.recycle with a rename, and when the rename fails it deletes the file for good
# (vfs_recycle.c: "Move error ..., purging"). A rename fails across filesystems, btrfs
# subvolumes and mounts (even two mounts of one filesystem): EXDEV. So SHARE, each FOLDER (the
# layout's folders the share reaches, in it or through its links) and the bin must be on one
# mount of one filesystem: no mount point inside SHARE or inside a FOLDER outside it, each FOLDER
# on SHARE's device and mount. Checked at every converge and check; a disk mounted in between
# is named by the next `check`.
smb_one_filesystem() {
  local share=$1 dev mount folder target line
  local -a apart=() present=()
  local -A devs=()
  shift
  mount=$(findmnt -rn -o TARGET -T "$share" | head -n 1)
  # Every device number with one stat (a process each costs a tenth of a second under emulation).
  for folder in "$@"; do
    if [ -d "$folder" ]; then present+=("$folder"); fi
  done
  # Split by hand: read would drop a space that ends a name (a root may end in one).
  while IFS= read -r line; do devs[${line#* }]=${line%% *}; done < <(stat -c '%d %n' -- "$share" "${present[@]}" 2>/dev/null)
  dev=${devs[$share]-}
  [ -n "$dev" ] || changed_meanwhile "$share"
  for folder in "${present[@]}"; do
    if [ "${devs[$folder]-}" != "$dev" ]; then
      apart+=("$folder")
    elif [ "${folder#"$share"/}" = "$folder" ] && [ "$(findmnt -rn -o TARGET -T "$folder" | head -n 1)" != "$mount" ]; then
      apart+=("$folder") # outside the share (a link's target): on another mount of the filesystem
    fi
  done
  # findmnt -r writes unsafe bytes of a mount point as \xHH, which printf %b turns back.
  while IFS= read -r target; do
    target=$(printf '%b' "$target")
    case $target in */.zfs/snapshot/*) continue ;; esac # ZFS's read-only snapshots, mounted on access
    for folder in "$share" "$@"; do
      case $target in "$folder"/*) apart+=("$target (a mount point)"); break ;; esac
    done
  done < <(findmnt -rn -o TARGET)
  [ "${#apart[@]}" -eq 0 ] && return 0
  refuse "the SMB share of $share keeps deleted files in its recycle bin $share/.recycle, but these folders it serves are on another filesystem or mount: $(printf '%s, ' "${apart[@]}" | sed 's/, $//'). Samba cannot move a file deleted there into the bin and deletes it for good. Put them on the filesystem of $share, or share that filesystem on its own (smb.path), or set smb.recycle.enabled: false if files deleted over SMB may be gone for good; then run again."
}

# smb_bin SHARE MODE: the recycle bin SHARE/.recycle is a real folder of the storage owner's with
# MODE before smbd needs it: smbd, forced to the owner, cannot make it in a folder of root's (the
# skeleton), and Samba deletes a file for good when it cannot make its bin ("Could not create
# directory, purging"). In a folder of root's, root makes it and hands it over from inside (the
# owner cannot rename names there); in a folder of the owner's (a share of a leaf, an unmanaged
# owner) the owner makes it: root never acts inside a folder the owner can write.
# shellcheck disable=SC2154 # owner_uid, owner_gid: set by smb_owner
smb_bin() {
  local share=$1 mode=$2 bin=$1/.recycle cur
  enter_dir "$share"
  if [ "$(stat -c %u .)" != 0 ]; then
    cd /
    if [ "$EUID" -eq 0 ]; then run_as "$owner_uid" "$owner_gid" clear ensure_dir "$bin" "$mode"; else ensure_dir "$bin" "$mode"; fi
    return 0
  fi
  if [ -L .recycle ] || { [ -e .recycle ] && [ ! -d .recycle ]; }; then
    refuse "$bin, the share's recycle bin, is not a folder; move it away, then run again."
  fi
  if [ ! -e .recycle ]; then
    cd /
    act "the recycle bin $bin is missing" "created the recycle bin $bin (owner $owner_uid:$owner_gid, mode $mode)" smb_make_bin "$bin" "$mode"
    return 0
  fi
  enter_dir "$bin"
  cur=$(stat -c '%u:%g' .)
  [ "$cur" = "$owner_uid:$owner_gid" ] ||
    act "the recycle bin $bin belongs to $cur, not $owner_uid:$owner_gid" "owner of $bin: $cur -> $owner_uid:$owner_gid" chown -h -- "$owner_uid:$owner_gid" .
  cur=$(stat -c '%a' .)
  [ "$((8#$cur))" -eq "$((8#$mode))" ] ||
    act "the mode of the recycle bin $bin is $cur, not $mode" "mode of $bin: $cur -> $mode" chmod -- "$mode" .
  cd /
}

# smb_make_bin PATH MODE: made private, then given to the owner and its mode from inside.
smb_make_bin() {
  mkdir -m 0700 -- "$1" 2>/dev/null || changed_meanwhile "$1"
  enter_dir "$1"
  chown -h -- "$owner_uid:$owner_gid" .
  chmod -- "$2" .
  cd /
}

# smb_conf CONTENT: modelshare's share definitions, the owner's names filled in, validated
# with testparm together with the admin's smb.conf before they go live; then the include line.
# shellcheck disable=SC2154 # file_changed: set by install_file
smb_conf() {
  install_file "$SMB_OURS" 0644 "$(smb_fill "$1")" smb_validate_ours
  [ "$file_changed" = no ] || smb_changed=yes
  grep -qxF -- "$SMB_INCLUDE" "$SMB_CONF" 2>/dev/null && return 0
  [ -f "$SMB_CONF" ] || refuse "$SMB_CONF is missing; reinstall samba (apt-get install --reinstall samba) or write one, then run again."
  if checking; then
    drift "$SMB_CONF does not include $SMB_OURS"
    return 0
  fi
  install_file "$SMB_CONF" "$(stat -c '%a' -- "$SMB_CONF")" "$(cat -- "$SMB_CONF")"$'\n\n'"$SMB_COMMENT"$'\n'"$SMB_INCLUDE" smb_validate
  smb_changed=yes
}

# smb_fill TEXT: TEXT with the storage owner's names and ids (smb_owner) filled in.
smb_fill() {
  local text=$1
  text=${text//@owner_user@/$owner_user}
  text=${text//@owner_group@/$owner_group}
  text=${text//@owner_uid@/$owner_uid}
  printf '%s' "${text//@owner_gid@/$owner_gid}"
}

# smb_recycle SERVICE TIMER: the recycle bin's expiry timer, running as the storage owner.
smb_recycle() {
  ensure_unit modelshare-smb-recycle.service "$(smb_fill "$1")"
  ensure_unit modelshare-smb-recycle.timer "$2"
  ensure_service modelshare-smb-recycle.timer
}

# smb_no_recycle: no expiry timer (the bin's files stay: they are the users').
smb_no_recycle() {
  remove_unit modelshare-smb-recycle.timer
  remove_unit modelshare-smb-recycle.service
}

# smb_validate FILE: testparm accepts FILE as smb.conf; otherwise its words, and failure.
smb_validate() {
  local out
  if ! out=$(testparm -s --suppress-prompt -- "$1" 2>&1 >/dev/null); then
    printf '%s\n' "$out" >&2
    printf 'modelshare: testparm rejects the Samba configuration with modelshare'"'"'s shares in it (its words are above), so the live configuration stays as it was; fix %s (or the site config), then run again.\n' "$SMB_CONF" >&2
    return 1
  fi
}

# smb_validate_ours FILE: smb.conf as it is, including FILE in place of modelshare.conf.
smb_validate_ours() {
  local candidate rc=0
  candidate=$(mktemp)
  if grep -qxF -- "$SMB_INCLUDE" "$SMB_CONF" 2>/dev/null; then
    sed "s|^include = $SMB_OURS\$|include = $1|" -- "$SMB_CONF" >"$candidate"
  else
    { cat -- "$SMB_CONF" 2>/dev/null || true; printf '\ninclude = %s\n' "$1"; } >"$candidate"
  fi
  smb_validate "$candidate" || rc=1
  rm -f -- "$candidate"
  return "$rc"
}

# smb_live: smbd enabled and running, and reading what changed: a reload, not a restart, so
# transfers in progress go on.
# shellcheck disable=SC2154 # service_started: set by ensure_service
smb_live() {
  ensure_service smbd
  if [ "$smb_changed" = yes ] && [ "$service_started" = no ]; then
    smbcontrol smbd reload-config || refuse "smbd did not take the new configuration (smbcontrol smbd reload-config failed); see journalctl -u smbd."
    note "reloaded smbd's configuration (transfers in progress go on)"
  fi
}

# smb_unconf: destroy: the include line and modelshare.conf go, smbd reloads; the admin's
# smb.conf is otherwise untouched, and so is every file in the shares.
# shellcheck disable=SC2154 # changed: the prelude's counter
smb_unconf() {
  local content
  if grep -qxF -- "$SMB_INCLUDE" "$SMB_CONF" 2>/dev/null; then
    content=$(grep -vxF -e "$SMB_INCLUDE" -e "$SMB_COMMENT" -- "$SMB_CONF" || true)
    install_file "$SMB_CONF" "$(stat -c '%a' -- "$SMB_CONF")" "$content"
  fi
  remove_file "$SMB_OURS"
  if [ "$changed" -gt 0 ] && systemctl is-active --quiet smbd; then
    smbcontrol smbd reload-config || true
  fi
}
