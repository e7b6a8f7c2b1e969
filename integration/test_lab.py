"""The one-machine multi-host lab (integration/lab, scripts/lab): it comes up (idempotently), each
host's own dockerd runs a container on a pynetdrv network that reaches its gateway, h2/h3 reach etcd
on h1 and each other over the underlay, and `down` leaves no namespace, link, mount, cgroup,
process or directory behind. Real processes; the lab is torn down even when a test fails."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.busybox_image import ensure_busybox_image
from integration.constants import IMAGE
from integration.lab import etcd, lab
from integration.lab.host import cgroup_dirs, host_pids, start_host
from integration.lab.topology import (
    DATA_DIR,
    HOSTS,
    RUN_DIR,
    SWITCH_NS,
    LabError,
    build_underlay,
    in_ns,
    lab_namespaces,
)

pytestmark = pytest.mark.once


@pytest.fixture(autouse=True)
def resources(exclusive: None) -> Iterator[None]:
    """Replaces the suite's autouse fixture: the lab brings its own dockerds and pynetdrvs, and
    needs none of the machine's; it still holds the integration lock."""
    yield


def _nothing_left() -> None:
    assert lab_namespaces() == []
    assert not RUN_DIR.exists() and not DATA_DIR.exists()
    assert lab.lab_mounts() == []
    assert [d for h in HOSTS for d in cgroup_dirs(h)] == []
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "pnlab" not in procs, [line for line in procs.splitlines() if "pnlab" in line]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "pnlab" not in links


def test_a_bad_engine_name_builds_nothing(exclusive: None) -> None:
    lab.down()
    with pytest.raises(LabError, match="unknown engine 'nope'"):
        lab.up("nope")
    assert lab_namespaces() == []


def test_a_bad_mode_name_builds_nothing(exclusive: None) -> None:
    lab.down()
    with pytest.raises(LabError, match="unknown mode 'swarm'"):
        lab.up(mode="swarm")
    assert lab_namespaces() == []


def test_a_down_after_a_partial_up_leaves_nothing(exclusive: None) -> None:
    """A failed `up` (here: stopped after h1's dockerd and pynetdrv) is cleaned up by `down`."""
    lab.down()
    try:
        build_underlay()
        start_host(HOSTS[0], mode="single")
        assert host_pids(HOSTS[0]) and not host_pids(HOSTS[1])
    finally:
        problems = lab.down()
    assert problems == []
    _nothing_left()


@pytest.fixture(scope="module")
def running_lab(exclusive: None) -> Iterator[float]:
    lab.down()  # a crashed earlier run's lab
    try:
        t = time.monotonic()
        lab.up(mode="single")  # this module: one independent pynetdrv per host
        took = time.monotonic() - t
        yield took
    finally:
        lab.down()


def test_lab_comes_up_fast_and_healthy(running_lab: float) -> None:
    ok, lines = lab.status()
    assert ok, "\n".join(lines)
    assert running_lab < 60, f"lab up took {running_lab:.1f}s"
    assert set(lab_namespaces()) == {SWITCH_NS, *(h.netns for h in HOSTS)}
    versions = {subprocess.run([str(h.client), "info", "--format", "{{.DockerRootDir}}"], capture_output=True,
                               text=True, check=True).stdout.strip() for h in HOSTS}
    assert versions == {str(h.data_dir / "docker") for h in HOSTS}, "each host must have its own dockerd"


def test_up_again_changes_nothing(running_lab: float) -> None:
    before = {h.name: host_pids(h) for h in HOSTS}
    lab.up(mode="single")
    assert {h.name: host_pids(h) for h in HOSTS} == before
    assert lab.status()[0]


def _docker(host_client: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(host_client), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_host_runs_a_container_on_a_pynetdrv_network(running_lab: float, index: int) -> None:
    host = HOSTS[index]
    ensure_busybox_image(host.client, say=lambda s: None)
    subnet, gateway = f"10.177.{host.index}.0/24", f"10.177.{host.index}.1"
    made = _docker(host.client, "network", "create", "-d", "pynetdrv", "--ipam-driver", "pynetdrv",
                   "--subnet", subnet, "--gateway", gateway, f"labnet{host.index}")
    assert made.returncode == 0, made.stderr
    ran = _docker(host.client, "run", "--rm", "--network", f"labnet{host.index}", IMAGE,
                  "sh", "-c", f"ip -4 addr show eth0 && ping -c1 -W2 {gateway}")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"10.177.{host.index}." in ran.stdout and "1 packets received" in ran.stdout
    # only this host's dockerd knows the network
    for other in HOSTS:
        if other is not host:
            assert _docker(other.client, "network", "inspect", f"labnet{host.index}").returncode != 0


@pytest.mark.parametrize("index", [1, 2])
def test_hosts_reach_etcd_on_h1_over_the_underlay(running_lab: float, index: int) -> None:
    assert etcd.reachable_from(HOSTS[index]), f"{HOSTS[index].name} cannot reach etcd at {etcd.client_url()}"


def test_hosts_reach_each_other_over_the_underlay(running_lab: float) -> None:
    for src in HOSTS:
        for dst in HOSTS:
            if src is not dst:
                r = in_ns(src.netns, "busybox", "ping", "-c1", "-W2", dst.address, check=False)
                assert r.returncode == 0, f"{src.name} -> {dst.name} ({dst.address}): {r.stdout}{r.stderr}"


def test_zz_down_leaves_nothing(running_lab: float) -> None:
    """Runs last (module order): tears the running lab (with containers' leftovers) down."""
    assert any(host_pids(h) for h in HOSTS)
    problems = lab.down()
    assert problems == []
    _nothing_left()
