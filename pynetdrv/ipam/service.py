"""The IpamDriver: pools (RequestPool/ReleasePool) and addresses.

All state is in the store; this class validates and chooses pools, and the
allocator (``ipam.allocator``) hands out addresses.  Docker
never replays calls to us (RequiresRequestReplay is false) because nothing
here is kept in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import netaddr

from pynetdrv.api import ipam_models as m
from pynetdrv.api.base_model import Empty
from pynetdrv.config import Config
from pynetdrv.errors import Conflict, InvalidParameter, Unavailable
from pynetdrv.ipam.addresses import first_free_subnet, parse_cidr, usable_bounds
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.ipam.pool_store import PoolStore
from pynetdrv.ipam.records import PoolRecord
from pynetdrv.returning.keep import ReturningAddresses

log = logging.getLogger(__name__)

HostRoutes = Callable[[], Awaitable[list[str]]]


def pool_id(address_space: str, cidr: str) -> str:
    """Stable for a given pool: a pool can exist only once (no overlaps)."""
    return f"{address_space}/{cidr}"


class IpamService:
    def __init__(
        self, store: PoolStore, config: Config, host_routes: HostRoutes, returning: ReturningAddresses | None = None
    ) -> None:
        self._store = store
        self.allocator = Allocator(store)
        #: Addresses kept for the containers dockerd brings back after its restart.
        self.returning = returning or ReturningAddresses()
        self._config = config
        self._host_routes = host_routes
        # Choosing an automatic pool reads the taken pools, then inserts: one
        # chooser at a time, or concurrent requests all pick the same subnet.
        self._auto_lock = asyncio.Lock()

    async def capabilities(self, _: None) -> m.CapabilitiesResponse:
        # dockerd asks once per start, when it registers us as its IPAM driver.
        self.returning.docker_started()
        log.info("dockerd loaded pynetdrv as its IPAM driver: for %.0f s, the addresses its clean-up releases "
                 "are kept for the containers it starts again", self.returning.window)
        return m.CapabilitiesResponse(RequiresMACAddress=False, RequiresRequestReplay=False)

    async def address_spaces(self, _: None) -> m.AddressSpacesResponse:
        return m.AddressSpacesResponse(
            LocalDefaultAddressSpace=self._config.local_address_space,
            GlobalDefaultAddressSpace=self._config.global_address_space,
        )

    async def request_pool(self, req: m.RequestPoolRequest) -> m.RequestPoolResponse:
        space = req.AddressSpace or self._config.local_address_space
        if req.Pool:
            record = self._explicit_pool(space, req)
            await self._store.add_pool(record)
        else:
            if req.SubPool:
                raise InvalidParameter(f"ip-range {req.SubPool} given without a subnet (--subnet)")
            record = await self._automatic_pool(space, req)
        log.info("pool %s allocated (range %s)", record.cidr, record.subpool or "whole pool")
        return m.RequestPoolResponse(PoolID=record.pool_id, Pool=record.cidr, Data={})

    def _explicit_pool(self, space: str, req: m.RequestPoolRequest) -> PoolRecord:
        net = parse_cidr(req.Pool, "subnet")
        subpool = None
        if req.SubPool:
            sub = parse_cidr(req.SubPool, "ip-range")
            if sub.version != net.version or sub not in net:
                raise InvalidParameter(f"ip-range {req.SubPool} is not inside subnet {req.Pool}")
            lo, hi = usable_bounds(net)
            if max(lo, int(sub.first)) > min(hi, int(sub.last)):
                raise InvalidParameter(f"ip-range {req.SubPool} holds no assignable address of subnet {req.Pool}")
            subpool = str(sub.cidr)
        cidr = str(net.cidr)
        return PoolRecord(pool_id(space, cidr), space, cidr, subpool, False, dict(req.Options or {}))

    async def _automatic_pool(self, space: str, req: m.RequestPoolRequest) -> PoolRecord:
        """A subnet of the default ranges that overlaps no pool and no host
        route.  Each call returns a new pool: Docker asks again when it finds
        an overlap, and would loop forever on the same answer."""
        version = 6 if req.V6 else 4
        bases = [(p.base, p.size) for p in self._config.default_pools if p.base.version == version]
        routes = [netaddr.IPNetwork(r) for r in await self._host_routes()]
        async with self._auto_lock:
            return await self._first_free_pool(space, req, version, bases, routes)

    async def _first_free_pool(
        self, space: str, req: m.RequestPoolRequest, version: int,
        bases: list[tuple[netaddr.IPNetwork, int]], routes: list[netaddr.IPNetwork],
    ) -> PoolRecord:
        for _ in range(16):  # another process sharing the store won a race: try again
            taken = routes + [netaddr.IPNetwork(p.cidr) for p in await self._store.list_pools()]
            found = first_free_subnet(bases, taken)
            if found is None:
                ranges = ", ".join(str(b) for b, _ in bases) or "none configured"
                raise Unavailable(f"no free IPv{version} pool left in the default ranges ({ranges})")
            cidr = str(found.cidr)
            record = PoolRecord(pool_id(space, cidr), space, cidr, None, True, dict(req.Options or {}))
            try:
                await self._store.add_pool(record)
                return record
            except Conflict:
                continue
        raise Unavailable("could not reserve an automatic pool: too many concurrent requests")

    async def release_pool(self, req: m.PoolRef) -> Empty:
        # Idempotent: Docker may release a pool twice (rollback, then delete).
        self.returning.forget_pool(req.PoolID)
        if await self._store.delete_pool(req.PoolID):
            log.info("pool %s released", req.PoolID)
        return Empty()

    async def request_address(self, req: m.RequestAddressRequest) -> m.RequestAddressResponse:
        is_gateway = (req.Options or {}).get(m.REQUEST_ADDRESS_TYPE) == m.GATEWAY_TYPE
        address = None
        if not req.Address and not is_gateway:
            address = await self._returning_address(req.PoolID)
        if address is None:
            address = await self.allocator.request(req.PoolID, req.Address or None, is_gateway)
        self.returning.handed_out(req.PoolID, address.split("/", 1)[0])
        return m.RequestAddressResponse(Address=address, Data={})

    async def _returning_address(self, pool: str) -> str | None:
        """A kept address of a container dockerd is bringing back (pynetdrv.returning), if one is still free."""
        while (kept := self.returning.take(pool)) is not None:
            try:
                address = await self.allocator.request(pool, kept, False, kind="dynamic")
            except (Conflict, InvalidParameter) as e:
                log.info("address %s kept for a returning container was not free any more: %s", kept, e)
                continue
            log.info("address %s given back to a container dockerd started again (%s)", address, pool)
            return address
        return None

    async def release_address(self, req: m.ReleaseAddressRequest) -> Empty:
        # Idempotent: after its own crash Docker releases addresses of stale
        # endpoints, some of which we may never have heard of.
        keep = await self._worth_keeping(req.PoolID, req.Address)
        if await self.allocator.release(req.PoolID, req.Address):
            log.info("address %s released from %s", req.Address, req.PoolID)
            if keep is not None:
                self.returning.keep(req.PoolID, keep)
        return Empty()

    async def _worth_keeping(self, pool: str, address: str) -> str | None:
        """The address, normalised, if it is one of a container dockerd may be
        bringing back: a dynamic address held since before dockerd started."""
        try:
            ip = str(netaddr.IPAddress(address))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            return None
        if not self.returning.wants(pool, ip):
            return None
        held = {a.address: a.kind for a in await self._store.allocations(pool)}
        return ip if held.get(ip) == "dynamic" else None
