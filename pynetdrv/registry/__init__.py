"""Cluster mode above the store: the registry of hosts and endpoints in etcd (``view``: what it
holds; ``registry``: this host's records under its lease and the watch) and the member that feeds
VXLAN from it and hears from the network driver (``member``).  Built on ``cluster`` (etcd) and
``store`` (keys, records); nothing below imports it."""
