"""The stage of the multi-host benchmark: the one-machine lab (integration/lab, cluster mode) with,
on the same three hosts, a Docker swarm (h1 manager, advertising its underlay address; h2 and h3
workers) and the networks compared: a pynetdrv cluster network, an attachable overlay network and,
on h1, a built-in bridge network.  Swarm's VXLAN uses UDP 7789 (``--data-path-port``), pynetdrv's
4789, so the two never share a socket and the sides can be measured interleaved.  Everything goes
with the lab afterwards (swarm's state lives in the hosts' data roots), even on failure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.docker_env import ensure_iperf_image
from bench.multihost_figures import BRIDGE, OVERLAY, PYNETDRV
from integration.busybox_image import ensure_busybox_image
from integration.lab import lab
from integration.lab.containers import docker, ensure_network, must
from integration.lab.session import keep_logs
from integration.lab.topology import HOSTS

H1, H2, H3 = HOSTS
SWARM_DATA_PORT = 7789
#: name, subnet of each network (10.240.0.0/13, like every bench subnet)
NETWORKS = {PYNETDRV: ("mhbench-pn", "10.247.0.0/24"), OVERLAY: ("mhbench-ov", "10.247.1.0/24"),
            BRIDGE: ("mhbench-br", "10.247.2.0/24")}


#: Automatic addresses come from the lower half (--ip-range), fixed ones (--ip) from the upper half:
#: an allocator that moves on after each address (swarm's does, and keeps a removed container's
#: address a while) would otherwise hand out one the benchmark asks for later.
AUTOMATIC_RANGE, FIXED_FIRST, FIXED_COUNT = "0/25", 128, 127


@dataclass(frozen=True)
class Stage:
    """Network name per side; ``address(side, i)``: a fixed address for the i-th container."""

    nets: dict[str, str]
    engine: str  # the hosts' Docker version

    @staticmethod
    def address(side: str, i: int) -> str:
        if not 0 <= i < FIXED_COUNT:
            raise ValueError(f"fixed address index {i} is outside 0..{FIXED_COUNT - 1}")
        return f"{_prefix(side)}.{FIXED_FIRST + i}"


def _prefix(side: str) -> str:
    return NETWORKS[side][1].rsplit(".", 1)[0]


def _ip_range(side: str) -> list[str]:
    return ["--ip-range", f"{_prefix(side)}.{AUTOMATIC_RANGE}"]


def _swarm_up() -> None:
    must(H1, "swarm", "init", "--advertise-addr", H1.address, "--data-path-port", str(SWARM_DATA_PORT))
    token = must(H1, "swarm", "join-token", "-q", "worker").strip()
    for host in (H2, H3):
        must(host, "swarm", "join", "--token", token, "--advertise-addr", host.address, f"{H1.address}:2377")


def _swarm_down() -> None:
    """Workers first, then the manager; best effort (the lab's removal takes the rest)."""
    with contextlib.suppress(Exception):
        docker(H1, "network", "rm", NETWORKS[OVERLAY][0], timeout=60)
    for host in (H3, H2, H1):
        with contextlib.suppress(Exception):
            docker(host, "swarm", "leave", "--force", timeout=60)


def _networks() -> dict[str, str]:
    name, subnet = NETWORKS[PYNETDRV]
    for host in (H1, H2):  # create once: it may have reached h2 from h1 already
        ensure_network(host, name, [(subnet, f"{_prefix(PYNETDRV)}.1")], *_ip_range(PYNETDRV))
    name, subnet = NETWORKS[OVERLAY]
    must(H1, "network", "create", "-d", "overlay", "--attachable", "--subnet", subnet, *_ip_range(OVERLAY), name)
    name, subnet = NETWORKS[BRIDGE]
    must(H1, "network", "create", "-d", "bridge", "--subnet", subnet, *_ip_range(BRIDGE), name)
    return {side: n for side, (n, _) in NETWORKS.items()}


@contextmanager
def stage(logs: Path, say: Callable[[str], None] = print) -> Iterator[Stage]:
    """Caller holds the integration lock.  A lab left by an aborted run is removed first; the
    hosts' dockerd, pynetdrv and etcd logs are copied to ``logs`` before the lab goes."""
    lab.down()
    try:
        say("==> multihost: lab up (cluster mode), images into h1..h3")
        lab.up(mode="cluster")
        for host in HOSTS:
            ensure_busybox_image(host.client, say=lambda _s: None)
            ensure_iperf_image(str(host.client))
        say("==> multihost: swarm on h1..h3, networks")
        _swarm_up()
        yield Stage(_networks(), must(H1, "version", "--format", "{{.Server.Version}}").strip())
    finally:
        _swarm_down()
        keep_logs(logs)
        problems = lab.down()
        if problems:
            say("==> multihost: lab down left: " + "; ".join(problems))
