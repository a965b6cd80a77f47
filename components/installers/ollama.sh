# --- Ollama pointed at the shared folder (privileged: its unit and account; the models move as
# the ollama user, never as root) ---

OLLAMA_DROP_IN=/etc/systemd/system/ollama.service.d/modelshare.conf
ollama_restart=no
ollama_stopped=no

# ollama_service: Ollama is installed as the ollama systemd service, with its ollama user (the
# official install script makes both); modelshare does not install Ollama.
ollama_service() {
  systemctl cat ollama.service >/dev/null 2>&1 ||
    refuse "Ollama is not installed as the ollama systemd service on $(hostname); install it with Ollama's own install script (modelshare points an installed Ollama at the shared folder, it does not install it), then run again."
  id -u ollama >/dev/null 2>&1 || refuse "the ollama service is there but the ollama user is not; reinstall Ollama, then run again."
  # It reads and writes a folder every SMB user and container can write: never as root.
  case $(systemctl show -p User --value ollama.service 2>/dev/null) in
    "" | root | 0) refuse "ollama.service runs as root, and it would keep its models in a folder every SMB user and container can write, where a planted link leads root's writes anywhere; run it as the ollama user (User=ollama, as Ollama's install script writes it), then run again." ;;
  esac
}

# ollama_group GID: the ollama user is in the storage owner's group (made, as modelshare, if the
# node has no group with that gid): its way into the shared folders, no mode opened wider.
ollama_group() {
  local gid=$1 group
  group=$(getent group "$gid" | cut -d: -f1) || true
  if [ -z "$group" ]; then
    act "no group has gid $gid (the storage owner's)" "made group modelshare ($gid)" groupadd -g "$gid" modelshare
    group=modelshare
  fi
  if ! id -nG ollama | tr ' ' '\n' | grep -qx -- "$group"; then
    act "the ollama user is not in $group ($gid), the storage owner's group" "added the ollama user to $group ($gid)" usermod -aG "$group" ollama
    ollama_restart=yes # a running ollama has its old groups
  fi
}

