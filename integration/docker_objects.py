"""Docker objects through the docker client of the engine under test (DOCKER): docker(),
the Network and Container wrappers, ping between containers, unique test names, and removing
every container and network the tests made (cleanup_docker_objects)."""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from integration.cmd import Out, run
from integration.constants import DOCKER, LABEL, NAME_PREFIX, PLUGIN


def docker(*args: str, check: bool = True, timeout: float = 60) -> Out:
    """Run the docker client (DOCKER); returns its stdout (an Out: also .rc, .stderr)."""
    return run([DOCKER, *args], check=check, timeout=timeout)


def docker_json(*args: str, timeout: float = 60) -> Any:
    return json.loads(docker(*args, timeout=timeout))


def unique(kind: str) -> str:
    return f"{NAME_PREFIX}{kind}-{secrets.token_hex(3)}"


@dataclass
class Network:
    name: str
    id: str
    bridge: str | None  # the host bridge pynetdrv made, None for other drivers

    def inspect(self) -> dict[str, Any]:
        info: dict[str, Any] = docker_json("network", "inspect", self.id)[0]
        return info

    def ipam_configs(self) -> list[dict[str, Any]]:
        return self.inspect()["IPAM"]["Config"] or []


@dataclass
class Container:
    name: str
    result: Out | None = None  # the `docker run` output

    def inspect(self) -> dict[str, Any]:
        info: dict[str, Any] = docker_json("container", "inspect", self.name)[0]
        return info

    def networks(self) -> dict[str, dict[str, Any]]:
        return self.inspect()["NetworkSettings"]["Networks"] or {}

    def net(self, network: Network | str) -> dict[str, Any]:
        key = network.name if isinstance(network, Network) else network
        nets = self.networks()
        assert key in nets, f"{self.name} is not on {key}: {sorted(nets)}"
        return nets[key]

    def ip(self, network: Network | str) -> ipaddress.IPv4Address:
        addr = self.net(network)["IPAddress"]
        assert addr, f"{self.name} has no IPv4 address on {network}"
        return ipaddress.IPv4Address(addr)

    def ip6(self, network: Network | str) -> ipaddress.IPv6Address:
        addr = self.net(network)["GlobalIPv6Address"]
        assert addr, f"{self.name} has no IPv6 address on {network}"
        return ipaddress.IPv6Address(addr)

    def exec(self, *cmd: str, check: bool = True, timeout: float = 30) -> Out:
        return docker("exec", self.name, *cmd, check=check, timeout=timeout)

    def ifaces(self) -> set[str]:
        return set(self.exec("ls", "/sys/class/net").split())

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])


def ping(src: Container, dst: Any, *, v6: bool = False, within: float = 6) -> None:
    """src pings dst (one echo, 2 s wait), retried until `within` seconds have passed."""
    argv = ["ping6" if v6 else "ping", "-c1", "-W2", str(dst)]
    deadline = time.monotonic() + within
    while True:
        out = src.exec(*argv, check=False, timeout=15)
        if out.ok:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{src.name}: `{' '.join(argv)}` failed for {within}s:\n{out.output}")
        time.sleep(0.5)


def cleanup_docker_objects() -> list[str]:
    """Remove every container and network the tests made (by label and name prefix).
    Returns a list of problems (removal failures) instead of raising."""
    problems: list[str] = []
    ids = set(docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split())
    ids |= set(docker("ps", "-aq", "--filter", f"name={NAME_PREFIX}", check=False).split())
    nets = set(docker("network", "ls", "-q", "--filter", f"label={LABEL}", check=False).split())
    nets |= set(docker("network", "ls", "-q", "--filter", f"name={NAME_PREFIX}", check=False).split())
    nets |= set(docker("network", "ls", "-q", "--filter", f"driver={PLUGIN}", check=False).split())
    for net in nets:
        info = docker("network", "inspect", net, check=False)
        if info.ok:
            ids |= set((json.loads(info)[0].get("Containers") or {}).keys())
    ids = {i for i in ids if not i.startswith("ep-")}
    deadline = time.monotonic() + 60
    while ids:
        out = docker("rm", "-f", *sorted(ids), check=False, timeout=120)
        ids = {i for i in ids if docker("container", "inspect", i, check=False).ok}
        if ids and time.monotonic() >= deadline:
            problems.append(f"docker rm -f {' '.join(sorted(ids))} failed: {out.output}")
            break
        if ids:  # e.g. "removal of container X is already in progress"
            time.sleep(0.5)
    for net in sorted(nets):
        out = docker("network", "rm", net, check=False, timeout=60)
        if not out.ok and "No such network" not in out.stderr and "not found" not in out.stderr:
            problems.append(f"docker network rm {net} failed: {out.output}")
    return problems
