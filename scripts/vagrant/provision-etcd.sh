#!/usr/bin/env bash
# Vagrant provisioner, node1 only: etcd 3.4 (Debian's etcd-server) for the cluster, clients on
# the node's private address :2379 and its loopback, peers on loopback only: the flags the
# one-machine lab gives its etcd (integration/lab/etcd.py), as ETCD_* variables of Debian's unit.
# Usage: provision-etcd.sh NODE_IP OFFLINE(0|1)
set -euo pipefail
ip="${1:?usage: provision-etcd.sh NODE_IP OFFLINE}"
offline="${2:?usage: provision-etcd.sh NODE_IP OFFLINE}"
# shellcheck source=scripts/vagrant/lib-provision.sh
. /opt/pynetdrv-src/scripts/vagrant/lib-provision.sh   # the repository, rsynced before provisioning
need_packages "$offline" etcd-server etcd-client
purl=http://127.0.0.1:2380
cat > /etc/default/etcd <<CONF
# Written by scripts/vagrant/provision-etcd.sh (pynetdrv Vagrant lab)
ETCD_NAME=pnlab
ETCD_LISTEN_CLIENT_URLS=http://$ip:2379,http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://$ip:2379
ETCD_LISTEN_PEER_URLS=$purl
ETCD_INITIAL_ADVERTISE_PEER_URLS=$purl
ETCD_INITIAL_CLUSTER=pnlab=$purl
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_LOGGER=zap
ETCD_LOG_LEVEL=warn
CONF
systemctl enable etcd >/dev/null 2>&1
systemctl restart etcd
wait_for "etcd healthy on $ip:2379" 120 etcdctl --endpoints "http://$ip:2379" endpoint health
