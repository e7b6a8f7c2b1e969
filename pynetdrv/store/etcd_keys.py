"""The key layout of the shared store in etcd, under a prefix (e.g. ``/pynetdrv/v1/``):

- ``pools/<pool_id>``: the pool record as JSON (never changed after creation);
- ``cursor/<pool_id>``: the pool's round-robin cursor (hex).  The etcd *version* of this key
  (1 when created, +1 on every put) IS the pool's version: a cursor move or a release puts it once,
  so "the pool is at version v" is one etcd comparison, no read needed;
- ``alloc/<pool_id>/<address as fixed-width lowercase hex>``: one held address, JSON
  ``{"kind", "owner"}``.  Fixed width (8 hex digits for IPv4, 32 for IPv6) makes etcd's byte-ordered
  range reads return addresses in numeric order;
- ``networks/<network_id>``: the network record as JSON; its etcd version is the record's version;
- ``pool-users/<pool_id>``: cluster mode: JSON ``{host: count}``, which hosts use the pool (RequestPool of
  the same subnet on several hosts joins it); the pool goes when the last host releases it;
- ``vni/<n>``: the cluster network (its first pool id) that holds VXLAN VNI n; ``vni-of/<pool_id>``: n;
- ``reg/hosts/<host>``, ``reg/endpoints/<host>/<endpoint_id>``: the registry (registry.registry), under each host's
  lease: a host's record and its endpoints go when it stops renewing;
- ``tombstones/<host>``: JSON ``{"host", "at"}``: the host was declared gone for good (``pynetdrv cluster
  forget-host``); its pynetdrv refuses to join again while it still holds cluster records (registry.tombstone);
- ``pools-changed``, ``networks-changed``: put (empty) with every pool creation / network write, and
  compared by them, so the overlap and bridge-name checks are atomic with the write across hosts.

Pool and network ids are percent-quoted so a ``/`` in an id cannot reach into another key range.
"""

from __future__ import annotations

from urllib.parse import quote


def _id(text: str) -> bytes:
    return quote(text, safe="").encode()


class Keys:
    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix if prefix.endswith(b"/") else prefix + b"/"

    def pools(self) -> bytes:
        return self.prefix + b"pools/"

    def pool(self, pool_id: str) -> bytes:
        return self.pools() + _id(pool_id)

    def cursor(self, pool_id: str) -> bytes:
        return self.prefix + b"cursor/" + _id(pool_id)

    def allocs(self, pool_id: str) -> bytes:
        return self.prefix + b"alloc/" + _id(pool_id) + b"/"

    def alloc(self, pool_id: str, addr: int, family: int) -> bytes:
        return self.allocs(pool_id) + addr_hex(addr, family)

    def pool_users(self, pool_id: str) -> bytes:
        return self.prefix + b"pool-users/" + _id(pool_id)

    def vnis(self) -> bytes:
        return self.prefix + b"vni/"

    def vni(self, n: int) -> bytes:
        return self.vnis() + b"%04d" % n

    def vni_of(self, pool_id: str) -> bytes:
        return self.prefix + b"vni-of/" + _id(pool_id)

    def registry(self) -> bytes:
        return self.prefix + b"reg/"

    def hosts(self) -> bytes:
        return self.registry() + b"hosts/"

    def host(self, host: str) -> bytes:
        return self.hosts() + _id(host)

    def endpoints(self, host: str | None = None) -> bytes:
        base = self.registry() + b"endpoints/"
        return base if host is None else base + _id(host) + b"/"

    def endpoint(self, host: str, endpoint_id: str) -> bytes:
        return self.endpoints(host) + _id(endpoint_id)

    def tombstone(self, host: str) -> bytes:
        return self.prefix + b"tombstones/" + _id(host)

    def pools_changed(self) -> bytes:
        return self.prefix + b"pools-changed"

    def networks_changed(self) -> bytes:
        return self.prefix + b"networks-changed"

    def networks(self) -> bytes:
        return self.prefix + b"networks/"

    def network(self, network_id: str) -> bytes:
        return self.networks() + _id(network_id)


def addr_hex(addr: int, family: int) -> bytes:
    return f"{addr:0{8 if family == 4 else 32}x}".encode()


def addr_of(key: bytes) -> int:
    """The address of an ``alloc/`` key."""
    return int(key.rsplit(b"/", 1)[1], 16)
