#!/usr/bin/env bash
# modelshare lab: N Debian 12 VMs (QEMU, software emulation) on a private bridge inside the
# network namespace "modelshare-lab" (MODELSHARE_LAB_NS), reachable only from inside it.
# Usage: bash lab/lab.sh up [N] | down | status | ssh NODE [CMD...] | exec -- CMD... | link NODE down|up
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_DIR=${MODELSHARE_LAB_DIR:-$HOME/.cache/modelshare-lab}
# A second lab beside the first (lab/test.sh runs two halves of the suite at once): its own
# namespace and folder, the same addresses inside it, the first one's images.
NS=${MODELSHARE_LAB_NS:-modelshare-lab}
BRIDGE=labbr0
NET_PREFIX=10.77.0
BRIDGE_ADDR=$NET_PREFIX.1/24
VM_MEMORY_MIB=1536
SSH_TIMEOUT_S=${MODELSHARE_LAB_SSH_TIMEOUT:-300}
RUN_DIR=$LAB_DIR/run
KEYS_DIR=$LAB_DIR/keys
IMAGES_DIR=${MODELSHARE_LAB_IMAGES:-$LAB_DIR/images}
KNOWN_HOSTS=$LAB_DIR/known_hosts

die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'lab: %s\n' "$*" >&2; }

usage() {
  cat >&2 <<'USAGE'
usage: bash lab/lab.sh <command>
  up [N]              build the image if needed and boot N nodes (default 3)
  down                stop the nodes and remove the network namespace
  status              show which nodes run and whether SSH answers
  ssh NODE [CMD...]   ssh as root into NODE (node1, node2, ...)
  exec -- CMD...      run CMD inside the lab's network namespace
  link NODE down|up   cut or restore NODE's network link
  reboot NODE         reboot NODE (its disk is kept) and wait until SSH answers again
USAGE
  exit 2
}

# ---------------------------------------------------------------- prerequisites

need_root() {
  [ "$(id -u)" -eq 0 ] || die "the lab needs root (network namespaces, taps, debootstrap): run it as root."
}

need_cmd() { # need_cmd COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 || die "'$1' is missing: install the Debian package '$2' (apt-get install -y $2)."
}

need_run_tools() {
  need_cmd ip iproute2
  need_cmd qemu-system-x86_64 qemu-system-x86
  need_cmd qemu-img qemu-utils
  need_cmd mkfs.ext4 e2fsprogs
  need_cmd ssh openssh-client
  need_cmd ssh-keygen openssh-client
  need_cmd flock util-linux
  [ -c /dev/net/tun ] || die "/dev/net/tun is missing: the kernel's tun driver is needed for the VMs' taps."
}

need_build_tools() {
  need_cmd debootstrap debootstrap
  need_cmd dpkg-scanpackages dpkg-dev
  need_cmd apt-ftparchive apt-utils
  need_cmd chroot coreutils
  need_cmd findmnt util-linux
}

need_free_disk() { # need_free_disk GIB
  local avail_kib
  avail_kib=$(df -Pk "$LAB_DIR" | awk 'NR == 2 { print $4 }')
  [ "$avail_kib" -ge $(($1 * 1024 * 1024)) ] ||
    die "only $((avail_kib / 1024 / 1024)) GiB free in $LAB_DIR, the lab needs at least $1 GiB (set MODELSHARE_LAB_DIR to a bigger disk)."
}

