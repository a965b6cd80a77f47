#!/bin/sh
# Runs once per boot (lab-seed.service), before systemd-networkd and ssh.
# Applies the node identity found on the seed disk (ext4 labelled "labseed", the VM's
# second virtio disk): hostname, SSH host key, root's authorized_keys, network address.
set -eu

dev=/dev/disk/by-label/labseed
i=0
while [ ! -b "$dev" ] && [ ! -b /dev/vdb ]; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then
    echo "lab-seed: no seed disk found" >&2
    exit 1
  fi
  sleep 0.1
done
[ -b "$dev" ] || dev=/dev/vdb

mnt=/run/lab-seed
mkdir -p "$mnt"
mountpoint -q "$mnt" || mount -t ext4 -o ro,noload "$dev" "$mnt"

# Hostname.
name=$(cat "$mnt/hostname")
echo "$name" >/etc/hostname
echo "$name" >/proc/sys/kernel/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$name" >/etc/hosts

# SSH host key: only the seed's ed25519 key (the host knows its public half).
rm -f /etc/ssh/ssh_host_*
install -m 0600 -o root -g root "$mnt/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root "$mnt/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub

# root's authorized_keys.
install -d -m 0700 -o root -g root /root/.ssh
install -m 0600 -o root -g root "$mnt/authorized_keys" /root/.ssh/authorized_keys

# Network: static address, no gateway, no DNS.
mac=$(cat "$mnt/mac")
address=$(cat "$mnt/address")
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/10-lab.network <<NET
[Match]
MACAddress=$mac

[Network]
Address=$address
LinkLocalAddressing=no
IPv6AcceptRA=no
NET

umount "$mnt"
