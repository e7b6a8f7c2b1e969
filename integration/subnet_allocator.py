"""SubnetAllocator: test subnets that overlap neither a host route nor a docker network."""

from __future__ import annotations

import contextlib
import ipaddress
import threading

from integration.docker_objects import docker, docker_json
from integration.host import host_routes


class SubnetAllocator:
    """Hands out /24s from 10.231.0.0/16 .. 10.239.0.0/16 with a matching fd00:23X:0:Y::/64,
    never one that overlaps a host route or an existing docker network, never twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[ipaddress.IPv4Network] = set()
        self._candidates = (ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
                            for second in range(231, 240) for third in range(256))

    def _taken(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        taken = [net for net, _dev in host_routes()]
        for line in docker("network", "ls", "-q").split():
            for cfg in (docker_json("network", "inspect", line)[0].get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(ValueError):
                    taken.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
        return taken

    def v4(self) -> ipaddress.IPv4Network:
        with self._lock:
            taken = self._taken()
            for net in self._candidates:
                if net in self._used or any(net.overlaps(t) for t in taken if t.version == 4):
                    continue
                self._used.add(net)
                return net
        raise AssertionError("test subnets exhausted")

    @staticmethod
    def v6_for(v4: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
        second, third = v4.network_address.packed[1:3]
        return ipaddress.IPv6Network(f"fd00:{second}:0:{third:x}::/64")

    def pair(self) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
        v4 = self.v4()
        return v4, self.v6_for(v4)
