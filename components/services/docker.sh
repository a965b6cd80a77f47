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
