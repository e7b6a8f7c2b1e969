"""A small world inside throwaway namespaces for firewall traffic tests.

``host`` (the test's namespace) holds pynetdrv's bridges, with Docker's
FORWARD DROP policy; each container is a namespace holding a veth peer with
its address and a default route via the bridge; ``outside`` is another host
on a link of its own (10.250.0.2, the host being 10.250.0.1) with no route
back to any container subnet, so outbound traffic reaches it only NATed.
Only addresses inside these namespaces are ever targets.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from netns_util import in_netns, throwaway_netns
from pyroute2 import AsyncIPRoute

from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.driver.naming import derived_mac
from pynetdrv.firewall.iptables import IptablesFirewall

PEER_IO = Path(__file__).with_name("peer_io.py")
HOST_OUTSIDE = "10.250.0.1"
OUTSIDE = "10.250.0.2"
HOST_OUTSIDE6 = "fd00:250::1"
OUTSIDE6 = "fd00:250::2"
NODAD = 0x02


@dataclass
class Container:
    ns: str
    ip: str
    gateway: str


@dataclass
class Topology:
    host: str
    dp: NetlinkDataplane
    kernel: AsyncIPRoute
    stack: ExitStack
    #: iptables backend ("nft" or "legacy"): the FORWARD DROP policy goes there.
    variant: str = "nft"
    outside: str = ""
    containers: dict[str, Container] = field(default_factory=dict)

    async def setup(self) -> None:
        for tool in ("iptables", "ip6tables"):
            assert in_netns(self.host, f"{tool}-{self.variant}", "-w", "-P", "FORWARD", "DROP").returncode == 0
        await _lo_up(self.kernel)
        self.outside = self.stack.enter_context(throwaway_netns())
        await self.kernel.link("add", ifname="pndo0", kind="veth", peer={"ifname": "pndo1"})
        (host_end,) = await self.kernel.link_lookup(ifname="pndo0")
        await self.kernel.addr("add", index=host_end, address=HOST_OUTSIDE, prefixlen=24)
        await self.kernel.addr("add", index=host_end, address=HOST_OUTSIDE6, prefixlen=64, flags=NODAD)
        await self.kernel.link("set", index=host_end, state="up")
        await self._move_and_address("pndo1", self.outside, OUTSIDE, 24, gateway=None, ip6=(OUTSIDE6, None))

    async def network(self, bridge: str, network_id: str, gateway: str, prefixlen: int = 24,
                      gateway6: str | None = None) -> None:
        addresses = (f"{gateway}/{prefixlen}",) + ((f"{gateway6}/64",) if gateway6 else ())
        await self.dp.ensure_bridge(BridgeSpec(bridge, network_id, derived_mac(network_id), None, addresses))

    async def container(self, name: str, bridge: str, ip: str, gateway: str, prefixlen: int = 24,
                        ip6: tuple[str, str] | None = None) -> Container:
        n = len(self.containers)
        spec = VethSpec(host_name=f"pndh{n}", peer_name=f"pndp{n}", bridge=bridge,
                        endpoint_id=f"{n:x}" * 64, mac=derived_mac(f"{n:x}" * 64), mtu=None)
        await self.dp.ensure_veth(spec)
        ns = self.stack.enter_context(throwaway_netns())
        await self._move_and_address(spec.peer_name, ns, ip, prefixlen, gateway, ip6)
        self.containers[name] = c = Container(ns, ip, gateway)
        return c

    async def _move_and_address(self, link: str, ns: str, ip: str, prefixlen: int, gateway: str | None,
                                ip6: tuple[str, str | None] | None = None) -> None:
        (idx,) = await self.kernel.link_lookup(ifname=link)
        await self.kernel.link("set", index=idx, net_ns_fd=ns)
        ipr = AsyncIPRoute(netns=ns)
        try:
            await _lo_up(ipr)
            (idx,) = await ipr.link_lookup(ifname=link)
            await ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen)
            await ipr.link("set", index=idx, state="up")
            if gateway:
                await ipr.route("add", dst="default", gateway=gateway)
            if ip6:
                await ipr.addr("add", index=idx, address=ip6[0], prefixlen=64, flags=NODAD)
                if ip6[1]:
                    await ipr.route("add", dst="::/0", gateway=ip6[1], family=10)
        finally:
            ipr.close()

    def firewall(self) -> IptablesFirewall:
        return IptablesFirewall(netns=self.host, variant=self.variant)

    def serve(self, ns: str, proto: str, port: int, token: str) -> None:
        """A server in ``ns`` answering "TOKEN PEER-IP"; stopped with the topology."""
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", sys.executable, str(PEER_IO), "serve", proto, "0.0.0.0",
             str(port), token],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.stack.callback(_stop, proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def ask(self, ns: str, proto: str, addr: str, port: int) -> str | None:
        """The answer a client in ``ns`` gets from addr:port, or None."""
        done = in_netns(ns, sys.executable, str(PEER_IO), "ask", proto, addr, str(port))
        return done.stdout.strip() if done.returncode == 0 else None


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def _lo_up(ipr: AsyncIPRoute) -> None:
    (lo,) = await ipr.link_lookup(ifname="lo")
    await ipr.link("set", index=lo, state="up")
