"""Fakes for create-once unit tests: the catalog (CatalogStore: a dict with etcd-like mod revisions
and compare-and-swap) and one host's Docker Engine API (Engine: networks, containers per network,
up/down)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace

from pynetdrv.createonce.catalog import Entry
from pynetdrv.createonce.engine import DockerError, DockerUnavailable
from pynetdrv.createonce.plan import LocalNet


class FakeCatalog:
    def __init__(self) -> None:
        self.revision = 0
        self.entries: dict[str, Entry] = {}

    async def read(self) -> tuple[int, dict[str, Entry]]:
        return self.revision, dict(self.entries)

    async def write(self, entry: Entry) -> bool:
        now = self.entries.get(entry.name)
        if (now.revision if now else 0) != entry.revision:
            return False
        self.revision += 1
        self.entries[entry.name] = replace(entry, revision=self.revision)
        return True

    async def delete(self, entry: Entry) -> bool:
        now = self.entries.get(entry.name)
        if now is None or now.revision != entry.revision:
            return False
        self.revision += 1
        del self.entries[entry.name]
        return True

    async def changes(self) -> AsyncIterator[None]:
        yield None
        await asyncio.Event().wait()


_ids = itertools.count(1)


class FakeEngine:
    """One host's Docker: ``nets`` by ID; ``up`` False makes every call fail as a stopped dockerd."""

    def __init__(self, driver: str = "pynetdrv") -> None:
        self.driver = driver
        self.nets: dict[str, LocalNet] = {}
        self.up = True
        self.refuse_create = ""

    def _check(self) -> None:
        if not self.up:
            raise DockerUnavailable("Docker at /fake.sock did not answer: connection refused")

    def user_create(self, name: str, spec: object) -> LocalNet:
        """`docker network create` by a user on this host."""
        from pynetdrv.createonce.catalog import Spec

        assert isinstance(spec, Spec)
        net = LocalNet(f"{next(_ids):064x}", name, spec)
        self.nets[net.id] = net
        return net

    def by_name(self, name: str) -> LocalNet | None:
        return next((n for n in self.nets.values() if n.name == name), None)

    def user_remove(self, name: str) -> None:
        net = self.by_name(name)
        assert net is not None
        del self.nets[net.id]

    def set_containers(self, name: str, count: int) -> None:
        net = self.by_name(name)
        assert net is not None
        self.nets[net.id] = replace(net, containers=count)

    async def networks(self) -> list[LocalNet]:
        self._check()
        return list(self.nets.values())

    async def create(self, entry: Entry) -> str:
        self._check()
        if self.refuse_create:
            raise DockerError(self.refuse_create)
        if self.by_name(entry.name) is not None:
            raise DockerError(f"network with name {entry.name} already exists")
        net = LocalNet(f"{next(_ids):064x}", entry.name, entry.spec, 0, entry.generation)
        self.nets[net.id] = net
        return net.id

    async def remove(self, network_id: str) -> None:
        self._check()
        net = self.nets.get(network_id)
        if net is not None and net.containers:
            raise DockerError(f"error while removing network: network {net.name} has active endpoints")
        self.nets.pop(network_id, None)

    async def events(self) -> AsyncIterator[str]:
        self._check()
        await asyncio.Event().wait()
        yield ""
