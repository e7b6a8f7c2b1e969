"""Issue 12, a host gone for good, in the one-machine lab in cluster mode (real dockerds, pynetdrvs,
etcd in h1, containers): h3 lost -> `pynetdrv cluster forget-host` on h1 -> h3's address is handed
to a new container on h1 -> h3 back is refused by its pynetdrv with the one-line error naming the
tombstone. Its own lab for the module, torn down even when a test fails; tests run in file order."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.lab.containers import docker, ensure_network, run_container, start
from integration.lab.host import host_pids, start_host
from integration.lab.session import lab_for_module
from integration.lab.topology import ETCD_CLIENT_PORT, ETCD_HOST, HOSTS, LabError, in_ns

pytestmark = pytest.mark.first_and_last

H1, H2, H3 = HOSTS
NET, SUBNET4, GW4 = "fgnet", "10.179.0.0/24", "10.179.0.1"
LEASE_GONE = 25  # h3's lease (10 s) expired and seen by forget-host within this
LOGS = Path("/tmp/pnlab-logs-forget-host")
_state: dict[str, str] = {}


@pytest.fixture(autouse=True)
def resources(exclusive: None) -> Iterator[None]:
    """Replaces the suite's autouse fixture: the lab brings its own dockerds and pynetdrvs."""
    yield


@pytest.fixture(scope="module")
def cluster_lab(exclusive: None) -> Iterator[None]:
    def networks() -> None:
        for host in HOSTS:
            ensure_network(host, NET, [(SUBNET4, GW4)])

    yield from lab_for_module(LOGS, setup=networks)


def forget_host(*extra: str) -> subprocess.CompletedProcess[str]:
    """`pynetdrv cluster forget-host h3 --yes` run on h1 (its netns), against the lab's etcd."""
    return in_ns(H1.netns, sys.executable, "-m", "pynetdrv", "cluster", "forget-host", H3.address,
                 "--store", f"etcd://{ETCD_HOST.address}:{ETCD_CLIENT_PORT}", *extra, check=False, timeout=60)


def test_forget_host_is_refused_while_the_host_is_up(cluster_lab: None) -> None:
    c3 = start(H3, "f3", NET)
    _state["h3"] = c3.addresses()[0]
    r = forget_host("--yes")
    assert r.returncode == 1, r
    assert r.stderr.strip().count("\n") == 0 and f"host {H3.address} is up" in r.stderr, r.stderr


def test_a_lost_hosts_address_is_handed_out_only_after_forget_host(cluster_lab: None) -> None:
    lost = _state["h3"]
    for pid in host_pids(H3, engine_only=True):  # lost: pynetdrv, dockerd, containers SIGKILLed
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    in_ns(H3.netns, "ip", "link", "set", "eth0", "down")
    _, taken, _ = run_container(H1, "early", NET, "--ip", lost)
    assert taken.returncode != 0, f"h3's address {lost} handed out while h3 may come back"
    docker(H1, "rm", "-f", "early")
    deadline = time.monotonic() + LEASE_GONE
    while (r := forget_host("--yes")).returncode != 0 and time.monotonic() < deadline:
        assert "is up" in r.stderr, r.stderr
        time.sleep(1)
    assert r.returncode == 0, r.stderr
    assert f"released: {lost}" in r.stdout and "forgotten" in r.stdout, r.stdout
    again = forget_host("--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again
    heir, r1, _ = run_container(H1, "heir", NET, "--ip", lost)
    assert r1.returncode == 0, r1.stderr
    assert heir.addresses()[0] == lost


def test_the_forgotten_host_back_is_refused_by_its_pynetdrv(cluster_lab: None) -> None:
    in_ns(H3.netns, "ip", "link", "set", "eth0", "up")
    with pytest.raises(LabError) as e:
        start_host(H3, mode="cluster")
    log = (H3.data_dir / "pynetdrv.log").read_text(errors="replace")
    refusal = [line for line in log.splitlines() if "declared gone for good" in line]
    assert refusal, f"h3's pynetdrv did not name the tombstone: {e.value}"
    assert "tombstones/" in refusal[-1] and "--rejoin" in refusal[-1], refusal[-1]
