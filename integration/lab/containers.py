"""Containers and networks on the lab's hosts, through each host's own docker client: create a
network (or find it there already: cluster mode may have created it from another host), run an
idle container, read its addresses and counters, ping from it with a bounded wait."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from integration.constants import IDLE_CMD, IMAGE
from integration.lab.topology import HostSpec, LabError, in_ns

DOCKER_TIMEOUT = 120


def docker(host: HostSpec, *args: str, timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(host.client), *args], capture_output=True, text=True, timeout=timeout, check=False)


def must(host: HostSpec, *args: str) -> str:
    r = docker(host, *args)
    if r.returncode != 0:
        raise LabError(f"{host.name}: docker {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def ensure_network(host: HostSpec, name: str, subnets: list[tuple[str, str]], *options: str) -> None:
    """`docker network create -d pynetdrv --ipam-driver pynetdrv` with (subnet, gateway) pairs
    (an IPv6 pair turns --ipv6 on), unless the host's Docker has the network already."""
    if docker(host, "network", "inspect", name).returncode == 0:
        return
    args = ["network", "create", "-d", "pynetdrv", "--ipam-driver", "pynetdrv", *options]
    if any(":" in s for s, _ in subnets):
        args.append("--ipv6")
    for subnet, gateway in subnets:
        args += ["--subnet", subnet, "--gateway", gateway]
    r = docker(host, *args, name)
    # In cluster mode create once may make the same network on this host at the same moment (from
    # another host's create); then this create fails, with "already exists" or, when Docker let both
    # through, in the driver: either way the network is there (docs/create-once.md).
    if r.returncode != 0 and docker(host, "network", "inspect", name).returncode != 0:
        raise LabError(f"{host.name}: network create {name}: {r.stderr.strip()}")


@dataclass(frozen=True)
class Container:
    host: HostSpec
    name: str

    def exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return docker(self.host, "exec", self.name, *argv, timeout=timeout)

    def addresses(self) -> tuple[str, str | None]:
        """(IPv4, global IPv6 or None) of eth0, as the container sees them."""
        out = self.exec("ip", "-o", "addr", "show", "dev", "eth0").stdout
        v4 = [w.split()[3].split("/")[0] for w in out.splitlines() if " inet " in w]
        v6 = [w.split()[3].split("/")[0] for w in out.splitlines() if " inet6 " in w and "scope global" in w]
        if not v4:
            raise LabError(f"{self.host.name}/{self.name}: no IPv4 address on eth0: {out!r}")
        return v4[0], (v6[0] if v6 else None)

    def mac(self) -> str:
        return self.exec("cat", "/sys/class/net/eth0/address").stdout.strip()

    def mtu(self) -> int:
        return int(self.exec("cat", "/sys/class/net/eth0/mtu").stdout.strip())

    def rx_packets(self) -> int:
        return int(self.exec("cat", "/sys/class/net/eth0/statistics/rx_packets").stdout.strip())

    def pings(self, address: str, within: float = 15) -> bool:
        """Does `address` answer a ping from this container, trying until `within` seconds pass?"""
        deadline = time.monotonic() + within
        while True:
            if self.exec("ping", "-c1", "-W1", address).returncode == 0:
                return True
            if time.monotonic() > deadline:
                return False

    def running(self) -> bool:
        r = docker(self.host, "inspect", "--format", "{{.State.Running}}", self.name)
        return r.returncode == 0 and r.stdout.strip() == "true"


def run_container(host: HostSpec, name: str, network: str, *options: str,
                  timeout: float = DOCKER_TIMEOUT) -> tuple[Container, subprocess.CompletedProcess[str], float]:
    """`docker run -d` an idle container; returns it, the run's result and how long it took."""
    t = time.monotonic()
    r = docker(host, "run", "-d", "--name", name, "--network", network, *options, IMAGE, *IDLE_CMD, timeout=timeout)
    return Container(host, name), r, time.monotonic() - t


def start(host: HostSpec, name: str, network: str, *options: str) -> Container:
    c, r, _ = run_container(host, name, network, *options)
    if r.returncode != 0:
        raise LabError(f"{host.name}: docker run {name} on {network}: {r.stderr.strip()}")
    return c


def underlay_mtu(host: HostSpec) -> int:
    return int(json.loads(in_ns(host.netns, "ip", "-j", "link", "show", "dev", "eth0").stdout)[0]["mtu"])


def link_rx_packets(host: HostSpec, ifname: str) -> int:
    out = in_ns(host.netns, "ip", "-s", "-j", "link", "show", "dev", ifname).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def _vxlan_link(host: HostSpec, gateway: str) -> dict[str, Any]:
    """`ip -d -j link` of the VXLAN device under the bridge that holds `gateway` in the host."""
    addrs = json.loads(in_ns(host.netns, "ip", "-j", "addr", "show").stdout)
    bridges = [a["ifname"] for a in addrs if any(i.get("local") == gateway for i in a.get("addr_info", []))]
    if not bridges:
        raise LabError(f"{host.name}: no link holds the gateway {gateway}")
    links = json.loads(in_ns(host.netns, "ip", "-d", "-j", "link", "show", "master", bridges[0]).stdout)
    for link in links:
        if link.get("linkinfo", {}).get("info_kind") == "vxlan":
            return dict(link)
    raise LabError(f"{host.name}: no VXLAN device under {bridges[0]}: {[li['ifname'] for li in links]}")


def vxlan_of(host: HostSpec, gateway: str) -> tuple[int, int]:
    """(VNI, UDP port) of the VXLAN device under the bridge that holds `gateway` in the host."""
    data = _vxlan_link(host, gateway)["linkinfo"]["info_data"]
    return int(data["id"]), int(data.get("port", 4789))


def fast_path_packets(host: HostSpec, gateway: str) -> int:
    """Packets the fast path's redirects on that VXLAN device's ingress sent on to local containers
    (tc's own counters; 0 if it has none)."""
    dev = _vxlan_link(host, gateway)["ifname"]
    out = in_ns(host.netns, "tc", "-s", "filter", "show", "dev", dev, "ingress").stdout
    return sum(int(n) for n in re.findall(r"Sent \d+ bytes (\d+) pkt", out))
