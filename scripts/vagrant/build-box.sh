#!/usr/bin/env bash
# Build the libvirt box for the Vagrant lab from Debian packages (no box registry, no cloud
# image): docs/vagrant-lab.md.  Usage (root): build-box.sh OUT.box
# mmdebstrap makes a Debian 12 root with everything the VMs need offline (docker.io, etcd,
# python3-venv, busybox-static, apparmor for Docker), mke2fs -d turns it into a whole-disk
# ext4 image (no partition table, no bootloader, no loop device), and the box carries the
# kernel and initrd, which vagrant-libvirt boots directly (root=/dev/vda).  Interfaces are ethN
# (net.ifnames=0, as in Debian's public boxes): DHCP on eth0 only, Vagrant's management
# network; Vagrant's Debian guest writes the private network (eth1) for systemd-networkd itself.
set -euo pipefail
out="${1:?usage: build-box.sh OUT.box}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/pynetdrv-box.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
PACKAGES=linux-image-amd64,systemd-sysv,udev,dbus,kmod,openssh-server,sudo,iproute2,iputils-ping
PACKAGES+=,rsync,procps,apparmor,docker.io,etcd-server,etcd-client,python3,python3-venv,busybox-static
keyfile="$(find /usr/share/rubygems-integration/all/gems -path "*/vagrant-*/keys/vagrant.pub" 2>/dev/null | head -1)"
[ -n "$keyfile" ] || { echo "build-box: Vagrant's insecure public key not found (apt-get install vagrant)" >&2; exit 1; }
# The host's own Debian sources when the host is bookworm (the same mirror apt uses here),
# otherwise mmdebstrap's default for the suite.
mirror=()
if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=(/etc/apt/sources.list.d/debian.sources)
fi
# The hooks are single-quoted on purpose: mmdebstrap runs them with $1 = the new root.
# shellcheck disable=SC2016
mmdebstrap --variant=minbase --include="$PACKAGES" \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo vagrant' \
    --customize-hook='echo "vagrant ALL=(ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/vagrant"; chmod 0440 "$1/etc/sudoers.d/vagrant"' \
    --customize-hook="mkdir -p \"\$1/home/vagrant/.ssh\"; cp '$keyfile' \"\$1/home/vagrant/.ssh/authorized_keys\"" \
    --customize-hook='chroot "$1" chown -R vagrant:vagrant /home/vagrant/.ssh; chmod 700 "$1/home/vagrant/.ssh"' \
    --customize-hook='echo debian12 > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 debian12\n" > "$1/etc/hosts"' \
    --customize-hook='echo "/dev/vda / ext4 defaults 0 1" > "$1/etc/fstab"' \
    --customize-hook='printf "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/90-dhcp-eth0.network"' \
    --customize-hook='echo "UseDNS no" > "$1/etc/ssh/sshd_config.d/vagrant.conf"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd serial-getty@ttyS0' \
    --customize-hook='chroot "$1" systemctl disable etcd' \
    --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id"; touch "$1/etc/machine-id"' \
    bookworm "$root" "${mirror[@]}"
box="$work/box"
mkdir "$box"
newest() { find "$root/boot" -name "$1" | sort -V | tail -1; }
cp "$(newest "vmlinuz-*")" "$box/vmlinuz"
cp "$(newest "initrd.img-*")" "$box/initrd.img"
SIZE_GB=8
mke2fs -q -t ext4 -L root -d "$root" "$work/disk.raw" "${SIZE_GB}G"
rm -rf "$root"
qemu-img convert -O qcow2 "$work/disk.raw" "$box/box.img"
rm -f "$work/disk.raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$SIZE_GB" > "$box/metadata.json"
# The box's own Vagrantfile: boot the kernel and initrd it carries (vagrant-libvirt reads them
# from the box's directory on the libvirt host, which is this host).
cat > "$box/Vagrantfile" <<'VF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
  end
end
VF
tar -C "$box" -cf "$out.tmp" metadata.json Vagrantfile vmlinuz initrd.img box.img
mv "$out.tmp" "$out"
echo "build-box: $out ($(du -h "$out" | cut -f1))"
