"""Create once (issue 12 ★) in the one-machine lab, cluster mode: a network created on one host
appears on every host's Docker with the same name, subnet, options and labels; `docker network rm`
on any host removes it everywhere once no container there uses it; a host whose containers still
use it keeps it (and says so in its log) until they are gone; a host whose dockerd is stopped gets
the network once its dockerd is back; a removed name can be created again. Real dockerds, pynetdrvs,
etcd and containers; one lab for the module, torn down even when a test fails."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from integration.engines import spawn_detached
from integration.lab.containers import docker, start
from integration.lab.host import (
    _env,
    _wait_ready,
    dockerd_pid,
    engine_bins,
    host_mode,
    host_script,
    pynetdrv_pid,
    start_host,
)
from integration.lab.session import lab_for_module
from integration.lab.topology import HOSTS, HostSpec
from integration.processes import pid_gone

pytestmark = pytest.mark.first_and_last

H1, H2, H3 = HOSTS
APPEAR = 20        # seconds for a network to appear on / go from another host
LOGS = Path("/tmp/pnlab-logs-create-once")


@pytest.fixture(autouse=True)
def resources(exclusive: None) -> Iterator[None]:
    """Replaces the suite's autouse fixture: the lab brings its own dockerds and pynetdrvs."""
    yield


@pytest.fixture(scope="module")
def cluster_lab(exclusive: None) -> Iterator[None]:
    yield from lab_for_module(LOGS)


def _inspect(host: HostSpec, name: str) -> dict[str, object] | None:
    r = docker(host, "network", "inspect", name)
    if r.returncode != 0:
        return None
    found = json.loads(r.stdout)
    return found[0] if found else None


