#!/usr/bin/env bash
# Vagrant provisioner, every node: docker.io, pynetdrv in a venv at /opt/pynetdrv, run by
# systemd from the repository's units (contrib/systemd: socket-activated, before docker.service)
# with the one-machine lab's cluster flags (--store etcd://ETCD_IP:2379 --advertise-address
# NODE_IP), and the demo image local/busybox.  Usage: provision-node.sh NODE_IP ETCD_IP OFFLINE(0|1)
# OFFLINE=1: pip installs from the wheelhouse rsynced to /opt/pynetdrv-wheels, packages come from
# the box; OFFLINE=0: apt-get and pip from the network.
set -euo pipefail
usage="usage: provision-node.sh NODE_IP ETCD_IP OFFLINE"
ip="${1:?$usage}"
etcd_ip="${2:?$usage}"
offline="${3:?$usage}"
src=/opt/pynetdrv-src   # the repository, rsynced before provisioning
# shellcheck source=scripts/vagrant/lib-provision.sh
. "$src/scripts/vagrant/lib-provision.sh"
need_packages "$offline" docker.io apparmor iptables python3-venv busybox-static

start=$SECONDS
if [ "$offline" = 1 ]; then
    # A venv without pip, and pip run from its wheel in the wheelhouse: ensurepip alone takes
    # about 2 minutes under QEMU's software emulation.
    [ -x /opt/pynetdrv/bin/python ] || python3 -m venv --without-pip /opt/pynetdrv
    pip_wheel="$(find /opt/pynetdrv-wheels -name 'pip-*.whl' | head -1)"
    /opt/pynetdrv/bin/python "$pip_wheel/pip" install -q --disable-pip-version-check --no-index \
        --find-links /opt/pynetdrv-wheels 'pynetdrv[etcd]'
else
    [ -x /opt/pynetdrv/bin/python ] || python3 -m venv /opt/pynetdrv
    /opt/pynetdrv/bin/pip install -q --disable-pip-version-check "${src}[etcd]"
fi
ln -sf /opt/pynetdrv/bin/pynetdrv /usr/local/bin/pynetdrv
echo "provision: $(pynetdrv --version 2>/dev/null || echo pynetdrv) installed ($((SECONDS - start))s)"

install -m 0644 "$src/contrib/systemd/pynetdrv.socket" "$src/contrib/systemd/pynetdrv.service" /etc/systemd/system/
mkdir -p /etc/systemd/system/pynetdrv.service.d
cat > /etc/systemd/system/pynetdrv.service.d/cluster.conf <<CONF
# Written by scripts/vagrant/provision-node.sh (pynetdrv Vagrant lab): cluster mode.
[Unit]
# etcd on node1 may come up after this node: keep retrying, never give up.
StartLimitIntervalSec=0
[Service]
ExecStart=
ExecStart=/usr/local/bin/pynetdrv serve --store etcd://$etcd_ip:2379 --advertise-address $ip
RestartSec=3
CONF
systemctl daemon-reload
systemctl enable pynetdrv.socket pynetdrv.service >/dev/null 2>&1
systemctl restart pynetdrv.socket pynetdrv.service || true
# (docker.io is enabled in a box already; `enable` then costs ~30 s of sysv-install under TCG)
systemctl is-enabled --quiet docker || systemctl enable docker >/dev/null 2>&1
systemctl start docker
wait_for "pynetdrv active (cluster mode, etcd $etcd_ip)" 300 systemctl is-active --quiet pynetdrv.service
wait_for "docker active" 120 docker info

bash "$src/scripts/vagrant/busybox-image.sh"
