"""An in-memory Dataplane for unit tests: records every call and keeps the
links it would have made, with the same idempotence and ownership rules."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pynetdrv.dataplane.base import (
    DEFAULT_INSTANCE,
    BridgeSpec,
    DataplaneError,
    ForeignLinkError,
    LinkKind,
    OwnedLink,
    VethSpec,
    owner_alias,
    parse_owner_alias,
)


@dataclass
class FakeLink:
    name: str
    kind: LinkKind | str
    alias: str | None
    spec: BridgeSpec | VethSpec | None = None
    #: The state owned_links reports (see base.OwnedLink); tests break a
    #: link by changing these, as an admin's `ip link set` would.
    master: str | None = None
    up: bool = False
    mtu: int | None = None
    hairpin: bool = False


@dataclass
class FakeDataplane:
    links: dict[str, FakeLink] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    #: Name of a method to fail once, to test undo paths.
    fail_next: str | None = None
    instance: str = DEFAULT_INSTANCE

    def add_foreign(self, name: str, kind: str = "dummy") -> None:
        self.links[name] = FakeLink(name, kind, None)

    def _step(self, method: str, name: str) -> None:
        self.calls.append((method, name))
        if self.fail_next == method:
            self.fail_next = None
            raise DataplaneError(f"{method} {name}: injected failure")

    def _claim(self, name: str, alias: str) -> None:
        link = self.links.get(name)
        if link is not None and link.alias != alias:
            raise ForeignLinkError(f"link {name} exists and was not created by pynetdrv")

    async def ensure_bridge(self, spec: BridgeSpec) -> None:
        alias = owner_alias("bridge", spec.network_id, self.instance)
        self._claim(spec.name, alias)
        if spec.name not in self.links:
            # A bridge made anew has no ports.
            for link in self.links.values():
                if link.master == spec.name:
                    link.master, link.hairpin = None, False
        self.links[spec.name] = FakeLink(spec.name, "bridge", alias, spec, up=True, mtu=spec.mtu)
        self._step("ensure_bridge", spec.name)

    async def remove_bridge(self, name: str, network_id: str) -> None:
        self._remove(name, owner_alias("bridge", network_id, self.instance), "remove_bridge")

    async def ensure_veth(self, spec: VethSpec) -> None:
        await asyncio.sleep(0)  # a kernel step suspends the caller, as the real one's netlink reply does
        alias = owner_alias("veth", spec.endpoint_id, self.instance)
        self._claim(spec.host_name, alias)
        self._claim(spec.peer_name, alias)
        if spec.bridge not in self.links:
            raise DataplaneError(f"enslave {spec.host_name}: bridge {spec.bridge} does not exist")
        self.links[spec.host_name] = FakeLink(
            spec.host_name, "veth", alias, spec, master=spec.bridge, up=True, mtu=spec.mtu, hairpin=True)
        self.links[spec.peer_name] = FakeLink(spec.peer_name, "veth", alias, spec, mtu=spec.mtu)
        self._step("ensure_veth", spec.host_name)

    async def remove_veth(self, host_name: str, endpoint_id: str) -> None:
        link = self.links.get(host_name)
        self._remove(host_name, owner_alias("veth", endpoint_id, self.instance), "remove_veth")
        if (
            link is not None
            and isinstance(link.spec, VethSpec)
            and link.alias == owner_alias("veth", endpoint_id, self.instance)
        ):
            self.links.pop(link.spec.peer_name, None)

    def _remove(self, name: str, alias: str, method: str) -> None:
        self._step(method, name)
        link = self.links.get(name)
        if link is not None and link.alias == alias:
            del self.links[name]

    async def owned_links(self) -> list[OwnedLink]:
        out = []
        for link in self.links.values():
            parsed = parse_owner_alias(link.alias, self.instance)
            if parsed is not None:
                # A master that is gone is no master (the kernel releases the port).
                master = link.master if link.master in self.links else None
                out.append(OwnedLink(link.name, *parsed, master=master, up=link.up, mtu=link.mtu,
                                     hairpin=link.hairpin and master is not None))
        return out

    async def link_in_use(self, name: str) -> bool:
        link = self.links.get(name)
        return link is not None and parse_owner_alias(link.alias, self.instance) is None

    async def host_routes(self) -> list[str]:
        return list(self.routes)

    async def close(self) -> None:
        pass