# Debian mirror, read from this machine's apt sources (never hard-coded).
find_mirror() {
  local uri=""
  if [ -n "${MODELSHARE_LAB_MIRROR:-}" ]; then
    printf '%s\n' "$MODELSHARE_LAB_MIRROR"
    return
  fi
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: first stanza whose Suites has the plain "bookworm" suite.
    uri=$(awk '
      function flush() { if (!found && suite_ok && uris != "") { split(uris, u, " "); print u[1]; found = 1 } uris = ""; suite_ok = 0 }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "uris:" { $1 = ""; uris = $0 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite_ok = 1 }
      END { flush() }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "no Debian bookworm mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (or set MODELSHARE_LAB_MIRROR)."
  printf '%s\n' "${uri%/}"
}

# ---------------------------------------------------------------- image

image_hash() {
  (cd "$HERE/image" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

image_dir() { printf '%s/%s\n' "$IMAGES_DIR" "$(image_hash)"; }

safe_rm_tree() { # removes a build folder, never when something is mounted under it
  local dir=$1
  [ -e "$dir" ] || return 0
  if findmnt -rn -o TARGET | grep -qF "$dir"; then
    die "something is still mounted under $dir: unmount it, then remove the folder."
  fi
  rm -rf --one-file-system "$dir"
}

ensure_image() {
  local dir tmp start mirror
  dir=$(image_dir)
  if [ -f "$dir/.complete" ]; then
    return 0
  fi
  need_build_tools
  need_free_disk 6
  mirror=$(find_mirror)
  tmp=$dir.building
  safe_rm_tree "$tmp"
  say "building the VM image (cold build, several minutes) into $dir"
  start=$(date +%s)
  bash "$HERE/image/build.sh" "$tmp" "$mirror" || die "image build failed (logs in $tmp)."
  printf '%s\n' "$(($(date +%s) - start))" >"$tmp/build-seconds"
  touch "$tmp/.complete"
  safe_rm_tree "$dir"
  mv "$tmp" "$dir"
  # Images built from older recipes are no longer needed.
  local old
  for old in "$IMAGES_DIR"/*; do
    [ "$old" = "$dir" ] && continue
    [ -d "$old" ] && safe_rm_tree "$old"
  done
  say "image built in $(cat "$dir/build-seconds") s"
}

# ---------------------------------------------------------------- nodes

node_index() { # node1 -> 1
  [[ $1 =~ ^node([1-9][0-9]?)$ ]] || die "unknown node '$1' (expected node1, node2, ...)."
  printf '%s\n' "${BASH_REMATCH[1]}"
}
node_addr() { printf '%s.%s\n' "$NET_PREFIX" "$((10 + $1))"; }
node_mac() { printf '52:54:00:77:00:%02x\n' "$1"; }
node_tap() { printf 'labtap%s\n' "$1"; }
node_pidfile() { printf '%s/node%s.pid\n' "$RUN_DIR" "$1"; }

# Indexes of the nodes that have a pid file (started by `up`), ascending.
started_nodes() {
  local f
  for f in "$RUN_DIR"/node*.pid; do
    [ -f "$f" ] || continue
    f=${f##*/node}
    printf '%s\n' "${f%.pid}"
  done | sort -n
}

# Prints the pid of node I's QEMU if it is alive and really is that node's QEMU.
node_pid() {
  local pf pid
  pf=$(node_pidfile "$1")
  [ -f "$pf" ] || return 1
  pid=$(tr -dc '0-9' <"$pf")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-name lab-node$1 " || return 1
  printf '%s\n' "$pid"
}

ensure_keys() { # per-node client key and SSH host key, generated once and kept
  local d=$KEYS_DIR/node$1
  mkdir -p "$d"
  chmod 700 "$KEYS_DIR" "$d"
  [ -f "$d/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "modelshare-lab-client-node$1" -f "$d/id_ed25519"
  [ -f "$d/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "root@lab-node$1" -f "$d/ssh_host_ed25519_key"
}

host_key() { cut -d' ' -f1,2 "$KEYS_DIR/node$1/ssh_host_ed25519_key.pub"; }

make_seed() {
  local i=$1 seed=$RUN_DIR/seed$1 d=$KEYS_DIR/node$1
  safe_rm_tree "$seed.d"
  mkdir -p "$seed.d"
  printf 'lab-node%s\n' "$i" >"$seed.d/hostname"
  printf '%s/24\n' "$(node_addr "$i")" >"$seed.d/address"
  node_mac "$i" >"$seed.d/mac"
  cp "$d/ssh_host_ed25519_key" "$d/ssh_host_ed25519_key.pub" "$seed.d/"
  cp "$d/id_ed25519.pub" "$seed.d/authorized_keys"
  rm -f "$seed.img"
  mkfs.ext4 -q -F -L labseed -d "$seed.d" "$seed.img" 16M >/dev/null
  rm -rf "$seed.d"
}

ns_exists() { ip netns list | awk '{ print $1 }' | grep -qx "$NS"; }

net_up() {
  local n=$1 i tap
  if ! ns_exists; then
    ip netns add "$NS"
  fi
  ip -n "$NS" link set lo up
  if ! ip -n "$NS" link show "$BRIDGE" >/dev/null 2>&1; then
    ip -n "$NS" link add "$BRIDGE" type bridge
    ip -n "$NS" addr add "$BRIDGE_ADDR" dev "$BRIDGE"
  fi
  ip -n "$NS" link set "$BRIDGE" up
  for ((i = 1; i <= n; i++)); do
    tap=$(node_tap "$i")
    ip -n "$NS" link show "$tap" >/dev/null 2>&1 || ip -n "$NS" tuntap add dev "$tap" mode tap
    ip -n "$NS" link set "$tap" master "$BRIDGE"
    ip -n "$NS" link set "$tap" up
  done
}

start_vm() {
  local i=$1 img=$2 overlay=$RUN_DIR/node$1.qcow2 machine_id
  rm -f "$overlay"
  qemu-img create -q -f qcow2 -b "$img/disk.img" -F raw "$overlay"
  machine_id=$(printf 'modelshare-lab-node%s' "$i" | sha256sum | cut -c1-32)
  : >"$LAB_DIR/logs/node$i.serial.log"
  ip netns exec "$NS" qemu-system-x86_64 \
    -name "lab-node$i" \
    -machine pc,accel=tcg -smp 1 -m "$VM_MEMORY_MIB" \
    -nodefaults -display none -monitor none \
    -serial "file:$LAB_DIR/logs/node$i.serial.log" \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw apparmor=0 systemd.machine_id=$machine_id systemd.firstboot=off" \
    -drive "file=$overlay,if=virtio,format=qcow2,cache=unsafe" \
    -drive "file=$RUN_DIR/seed$i.img,if=virtio,format=raw,readonly=on" \
    -netdev "tap,id=net0,ifname=$(node_tap "$i"),script=no,downscript=no" \
    -device "virtio-net-pci,netdev=net0,mac=$(node_mac "$i")" \
    -device virtio-rng-pci \
    -pidfile "$(node_pidfile "$i")" -daemonize \
    9>&- 2>"$LAB_DIR/logs/node$i.qemu.log" ||
    die "QEMU for node$i did not start: see $LAB_DIR/logs/node$i.qemu.log"
}

ssh_opts() { # ssh_opts I -> options, one per line
  printf '%s\n' -F /dev/null -i "$KEYS_DIR/node$1/id_ed25519" -o IdentitiesOnly=yes \
    -o "UserKnownHostsFile=$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR \
    -o ServerAliveInterval=5 -o ServerAliveCountMax=3
}

node_ssh() { # node_ssh I CONNECT_TIMEOUT [CMD...]
  local i=$1 timeout=$2 opts
  shift 2
  mapfile -t opts < <(ssh_opts "$i")
  ip netns exec "$NS" ssh "${opts[@]}" -o "ConnectTimeout=$timeout" "root@$(node_addr "$i")" "$@"
}

ssh_answers() { node_ssh "$1" 3 true </dev/null >/dev/null 2>&1; }

wait_for_ssh() {
  local n=$1 start deadline i pending
  start=$(date +%s)
  deadline=$((start + SSH_TIMEOUT_S))
  pending=$(seq 1 "$n")
  while [ -n "$pending" ]; do
    local still=""
    for i in $pending; do
      node_pid "$i" >/dev/null ||
        die "node$i's QEMU exited during boot: see $LAB_DIR/logs/node$i.serial.log and $LAB_DIR/logs/node$i.qemu.log"
      if ssh_answers "$i"; then
        say "node$i ($(node_addr "$i")) answers SSH after $(($(date +%s) - start)) s"
      else
        still="$still $i"
      fi
    done
    pending=${still# }
    [ -z "$pending" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      i=${pending%% *}
      die "node$i ($(node_addr "$i")) did not answer SSH within ${SSH_TIMEOUT_S} s: see its serial log $LAB_DIR/logs/node$i.serial.log (the VMs keep running for inspection; 'bash lab/lab.sh down' stops them)."
    fi
    sleep 2
  done
  printf '%s\n' "$(($(date +%s) - start))" >"$RUN_DIR/boot-seconds"
}

write_nodes_json() {
  local i first=1 tmp=$LAB_DIR/nodes.json.tmp
  {
    printf '{"namespace":"%s","nodes":[' "$NS"
    for i in $(started_nodes); do
      [ "$first" -eq 1 ] || printf ','
      first=0
      printf '{"name":"node%s","address":"%s","port":22,"user":"root","privateKeyPath":"%s","hostKey":"%s"}' \
        "$i" "$(node_addr "$i")" "$KEYS_DIR/node$i/id_ed25519" "$(host_key "$i")"
    done
    printf ']}\n'
  } >"$tmp"
  mv "$tmp" "$LAB_DIR/nodes.json"
}

print_nodes() {
  local i
  for i in $(started_nodes); do
    printf 'node%s\t%s\tlab-node%s\n' "$i" "$(node_addr "$i")" "$i"
  done
  printf 'nodes file: %s\n' "$LAB_DIR/nodes.json"
  printf '# to deploy Pulumi.lab.yaml onto these nodes with pulumi (from bash lab/lab.sh exec -- ...):\n'
  for i in $(started_nodes); do
    printf "npx pulumi config set --stack lab --path 'modelshare:nodes[%s].hostKey' '%s'\n" "$((i - 1))" "$(host_key "$i")"
    printf 'npx pulumi config set --stack lab --secret labKeyNode%s < %s\n' "$i" "$KEYS_DIR/node$i/id_ed25519"
  done
}

# ---------------------------------------------------------------- commands

with_lock() {
  mkdir -p "$LAB_DIR"
  exec 9>"$LAB_DIR/.lock"
  flock -w 120 9 || die "another lab command (up/down) has held $LAB_DIR/.lock for 2 minutes: wait for it, or check 'fuser -v $LAB_DIR/.lock'."
}

cmd_up() {
  local n=${1:-3} i alive=0 started=0 img start
  [[ $n =~ ^[1-9]$ ]] || die "N must be between 1 and 9 (got '$n')."
  need_root
  need_run_tools
  with_lock
  for i in $(started_nodes); do
    started=$((started + 1))
    if node_pid "$i" >/dev/null; then alive=$((alive + 1)); fi
  done
  if [ "$started" -gt 0 ]; then
    if [ "$alive" -eq "$started" ] && ns_exists; then
      say "the lab is already up with $started node(s)"
      wait_for_ssh "$started"
      print_nodes
      return 0
    fi
    die "the lab is partly up ($alive of $started node(s) running): run 'bash lab/lab.sh down' first."
  fi
  mkdir -p "$RUN_DIR" "$KEYS_DIR" "$IMAGES_DIR" "$LAB_DIR/logs"
  ensure_image # checks for 6 GiB free when it has to build
  need_free_disk 2
  img=$(image_dir)
  start=$(date +%s)
  : >"$KNOWN_HOSTS"
  for ((i = 1; i <= n; i++)); do
    ensure_keys "$i"
    printf '%s %s\n' "$(node_addr "$i")" "$(host_key "$i")" >>"$KNOWN_HOSTS"
    make_seed "$i"
  done
  net_up "$n"
  for ((i = 1; i <= n; i++)); do
    start_vm "$i" "$img"
  done
  write_nodes_json
  say "booting $n node(s), waiting for SSH (up to ${SSH_TIMEOUT_S} s)"
  if ! wait_for_ssh "$n"; then
    exit 1
  fi
  say "all $n node(s) answer SSH, $(($(date +%s) - start)) s after start"
  print_nodes
}

cmd_down() {
  need_root
  with_lock
  local i pid t
  for i in $(started_nodes); do
    if pid=$(node_pid "$i"); then
      kill "$pid" 2>/dev/null || true
      for ((t = 0; t < 50; t++)); do
        [ -d "/proc/$pid" ] || break
        sleep 0.2
      done
      if [ -d "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
      say "stopped node$i (pid $pid)"
    fi
    rm -f "$(node_pidfile "$i")" "$RUN_DIR/node$i.qcow2" "$RUN_DIR/seed$i.img"
  done
  if ns_exists; then
    local dev
    for dev in $(ip -n "$NS" -o link show type tun 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
      ip -n "$NS" link del "$dev" 2>/dev/null || true
    done
    ip -n "$NS" link del "$BRIDGE" 2>/dev/null || true
    ip netns del "$NS"
    say "removed network namespace $NS"
  fi
  rm -f "$LAB_DIR/nodes.json"
  say "the lab is down"
}

cmd_status() {
  need_root
  local i any=0 running answers
  if ns_exists; then say "namespace $NS: present"; else say "namespace $NS: absent"; fi
  for i in $(started_nodes); do
    any=1
    running=no answers=no
    if node_pid "$i" >/dev/null; then
      running="yes (pid $(node_pid "$i"))"
      if ns_exists && ssh_answers "$i"; then answers=yes; fi
    fi
    printf 'node%s\t%s\trunning: %s\tssh: %s\n' "$i" "$(node_addr "$i")" "$running" "$answers"
  done
  [ "$any" -eq 1 ] || say "no nodes (run 'bash lab/lab.sh up')"
}

cmd_ssh() {
  [ $# -ge 1 ] || usage
  need_root
  local i
  i=$(node_index "$1")
  shift
  ns_exists || die "the lab is not up (no namespace $NS): run 'bash lab/lab.sh up'."
  [ -f "$KEYS_DIR/node$i/id_ed25519" ] || die "node$i has no key in $KEYS_DIR: was it started by 'up'?"
  node_ssh "$i" 10 "$@"
}

cmd_exec() {
  [ "${1:-}" = "--" ] && shift
  [ $# -ge 1 ] || usage
  need_root
  ns_exists || die "the lab is not up (no namespace $NS): run 'bash lab/lab.sh up'."
  exec ip netns exec "$NS" "$@"
}

cmd_link() {
  [ $# -eq 2 ] || usage
  need_root
  local i
  i=$(node_index "$1")
  case $2 in up | down) ;; *) usage ;; esac
  ns_exists || die "the lab is not up (no namespace $NS)."
  ip -n "$NS" link show "$(node_tap "$i")" >/dev/null 2>&1 || die "node$i has no tap ($(node_tap "$i")) in $NS."
  ip -n "$NS" link set "$(node_tap "$i")" "$2"
  say "node$i link $2"
}

cmd_reboot() {
  [ $# -eq 1 ] || usage
  need_root
  local i deadline
  i=$(node_index "$1")
  ns_exists || die "the lab is not up (no namespace $NS)."
  # QEMU runs without -no-reboot: the guest restarts with the same kernel, seed and overlay.
  node_ssh "$i" 10 'systemctl reboot' </dev/null >/dev/null 2>&1 || true
  deadline=$(($(date +%s) + 60))
  while ssh_answers "$i"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "node$i still answers SSH 60 s after 'systemctl reboot'."
    sleep 1
  done
  deadline=$(($(date +%s) + 300))
  until ssh_answers "$i"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "node$i did not answer SSH within 300 s of its reboot: see $LAB_DIR/logs/node$i.serial.log"
    sleep 2
  done
  say "node$i rebooted and answers SSH"
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    ssh) cmd_ssh "$@" ;;
    exec) cmd_exec "$@" ;;
    link) cmd_link "$@" ;;
    reboot) cmd_reboot "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