# ollama_access DIR GID: as the ollama user, with its groups, every folder down to DIR can be
# entered, and DIR read and written. modelshare never opens a folder wider: the run names the
# first one the ollama user cannot pass.
ollama_access() {
  local dir=$1 owner_group=$2 path="" part uid gid
  uid=$(id -u ollama) gid=$(id -g ollama)
  # Checking before the group was added: that is the drift already reported.
  if checking && ! id -nG ollama | tr ' ' '\n' | grep -qx -- "$(getent group "$owner_group" | cut -d: -f1)"; then return 0; fi
  for part in ${dir//\// }; do
    path=$path/$part
    setpriv --reuid="$uid" --regid="$gid" --init-groups -- test -x "$path" ||
      refuse "the ollama user cannot enter $path ($(stat -c '%U:%G %a' -- "$path" 2>/dev/null || echo missing)); modelshare never opens a folder wider: let it in (a group it is in, or o+x on that folder, yourself), then run again."
  done
  if ! setpriv --reuid="$uid" --regid="$gid" --init-groups -- test -r "$dir" -a -w "$dir"; then
    # Over NFS the server may decide group membership itself (rpc.mountd's manage-gids, which
    # Debian's /etc/nfs.conf turns on): then the ollama user's groups here do not count there.
    if [ "$(stat -f -c %T -- "$dir")" = nfs ]; then
      refuse "the ollama user (uid $uid) cannot write $dir over NFS although it is in the storage owner's group here: the storage node's NFS server decides group membership itself (rpc.mountd's manage-gids, which Debian's /etc/nfs.conf turns on), and there uid $uid is not in gid $owner_group. On the storage node, turn it off (manage-gids=n under [mountd] in /etc/nfs.conf or a file in /etc/nfs.conf.d, then systemctl restart nfs-mountd and exportfs -f), or give uid $uid that group there; modelshare never opens the folder wider. Then run again."
    fi
    refuse "the ollama user cannot read and write $dir ($(stat -c '%U:%G %a' -- "$dir")); it needs the storage owner's group with rwx there: fix the folder's mode (storage.modes.models), then run again."
  fi
}

# ollama_drop_in CONTENT: the unit's drop-in; only a drop-in survives the install script, which
# rewrites ollama.service itself.
# shellcheck disable=SC2154 # file_changed: set by install_file
ollama_drop_in() {
  ensure_system_dir "${OLLAMA_DROP_IN%/*}"
  install_file "$OLLAMA_DROP_IN" 0644 "$1"
  if [ "$file_changed" = yes ]; then
    systemctl daemon-reload
    ollama_restart=yes
  fi
}

# ollama_old DIR: sets ollama_old to the ollama user's own models folder (~ollama/.ollama/models,
# the default) when it holds models to move into DIR, else to "".
ollama_old=''
ollama_old() {
  local home
  home=$(getent passwd ollama | cut -d: -f6)
  ollama_old=$home/.ollama/models
  if [ ! -d "$ollama_old" ] || [ -L "$ollama_old" ] || [ "$ollama_old" -ef "$1" ] ||
    [ -z "$(find -P "$ollama_old" -mindepth 1 -maxdepth 1 -print -quit)" ]; then
    ollama_old=''
  fi
}

# ollama_precheck DIR: before anything is written or stopped, the ollama user compares its old
# folder with DIR (merge_conflicts): a name on both sides with other content (anyone who can
# write DIR, every SMB user, can plant one) stops the run here, with Ollama untouched.
ollama_precheck() {
  ollama_old "$1"
  if [ -z "$ollama_old" ] || checking; then return 0; fi
  run_as "$(id -u ollama)" "$(id -g ollama)" init merge_conflicts "$ollama_old" "$1"
}

# ollama_migrate DIR: models in the ollama user's own folder move into DIR, as the ollama user,
# by the merge rules of the links folders: a name on both sides with other content stops the
# run listing them, nothing moved. The old folder stays, empty. Ollama is stopped for the move;
# from then on, whatever way the run ends, a trap starts it again (ollama_live, on success).
ollama_migrate() {
  ollama_old "$1"
  [ -n "$ollama_old" ] || return 0
  if checking; then
    drift "$ollama_old still holds models; converge moves them into $1"
    return 0
  fi
  if systemctl is-active --quiet ollama.service; then
    trap ollama_restore EXIT
    trap 'exit 1' HUP INT TERM
    ollama_stopped=yes
    systemctl stop ollama.service
  fi
  run_as "$(id -u ollama)" "$(id -g ollama)" init ollama_merge "$ollama_old" "$1"
  ollama_restart=yes
}

# ollama_restore (the EXIT trap while Ollama is stopped): the run stopped before ollama_live;
# Ollama runs again, as it was, and the run still fails.
ollama_restore() {
  [ "$ollama_stopped" = yes ] || return 0
  ollama_stopped=no
  if systemctl start ollama.service; then
    complain "started ollama.service again: it was stopped to move its models, and the run stopped before the move finished."
  else
    complain "ollama.service was stopped to move its models, and could not be started again: start it yourself (systemctl start ollama.service)."
  fi
}

# ollama_merge OLD DIR (as the ollama user)
ollama_merge() {
  merge_into "$1" "$2"
  mkdir -m 0755 -- "$1"
  did "moved the models in $1 into $2"
}

# ollama_live: restarted when its drop-in, its groups or its models changed; running either way.
ollama_live() {
  if [ "$ollama_restart" = yes ]; then
    act "ollama runs with its old settings" "restarted ollama" systemctl restart ollama.service
  fi
  ensure_service ollama.service
  ollama_stopped=no
  trap - EXIT HUP INT TERM
}

# ollama_unpointed: destroy: the drop-in goes and Ollama restarts on its default folder.
ollama_unpointed() {
  [ -e "$OLLAMA_DROP_IN" ] || return 0
  remove_file "$OLLAMA_DROP_IN"
  remove_system_dir "${OLLAMA_DROP_IN%/*}"
  if ! checking; then
    systemctl daemon-reload
    if systemctl is-active --quiet ollama.service; then systemctl restart ollama.service; fi
  fi
}
