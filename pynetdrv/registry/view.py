"""The registry as this host knows it: every host's record and endpoints, kept from etcd's
``reg/`` prefix by a snapshot and then its watch events (pure: no I/O here).

- ``reg/hosts/<host>``: JSON ``{"vtep": IP, "networks": [cluster network, ...]}``: the host's VXLAN
  endpoint and the cluster networks (by first pool id) it has a Docker network on;
- ``reg/endpoints/<host>/<endpoint id>``: JSON ``{"network", "mac", "ips": [...], "vtep"}``.

Both under the host's lease: a host that stops renewing (gone, partitioned) disappears with all of
its endpoints, and the others remove its entries from their VXLAN devices.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import unquote

from pynetdrv.cluster.kv import KV, Snapshot, WatchEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostEntry:
    vtep: str
    networks: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        return json.dumps({"vtep": self.vtep, "networks": sorted(self.networks)}, sort_keys=True).encode()


@dataclass(frozen=True)
class EndpointEntry:
    network: str
    mac: str
    ips: tuple[str, ...]
    vtep: str

    def to_json(self) -> bytes:
        return json.dumps({"network": self.network, "mac": self.mac, "ips": list(self.ips), "vtep": self.vtep},
                          sort_keys=True).encode()


@dataclass(frozen=True)
class Remote:
    """What one cluster network needs on this host's VXLAN device: the other hosts' endpoints
    (MAC, IPs, VTEP) and the other hosts' VTEPs (flood entries)."""

    endpoints: tuple[EndpointEntry, ...]
    vteps: tuple[str, ...]


@dataclass
class RegistryView:
    prefix: bytes
    hosts: dict[str, HostEntry] = field(default_factory=dict)
    endpoints: dict[tuple[str, str], EndpointEntry] = field(default_factory=dict)
    revision: int = 0

    def replace(self, snapshot: Snapshot) -> None:
        self.hosts.clear()
        self.endpoints.clear()
        for kv in snapshot.kvs:
            self._put(kv)
        self.revision = snapshot.revision

    def apply(self, event: WatchEvent) -> None:
        if event.kind == "resync" and event.snapshot is not None:
            self.replace(event.snapshot)
            return
        if event.kv is None:
            return
        if event.kind == "put":
            self._put(event.kv)
        else:
            self._delete(event.kv.key)
        self.revision = event.revision

    def _parts(self, key: bytes) -> list[str] | None:
        if not key.startswith(self.prefix):
            return None
        return [unquote(p.decode()) for p in key[len(self.prefix):].split(b"/")]

    def _put(self, kv: KV) -> None:
        parts = self._parts(kv.key)
        try:
            d = json.loads(kv.value)
            if parts and parts[0] == "hosts" and len(parts) == 2:
                self.hosts[parts[1]] = HostEntry(str(d["vtep"]), tuple(str(n) for n in d.get("networks", ())))
            elif parts and parts[0] == "endpoints" and len(parts) == 3:
                self.endpoints[(parts[1], parts[2])] = EndpointEntry(
                    str(d["network"]), str(d["mac"]), tuple(str(i) for i in d["ips"]), str(d["vtep"]))
        except (ValueError, KeyError, TypeError) as e:
            log.warning("registry: ignoring malformed %r: %s", kv.key, e)

    def _delete(self, key: bytes) -> None:
        parts = self._parts(key)
        if parts and parts[0] == "hosts" and len(parts) == 2:
            self.hosts.pop(parts[1], None)
        elif parts and parts[0] == "endpoints" and len(parts) == 3:
            self.endpoints.pop((parts[1], parts[2]), None)

    def remote(self, network: str, me: str) -> Remote:
        """The other hosts' part of cluster network ``network``.  A host's endpoints count only while
        its host record is there (same lease: they go together)."""
        eps = tuple(sorted((e for (h, _), e in self.endpoints.items()
                            if h != me and e.network == network and h in self.hosts),
                           key=lambda e: (e.vtep, e.mac)))
        vteps = {h.vtep for name, h in self.hosts.items() if name != me and network in h.networks}
        vteps |= {e.vtep for e in eps}
        return Remote(eps, tuple(sorted(vteps)))

    def members(self) -> tuple[str, ...]:
        """Every host's VTEP (the firewall's allowed VXLAN sources)."""
        return tuple(sorted({h.vtep for h in self.hosts.values()}))

    def users(self, network: str) -> tuple[str, ...]:
        return tuple(sorted(name for name, h in self.hosts.items() if network in h.networks))
