"""What the network driver tells a multi-host member (``registry.member.ClusterMember``) in cluster
mode; None in single-host mode.  A protocol here so the driver depends on no cluster code."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from pynetdrv.store.base import EndpointRecord, NetworkRecord


class ClusterHooks(Protocol):
    def changing(self, network_id: str) -> AbstractAsyncContextManager[None]:
        """Held around a whole create or delete of the network: nothing else touches its device."""

    async def prepare_network(self, net: NetworkRecord) -> NetworkRecord:
        """The record to store: cluster identity, VNI, MTU.  May raise (etcd unreachable): nothing done."""

    async def network_ready(self, net: NetworkRecord) -> None:
        """The bridge exists and the record is stored: the VXLAN device and the registry."""

    async def network_gone(self, net: NetworkRecord) -> None:
        """Before the bridge goes: the VXLAN device goes."""

    async def network_removed(self, net: NetworkRecord) -> None:
        """The record is gone."""

    async def endpoint_ready(self, net: NetworkRecord, ep: EndpointRecord) -> None: ...

    async def endpoint_gone(self, ep: EndpointRecord) -> None: ...
