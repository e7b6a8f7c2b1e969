"""The catalog of cluster networks in etcd: ``<prefix>catalog/<docker network name>`` = JSON entry.

An entry holds what ``docker network create`` needs to make the same network on another host (the
spec), a generation (1 for a name's first network, +1 each time the name is created again after a
removal), which hosts have it (host -> their local Docker network ID), and, once removed, a
tombstone naming who removed it and which hosts still hold it because containers use it there.
Every write is a compare-and-swap on the key's mod revision, so hosts never overwrite each other:
a lost race is planned again from a fresh read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import quote, unquote

from pynetdrv.cluster.etcd import EtcdClient

CATALOG = b"catalog/"


@dataclass(frozen=True)
class Subnet:
    subnet: str
    gateway: str = ""
    ip_range: str = ""
    aux: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """What makes the network the same on every host."""

    subnets: tuple[Subnet, ...]
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ipam_driver: str = ""
    ipam_options: Mapping[str, str] = field(default_factory=dict)
    ipv6: bool = False
    internal: bool = False
    attachable: bool = False


@dataclass(frozen=True)
class Entry:
    name: str
    generation: int
    spec: Spec
    #: host (advertise address) -> that host's Docker network ID
    hosts: Mapping[str, str] = field(default_factory=dict)
    tombstone: bool = False
    removed_by: str = ""
    #: after removal: host -> how many containers there still use it
    holding: Mapping[str, int] = field(default_factory=dict)
    #: etcd mod revision the entry was read at (0: not in etcd)
    revision: int = 0

    def with_host(self, host: str, network_id: str) -> Entry:
        return replace(self, hosts={**self.hosts, host: network_id})

    def without_host(self, host: str) -> Entry:
        return replace(self, hosts={h: i for h, i in self.hosts.items() if h != host},
                       holding={h: n for h, n in self.holding.items() if h != host})


def spec_to_json(spec: Spec) -> dict[str, Any]:
    return {"subnets": [{"subnet": s.subnet, "gateway": s.gateway, "ip_range": s.ip_range, "aux": dict(s.aux)}
                        for s in spec.subnets],
            "options": dict(spec.options), "labels": dict(spec.labels), "ipam_driver": spec.ipam_driver,
            "ipam_options": dict(spec.ipam_options), "ipv6": spec.ipv6, "internal": spec.internal,
            "attachable": spec.attachable}


def spec_from_json(d: Mapping[str, Any]) -> Spec:
    return Spec(subnets=tuple(Subnet(str(s["subnet"]), str(s.get("gateway", "")), str(s.get("ip_range", "")),
                                     {str(k): str(v) for k, v in dict(s.get("aux") or {}).items()})
                              for s in d.get("subnets") or ()),
                options=_strs(d.get("options")), labels=_strs(d.get("labels")),
                ipam_driver=str(d.get("ipam_driver", "")), ipam_options=_strs(d.get("ipam_options")),
                ipv6=bool(d.get("ipv6")), internal=bool(d.get("internal")), attachable=bool(d.get("attachable")))


def _strs(d: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in d.items()} if isinstance(d, dict) else {}


def encode(entry: Entry) -> bytes:
    return json.dumps({"name": entry.name, "generation": entry.generation, "spec": spec_to_json(entry.spec),
                       "hosts": dict(entry.hosts), "tombstone": entry.tombstone, "removed_by": entry.removed_by,
                       "holding": dict(entry.holding)}, sort_keys=True).encode()


def decode(value: bytes, revision: int = 0) -> Entry:
    """ValueError if the value is not a catalog entry."""
    try:
        d = json.loads(value)
        return Entry(name=str(d["name"]), generation=int(d["generation"]), spec=spec_from_json(d["spec"]),
                     hosts=_strs(d.get("hosts")), tombstone=bool(d.get("tombstone")),
                     removed_by=str(d.get("removed_by", "")),
                     holding={str(k): int(v) for k, v in dict(d.get("holding") or {}).items()},
                     revision=revision)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a catalog entry: {e}") from None


class CatalogStore(Protocol):
    """What the sync needs of the catalog (``Catalog``; tests/fakes/create_once.py for unit tests)."""

    async def read(self) -> tuple[int, dict[str, Entry]]: ...

    async def write(self, entry: Entry) -> bool: ...

    async def delete(self, entry: Entry) -> bool: ...

    def changes(self) -> AsyncIterator[None]: ...


class Catalog:
    """The catalog under ``prefix`` (e.g. ``/pynetdrv/v1/``) in etcd."""

    def __init__(self, client: EtcdClient, prefix: bytes) -> None:
        self.client = client
        self.prefix = (prefix if prefix.endswith(b"/") else prefix + b"/") + CATALOG

    def key(self, name: str) -> bytes:
        return self.prefix + quote(name, safe="").encode()

    async def read(self) -> tuple[int, dict[str, Entry]]:
        """(etcd revision, name -> entry); entries that do not decode are left out."""
        snap = await self.client.get_prefix(self.prefix)
        entries: dict[str, Entry] = {}
        for kv in snap.kvs:
            try:
                entry = decode(kv.value, kv.mod_revision)
            except ValueError:
                continue
            if self.key(entry.name) == kv.key:
                entries[entry.name] = entry
        return snap.revision, entries

    async def get(self, name: str) -> Entry | None:
        kv = await self.client.get(self.key(name))
        return decode(kv.value, kv.mod_revision) if kv is not None else None

    async def write(self, entry: Entry) -> bool:
        """Write the entry if the key is still at ``entry.revision`` (0: only if absent)."""
        done, _ = await self.client.compare_and_swap(self.key(entry.name), encode(entry), entry.revision)
        return done

    async def delete(self, entry: Entry) -> bool:
        """Delete the entry if the key is still at ``entry.revision``."""
        from pynetdrv.cluster.kv import Delete, mod_revision_is

        r = await self.client.txn([mod_revision_is(self.key(entry.name), entry.revision)],
                                  [Delete(self.key(entry.name))])
        return r.succeeded

    async def changes(self) -> AsyncIterator[None]:
        """Once now, then once per change of any entry (across etcd outages and compaction)."""
        from pynetdrv.cluster.watch import watch_prefix

        snap = await self.client.get_prefix(self.prefix)
        yield None
        async for _ in watch_prefix(self.client, self.prefix, snap.revision + 1):
            yield None

    @staticmethod
    def name_of(key: bytes, prefix: bytes) -> str:
        return unquote(key[len(prefix):].decode())
