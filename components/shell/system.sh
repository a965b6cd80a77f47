# --- system steps (privileged: packages, services, files under /etc; never inside the tree) ---

# ensure_packages PACKAGE...: installs what is missing with apt. A node that has them all never
# calls apt, so a node without a reachable mirror converges as long as the packages are there.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' -- "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] || act "packages not installed: ${missing[*]}" "installed ${missing[*]}" apt_install "${missing[@]}"
}

# apt_install PACKAGE...: the node's own apt; if the package lists are stale, update them once.
# apt waits up to 5 minutes for a dpkg lock someone else holds (unattended-upgrades).
apt_install() {
  local log
  note "installing $* with apt on $(hostname); this can take minutes"
  log=$(mktemp)
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -- "$@" >"$log" 2>&1; then
    if ! { apt-get update -q -o DPkg::Lock::Timeout=300 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -- "$@"; } >"$log" 2>&1; then
      tail -n 5 -- "$log" >&2
      rm -f -- "$log"
      refuse "could not install $* with apt-get (its last lines are above); install them by hand or make the node's apt mirror reachable, then run again."
    fi
  fi
  rm -f -- "$log"
}

# ensure_service UNIT: enabled and running. Sets service_started=yes when it was not running
# (a service started now has read its configuration fresh: no reload needed).
service_started=no
# shellcheck disable=SC2034 # service_started: read by the callers
ensure_service() {
  service_started=no
  systemctl is-enabled --quiet -- "$1" 2>/dev/null || act "$1 is not enabled at boot" "enabled $1" systemctl enable --quiet -- "$1"
  if ! systemctl is-active --quiet -- "$1"; then
    act "$1 is not running" "started $1" systemctl start -- "$1"
    service_started=yes
  fi
}

# install_file PATH MODE CONTENT [VALIDATE]: PATH holds exactly CONTENT (and a newline) with
# MODE, root's (the running user's, in an unprivileged run). A changed file is written beside the old one and renamed over it, after
# VALIDATE (a function that says why on stderr and fails) accepted the new one: a rejected
# file never goes live, and the run stops. Sets
# file_changed=yes when it wrote.
file_changed=no
install_file() {
  local path=$1 mode=$2 content=$3 validate=${4-} tmp
  file_changed=no
  if [ -f "$path" ] && [ ! -L "$path" ] && [ "$(stat -c '%a %u' -- "$path")" = "${mode#0} $EUID" ] &&
    [ "$(cat -- "$path")" = "$content" ]; then
    return 0
  fi
  if checking; then
    drift "$path differs from what modelshare writes there"
    return 0
  fi
  [ ! -L "$path" ] || refuse "$path is a symbolic link (to $(readlink -- "$path")); modelshare writes its own file there: remove the link, then run again."
  tmp=$(mktemp -- "$path.modelshare-XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod -- "$mode" "$tmp"
  if [ -n "$validate" ] && ! "$validate" "$tmp"; then
    rm -f -- "$tmp"
    exit 1
  fi
  mv -fT -- "$tmp" "$path"
  did "wrote $path"
  file_changed=yes
}

# remove_file PATH: a file modelshare wrote (configuration, never user data) is gone.
remove_file() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  act "$1 is still there" "removed $1" rm -f -- "$1"
}

# require_systemd NAME: the node has systemd, which NAME (a unit of modelshare's) needs. (Only
# systemctl is looked for: the tests stand in for it on a build machine that boots no systemd.)
require_systemd() {
  command -v systemctl >/dev/null 2>&1 ||
    refuse "$(hostname) has no systemd (no systemctl), and modelshare's $1 is a systemd unit; modelshare manages Debian and Ubuntu nodes booted with systemd (tested on Debian 12)."
}

# ensure_unit NAME CONTENT: a systemd unit of modelshare's in /etc/systemd/system; systemd
# re-reads its units when one changed.
ensure_unit() {
  require_systemd "$1"
  install_file "/etc/systemd/system/$1" 0644 "$2"
  [ "$file_changed" = no ] || systemctl daemon-reload
}

# remove_unit NAME: stopped, disabled and gone (a unit that is not there is fine).
remove_unit() {
  [ -e "/etc/systemd/system/$1" ] || return 0
  if ! checking; then systemctl disable --now --quiet -- "$1" 2>/dev/null || true; fi
  remove_file "/etc/systemd/system/$1"
  checking || systemctl daemon-reload
}

# ensure_system_dir PATH: a folder for modelshare's files under /etc, made with the first file
# written in it (checking, that file's own drift says it is missing).
ensure_system_dir() {
  [ ! -L "$1" ] || refuse "$1 is a symbolic link (to $(readlink -- "$1")); modelshare keeps a folder there: remove the link, then run again."
  [ -d "$1" ] || checking || mkdir -p -- "$1"
}

# remove_system_dir PATH: such a folder goes once nothing is left in it; anything else stays.
remove_system_dir() {
  if [ -d "$1" ] && [ ! -L "$1" ] && ! checking; then rmdir --ignore-fail-on-non-empty -- "$1"; fi
}