def _until(what: str, check: Callable[[], bool], within: float = APPEAR) -> float:
    """Wait until check() holds; returns how long it took; fails naming `what`."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > within:
            pytest.fail(f"{what}: not within {within} s")
        time.sleep(0.3)
    return time.monotonic() - t0


def _create(host: HostSpec, name: str, subnet: str, gateway: str, *options: str) -> None:
    r = docker(host, "network", "create", "-d", "pynetdrv", "--ipam-driver", "pynetdrv", "--subnet", subnet,
               "--gateway", gateway, *options, name)
    assert r.returncode == 0, f"{host.name}: network create {name}: {r.stderr}"


def _summary(net: dict[str, object]) -> tuple[object, ...]:
    ipam = net["IPAM"]
    assert isinstance(ipam, dict)
    subnets = tuple((c.get("Subnet"), c.get("Gateway")) for c in ipam.get("Config") or ())
    labels = {k: v for k, v in (net.get("Labels") or {}).items() if not k.startswith("pynetdrv.create-once")}  # type: ignore[attr-defined]
    return net["Name"], net["Driver"], ipam.get("Driver"), subnets, net.get("Options"), labels


def _log(host: HostSpec) -> str:
    return (host.data_dir / "pynetdrv.log").read_text(errors="replace")


def test_created_on_h1_appears_on_h2_and_h3_and_containers_ping_across(cluster_lab: None) -> None:
    _create(H1, "co-net", "10.187.0.0/24", "10.187.0.1", "-o", "com.docker.network.driver.mtu=1380",
            "--label", "team=blue")
    want = _summary(_inspect(H1, "co-net") or {})
    for host in (H2, H3):
        took = _until(f"co-net on {host.name}", lambda h=host: _inspect(h, "co-net") is not None)  # type: ignore[misc]
        got = _inspect(host, "co-net")
        assert got is not None and _summary(got) == want, f"{host.name}: {got} != {want}"
        print(f"co-net appeared on {host.name} after {took:.1f} s")
    a, c = start(H1, "co-a", "co-net"), start(H3, "co-c", "co-net")
    try:
        a_v4, c_v4 = a.addresses()[0], c.addresses()[0]
        assert a_v4.startswith("10.187.0.") and c_v4.startswith("10.187.0.") and a_v4 != c_v4
        assert c.pings(a_v4, within=10), f"co-c on h3 does not reach co-a on h1 ({a_v4})"
        assert c.mtu() == 1380, "the -o mtu option did not reach h3"
    finally:
        docker(H1, "rm", "-f", "co-a")
        docker(H3, "rm", "-f", "co-c")


def test_rm_on_h2_with_no_containers_is_gone_everywhere(cluster_lab: None) -> None:
    _create(H1, "co-rm", "10.188.0.0/24", "10.188.0.1")
    for host in (H2, H3):
        _until(f"co-rm on {host.name}", lambda h=host: _inspect(h, "co-rm") is not None)  # type: ignore[misc]
    assert docker(H2, "network", "rm", "co-rm").returncode == 0
    for host in (H1, H3):
        _until(f"co-rm gone from {host.name}", lambda h=host: _inspect(h, "co-rm") is None)  # type: ignore[misc]
    time.sleep(6)  # a poll round later, nobody brought it back
    assert all(_inspect(h, "co-rm") is None for h in HOSTS), "co-rm came back after its removal"


def test_rm_while_h3_has_a_container_h3_keeps_it_until_empty_then_name_reusable(cluster_lab: None) -> None:
    _create(H1, "co-hold", "10.189.0.0/24", "10.189.0.1")
    for host in (H2, H3):
        _until(f"co-hold on {host.name}", lambda h=host: _inspect(h, "co-hold") is not None)  # type: ignore[misc]
    held = start(H3, "co-held", "co-hold")
    try:
        assert docker(H2, "network", "rm", "co-hold").returncode == 0
        _until("co-hold gone from h1", lambda: _inspect(H1, "co-hold") is None)
        _until("h3 logs that it keeps co-hold",
               lambda: "co-hold was removed" in _log(H3) and "stays on this host while 1 container(s)" in _log(H3))
        assert _inspect(H3, "co-hold") is not None, "h3 dropped co-hold while a container uses it"
        assert held.running()
    finally:
        docker(H3, "rm", "-f", "co-held")
    _until("co-hold gone from h3 once its container is gone", lambda: _inspect(H3, "co-hold") is None)
    # the removed name can be created again, anywhere, and spreads again
    _create(H2, "co-hold", "10.189.0.0/24", "10.189.0.1")
    for host in (H1, H3):
        _until(f"re-created co-hold on {host.name}", lambda h=host: _inspect(h, "co-hold") is not None)  # type: ignore[misc]


def _dockerd_argv(host: HostSpec) -> list[str]:
    """The host's dockerd command line, as the lab starts it (host_script's last line)."""
    engine = (host.data_dir / "engine").read_text().strip() or None
    script = host_script(host, engine_bins(engine)[0], host_mode(host))
    return shlex.split(script.splitlines()[-1])[1:]  # without "exec"


def _stop_dockerd(host: HostSpec) -> None:
    pid = dockerd_pid(host)
    assert pid is not None, f"{host.name}: no dockerd"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_gone(pid), f"{host.name}: dockerd did not stop"


def _start_dockerd(host: HostSpec) -> None:
    """dockerd again, in the mount and network namespaces of the host's (still running) pynetdrv."""
    pid = pynetdrv_pid(host)
    assert pid is not None, f"{host.name}: pynetdrv is not running"
    engine = (host.data_dir / "engine").read_text().strip() or None
    argv = ["nsenter", "-t", str(pid), "-m", "-n", *_dockerd_argv(host)]
    spawn_detached(argv, _env(engine_bins(engine)[2]), host.data_dir / "dockerd.log")
    _wait_ready(host, lambda: dockerd_pid(host) is not None and docker(host, "version").returncode == 0, "dockerd")


def test_docker_stopped_on_h3_gets_the_network_once_back(cluster_lab: None) -> None:
    before = _log(H3).count("create-once: docker does not answer")
    pynetdrv = pynetdrv_pid(H3)
    _stop_dockerd(H3)
    try:
        _create(H1, "co-late", "10.190.0.0/24", "10.190.0.1")
        _until("co-late on h2", lambda: _inspect(H2, "co-late") is not None)
        _until("h3's pynetdrv logs that Docker does not answer",
               lambda: _log(H3).count("create-once: docker does not answer") > before)
        time.sleep(3)
        assert pynetdrv_pid(H3) == pynetdrv, "h3's pynetdrv did not survive its dockerd stopping"
    finally:
        if dockerd_pid(H3) is None:
            if pynetdrv_pid(H3) is not None:
                _start_dockerd(H3)
            else:
                start_host(H3, mode="cluster")
    took = _until("co-late on h3 after its dockerd is back", lambda: _inspect(H3, "co-late") is not None)
    print(f"co-late appeared on h3 {took:.1f} s after its dockerd answered")
    assert _log(H3).count("create-once: docker does not answer") == before + 1, "not one log line per outage"
    assert "create-once: docker answers again" in _log(H3)
    assert _summary(_inspect(H3, "co-late") or {}) == _summary(_inspect(H1, "co-late") or {})
