# --- docker steps (privileged: the engine and its unit; the containers belong to the docker provider) ---

# docker_user USER: the user the docker provider talks to the daemon as (the SSH user; "" for
# whoever runs this program, on a local node) is root or in the docker group (which is root in
# all but name: the admin grants it, not modelshare).
docker_user() {
  local user=${1:-$(id -un)}
  [ "$user" = root ] && return 0
  id -nG -- "$user" 2>/dev/null | tr ' ' '\n' | grep -qx docker ||
    refuse "the docker provider connects as $user, who is neither root nor in the docker group; connect as root (nodes[].user), or add $user to the docker group yourself (it gives root's rights), then run again."
}

# docker_after_mount UNIT: at boot, docker starts after the NFS mount (so containers that restart
# with the daemon find the storage), without depending on it: a failed mount leaves the
# containers stopped on their missing bind sources, never running on an empty folder.
# shellcheck disable=SC2154 # file_changed: set by install_file
docker_after_mount() {
  ensure_system_dir /etc/systemd/system/docker.service.d
  install_file /etc/systemd/system/docker.service.d/modelshare.conf 0644 "# modelshare: docker starts after the shared storage is mounted
[Unit]
Wants=$1
After=$1"
  [ "$file_changed" = no ] || systemctl daemon-reload
}

docker_no_drop_in() {
  [ -e /etc/systemd/system/docker.service.d/modelshare.conf ] || return 0
  remove_file /etc/systemd/system/docker.service.d/modelshare.conf
  remove_system_dir /etc/systemd/system/docker.service.d
  checking || systemctl daemon-reload
}

# docker_image IMAGE SERVICE: an image declared `pull: never` is on the node already.
docker_image() {
  # Checking a node that has no docker yet: the install is the drift already reported.
  if checking && ! command -v docker >/dev/null; then return 0; fi
  docker image inspect --format '{{.Id}}' -- "$1" >/dev/null 2>&1 ||
    refuse "$2's image $1 is not on $(hostname), and services.$2.pull is never: build or load it there (docker load, docker import), or set pull: missing, then run again."
}

# docker_container NAME DIGEST (check only): the container is there, runs, and was made from
# the spec modelshare declares (its digest label). Converging, the docker provider owns it.
docker_container() {
  checking || return 0
  local state
  if ! state=$(docker inspect --type container --format '{{.State.Status}} {{index .Config.Labels "org.modelshare.spec"}}' -- "$1" 2>/dev/null); then
    drift "container $1 is missing"
    return 0
  fi
  [ "${state% *}" = running ] || drift "container $1 is ${state% *}, not running"
  [ "${state#* }" = "$2" ] || drift "container $1 was made from another spec (${state#* }, declared $2)"
}

# docker_firewall DROP_IN RULE...: who may reach the published ports (rules: firewall.ts). The
# chain is written now, and by DROP_IN, a docker.service drop-in, before dockerd starts (the
# kernel's tables are empty after a reboot, and docker restarts its containers at start).
readonly fw_chain=MODELSHARE-SERVICES fw_drop_in=/etc/systemd/system/docker.service.d/modelshare-firewall.conf
# shellcheck disable=SC2154 # file_changed: set by install_file
docker_firewall() {
  local drop_in=$1 want have
  shift
  # Checking a node that has no docker yet: the install is the drift already reported.
  if checking && ! command -v iptables >/dev/null; then return 0; fi
  command -v iptables >/dev/null || refuse "iptables is not on $(hostname) (docker.io depends on it): install it (apt-get install iptables), then run again."
  ensure_system_dir /etc/systemd/system/docker.service.d
  install_file "$fw_drop_in" 0644 "$drop_in"
  [ "$file_changed" = no ] || systemctl daemon-reload
  want=$(printf -- '-N %s\n' "$fw_chain"; [ "$#" -eq 0 ] || printf '%s\n' "$@")
  have=$(iptables -w -S "$fw_chain" 2>/dev/null) || have=""
  [ "$have" = "$want" ] || act "the iptables chain $fw_chain differs from the services' allow lists" "wrote the iptables chain $fw_chain" fw_write "$@"
  iptables -w -C DOCKER-USER -j "$fw_chain" 2>/dev/null ||
    act "DOCKER-USER does not jump to $fw_chain" "DOCKER-USER jumps to $fw_chain" fw_jump
}

fw_write() {
  local rule words
  iptables -w -N "$fw_chain" 2>/dev/null || iptables -w -F "$fw_chain"
  for rule in "$@"; do
    read -ra words <<<"$rule"
    iptables -w "${words[@]}"
  done
}

fw_jump() {
  iptables -w -N DOCKER-USER 2>/dev/null || true
  iptables -w -I DOCKER-USER -j "$fw_chain"
}

# docker_no_firewall: the chain, its jump and its drop-in are gone (destroy, or no container left).
docker_no_firewall() {
  if [ -e "$fw_drop_in" ]; then
    remove_file "$fw_drop_in"
    remove_system_dir /etc/systemd/system/docker.service.d
    checking || systemctl daemon-reload
  fi
  command -v iptables >/dev/null || return 0
  iptables -w -n -L "$fw_chain" >/dev/null 2>&1 || return 0
  act "the iptables chain $fw_chain is still there" "removed the iptables chain $fw_chain" fw_remove
}

fw_remove() {
  while iptables -w -D DOCKER-USER -j "$fw_chain" 2>/dev/null; do :; done
  iptables -w -F "$fw_chain"
  iptables -w -X "$fw_chain"
}

# docker_bind_source PATH: docker (root) resolves a bind source again at every container start
# and reboot, long after this check. It holds only while nobody but root can rename what leads
# there: no component of PATH is a link, and no folder above PATH is writable by the storage
# owner (the skeleton: root's folders above the owner's leaves). Unmanaged owner, or not root:
# links only (the README says the skeleton is the runner's there).
# shellcheck disable=SC2154 # owner_*: set by the program
docker_bind_source() {
  local path=$1 at=$1 child uid gid mode
  require_no_link "$path"
  [ -n "$owner_uid" ] && [ "$EUID" -eq 0 ] || return 0
  while [ "$at" != / ]; do
    child=$at
    at=$(dirname -- "$at")
    [ -e "$at" ] || continue
    read -r uid gid mode < <(stat -c '%u %g %a' -- "$at")
    mode=$((8#$mode))
    # A sticky folder (/tmp) lets others write, but not rename what is not theirs.
    if ((mode & 8#1000)) && [ -e "$child" ] && [ "$(stat -c %u -- "$child")" != "$owner_uid" ]; then continue; fi
    if { [ "$uid" = "$owner_uid" ] && ((mode & 8#200)); } || { [ "$gid" = "$owner_gid" ] && ((mode & 8#20)); } || ((mode & 8#2)); then
      refuse "$at, above the bind source $path, can be renamed by the storage owner (it is $uid:$gid, mode $(printf '%o' "$mode")): docker resolves bind sources again at every start, so a link put there later would be mounted. The storage skeleton is from before root held the folders above the leaves: converge the storage node (it migrates the skeleton), then run again."
    fi
  done
}
