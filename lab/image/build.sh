#!/usr/bin/env bash
# Builds the lab's VM base image. Called by lab.sh as:
#   bash lab/image/build.sh OUTDIR MIRROR
# Produces OUTDIR/disk.img (raw ext4 root filesystem), OUTDIR/vmlinuz, OUTDIR/initrd.img.
# Everything in lab/image/ is hashed by lab.sh: editing any file here triggers a rebuild.
set -euo pipefail

OUT=${1:?usage: build.sh OUTDIR MIRROR}
MIRROR=${2:?usage: build.sh OUTDIR MIRROR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SUITE=bookworm
IMAGE_SIZE=4G
# Installed in the image.
BASE_PACKAGES=systemd-sysv,linux-image-cloud-amd64,initramfs-tools,openssh-server,iproute2,kmod,udev,sudo,procps,ca-certificates
# Their .debs (plus every missing dependency) are put in the image's offline apt repository
# /srv/lab-apt, so `apt-get install -y <these>` works in the VM.
OFFLINE_PACKAGES=(samba samba-vfs-modules smbclient cifs-utils nfs-kernel-server nfs-common nfs-ganesha nfs-ganesha-vfs rpcbind docker.io rsync acl python3-yaml python3-ruamel.yaml cachefilesd)
# Installed in the image (as the program installs them: no Recommends), their services off.
# Installing them under emulation in every lab run took most of its time (docker.io alone
# minutes per worker, on a loaded machine a quarter of the CI's budget). Samba stays out, so the
# SMB lab file still proves the program's own install from the node's apt.
PREINSTALLED=(smbclient cifs-utils nfs-kernel-server nfs-common nfs-ganesha nfs-ganesha-vfs rpcbind docker.io rsync acl python3-yaml python3-ruamel.yaml cachefilesd)
# Off at boot, as on a server where they are installed but not in use: the program enables and
# starts what a site needs (ensure_service), and the kernel server and ganesha, both enabled,
# would race for port 2049.
PREINSTALLED_OFF=(nfs-server.service nfs-ganesha.service docker.service docker.socket containerd.service)

ROOTFS=$OUT/rootfs
mkdir -p "$OUT"

mounted=()
cleanup_mounts() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  mounted=()
}
trap cleanup_mounts EXIT

bind() { # bind SRC DST
  mount --bind "$1" "$2"
  mounted+=("$2")
}

log() { printf '[build-image] %s\n' "$*" >&2; }

log "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 || {
  tail -n 30 "$OUT/debootstrap.log" >&2
  log "debootstrap failed (full log: $OUT/debootstrap.log)"
  exit 1
}

log "downloading offline packages: ${OFFLINE_PACKAGES[*]}"
mount -t proc proc "$ROOTFS/proc"; mounted+=("$ROOTFS/proc")
mount -t sysfs sysfs "$ROOTFS/sys"; mounted+=("$ROOTFS/sys")
bind /dev "$ROOTFS/dev"
bind /dev/pts "$ROOTFS/dev/pts"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOTFS/etc/apt/sources.list"
chroot "$ROOTFS" apt-get update -q >"$OUT/apt-download.log" 2>&1
chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install --download-only -y -q "${OFFLINE_PACKAGES[@]}" >>"$OUT/apt-download.log" 2>&1 || {
  tail -n 30 "$OUT/apt-download.log" >&2
  log "downloading offline packages failed"
  exit 1
}
log "installing: ${PREINSTALLED[*]} (services off)"
# policy-rc.d 101: no package starts a service in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install --no-install-recommends -y -q "${PREINSTALLED[@]}" >"$OUT/apt-install.log" 2>&1 || {
  tail -n 30 "$OUT/apt-install.log" >&2
  log "installing the preinstalled packages failed (full log: $OUT/apt-install.log)"
  exit 1
}
chroot "$ROOTFS" systemctl disable "${PREINSTALLED_OFF[@]}" >>"$OUT/apt-install.log" 2>&1
for unit in "${PREINSTALLED_OFF[@]}"; do
  if chroot "$ROOTFS" systemctl is-enabled --quiet "$unit" 2>/dev/null; then
    log "$unit is still enabled in the image"
    exit 1
  fi
done
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
cleanup_mounts
if findmnt -rn -o TARGET | grep -qF "$ROOTFS"; then
  log "something is still mounted under $ROOTFS, refusing to continue"
  exit 1
fi

log "building the offline apt repository /srv/lab-apt"
mkdir -p "$ROOTFS/srv/lab-apt"
mv "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS/srv/lab-apt/"
(
  cd "$ROOTFS/srv/lab-apt"
  dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null
  gzip -9c Packages >Packages.gz
  apt-ftparchive release . >Release
)
printf 'deb [trusted=yes] file:/srv/lab-apt ./\n' >"$ROOTFS/etc/apt/sources.list"
rm -rf "$ROOTFS"/etc/apt/sources.list.d/*
rm -rf "$ROOTFS"/var/lib/apt/lists/*
mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
rm -f "$ROOTFS"/var/cache/apt/*.bin

log "configuring the image"
# No DNS inside the lab network.
: >"$ROOTFS/etc/resolv.conf"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$ROOTFS/etc/fstab"
echo lab-unconfigured >"$ROOTFS/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$ROOTFS/etc/hosts"
# Host keys come from each node's seed disk, never from the image.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
install -m 0755 "$HERE/lab-seed.sh" "$ROOTFS/usr/local/sbin/lab-seed"
install -m 0644 "$HERE/lab-seed.service" "$ROOTFS/etc/systemd/system/lab-seed.service"
chroot "$ROOTFS" systemctl enable lab-seed.service systemd-networkd.service ssh.service >>"$OUT/apt-download.log" 2>&1
# The image has no root password; login is by key only (Debian's default sshd_config).
rm -f "$ROOTFS/etc/machine-id" "$ROOTFS/var/lib/dbus/machine-id"
: >"$ROOTFS/etc/machine-id"

log "copying kernel and initrd"
vmlinuz=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
initrd=$(find "$ROOTFS/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
if [ -z "$vmlinuz" ] || [ -z "$initrd" ]; then
  log "no kernel/initrd in $ROOTFS/boot"
  exit 1
fi
cp "$vmlinuz" "$OUT/vmlinuz"
cp "$initrd" "$OUT/initrd.img"

log "mkfs.ext4 -d rootfs disk.img $IMAGE_SIZE"
mkfs.ext4 -q -F -L labroot -d "$ROOTFS" "$OUT/disk.img" "$IMAGE_SIZE" >/dev/null

log "removing the rootfs folder"
if findmnt -rn -o TARGET | grep -qF "$ROOTFS"; then
  log "something is still mounted under $ROOTFS, not removing it"
  exit 1
fi
rm -rf --one-file-system "$ROOTFS"
log "done"
