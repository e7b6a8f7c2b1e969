"""The lab's names and addresses, and its underlay: netns pnlab-sw with bridge `br0`, netns
pnlab-hN with `eth0` (veth to the switch) on 192.168.77.1N/24. Only these namespaces are touched."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

PREFIX = "pnlab"
SWITCH_NS = f"{PREFIX}-sw"
UNDERLAY = "192.168.77"
UNDERLAY_LEN = 24
HOST_COUNT = 3
RUN_DIR = Path("/run/pnlab")          # per host: RUN_DIR/hN/run is bound over /run inside the host
DATA_DIR = Path("/var/lib/pnlab")     # per host: docker data-root, pynetdrv state
ETCD_CLIENT_PORT = 2379
NETNS_DIR = Path("/var/run/netns")


class LabError(RuntimeError):
    """The lab could not be built or checked; the message names what and why."""


@dataclass(frozen=True)
class HostSpec:
    index: int

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def address(self) -> str:
        return f"{UNDERLAY}.{10 + self.index}"

    @property
    def switch_port(self) -> str:
        return f"{PREFIX}{self.index}"  # veth end in the switch ns

    @property
    def run_dir(self) -> Path:
        """Seen as /run inside the host's mount namespace."""
        return RUN_DIR / self.name / "run"

    @property
    def data_dir(self) -> Path:
        return DATA_DIR / self.name

    @property
    def docker_sock(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def plugin_sock(self) -> Path:
        return self.run_dir / "docker" / "plugins" / "pynetdrv.sock"

    @property
    def client(self) -> Path:
        """A `docker` wrapper talking to this host's dockerd."""
        return RUN_DIR / self.name / "docker"

    @property
    def exec_root(self) -> str:
        """dockerd's --exec-root inside the host (a name no other engine uses)."""
        return f"/run/docker-{self.netns}"

    @property
    def cgroup_parent(self) -> str:
        return f"/{self.netns}"


HOSTS = tuple(HostSpec(i) for i in range(1, HOST_COUNT + 1))
ETCD_HOST = HOSTS[0]


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip()[:300]}")
    return r


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def lab_namespaces() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{PREFIX}-"))


def in_ns(ns: str, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)


def build_underlay() -> None:
    """Create what is missing of the switch and the hosts' underlay links (idempotent)."""
    if not netns_exists(SWITCH_NS):
        run("ip", "netns", "add", SWITCH_NS)
    in_ns(SWITCH_NS, "ip", "link", "set", "lo", "up")
    if in_ns(SWITCH_NS, "ip", "link", "show", "br0", check=False).returncode != 0:
        in_ns(SWITCH_NS, "ip", "link", "add", "br0", "type", "bridge")
    in_ns(SWITCH_NS, "ip", "link", "set", "br0", "up")
    for host in HOSTS:
        if not netns_exists(host.netns):
            run("ip", "netns", "add", host.netns)
        in_ns(host.netns, "ip", "link", "set", "lo", "up")
        if in_ns(host.netns, "ip", "link", "show", "eth0", check=False).returncode != 0:
            # Created in the switch ns, so no name is ever taken in the root namespace.
            in_ns(SWITCH_NS, "ip", "link", "del", host.switch_port, check=False)
            in_ns(SWITCH_NS, "ip", "link", "add", host.switch_port, "type", "veth", "peer", "name", "eth0",
                  "netns", host.netns)
        in_ns(SWITCH_NS, "ip", "link", "set", host.switch_port, "master", "br0", "up")
        in_ns(host.netns, "ip", "addr", "replace", f"{host.address}/{UNDERLAY_LEN}", "dev", "eth0")
        in_ns(host.netns, "ip", "link", "set", "eth0", "up")


def remove_underlay() -> list[str]:
    """Delete every pnlab-* netns (their links go with them). Returns what could not be removed."""
    problems = []
    for ns in lab_namespaces():
        r = run("ip", "netns", "del", ns, check=False)
        if r.returncode != 0:
            problems.append(f"netns {ns}: {r.stderr.strip()}")
    return problems
