"""The state file's disk full under a real dockerd: pynetdrv (plugin
pynetdrv-it) runs with its state on a 2 MiB tmpfs that is then filled to the
last byte.  `docker network create` and `docker run` fail with pynetdrv's
error naming the state file and the full disk; nothing is left behind (no
bridge, no veth, no network or container half made); a running container
keeps its connectivity; once space returns, the same commands work.

Subnets: 10.228.0.0/16 only (this file's range)."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.constants import PLUGIN
from integration.docker_objects import docker, ping, unique
from integration.host import links
from integration.pynetdrv_daemon import PynetdrvDaemon

SUBNET = "10.228.100.0/24"
SECOND_SUBNET = "10.228.101.0/24"


def fill(mountpoint: Path) -> Path:
    filler = mountpoint / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    assert os.statvfs(mountpoint).f_bavail == 0
    return filler


@pytest.fixture
def state_on_small_disk(pynetdrv: PynetdrvDaemon, resources: object) -> Iterator[Path]:
    """The session's pynetdrv restarted with its state on a fresh 2 MiB tmpfs;
    afterwards back on its own state file."""
    mountpoint = Path(tempfile.mkdtemp(prefix="pynetdrv-it-statefs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mountpoint)],
                   check=True, timeout=30)
    saved = pynetdrv.state_path
    pynetdrv.stop()
    pynetdrv.state_path = mountpoint / "state.db"
    try:
        pynetdrv.start()
        yield mountpoint
    finally:
        if pynetdrv.running():
            pynetdrv.stop()
        pynetdrv.state_path = saved
        pynetdrv.start()
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, timeout=30)
        mountpoint.rmdir()


def test_full_state_disk_fails_docker_cleanly_and_recovers(state_on_small_disk, make_network, make_container,
                                                           resources):
    state = state_on_small_disk / "state.db"
    resources.subnets.update({SUBNET, SECOND_SUBNET})
    net = make_network("--subnet", SUBNET)
    c1 = make_container(net)
    gateway = "10.228.100.1"
    ping(c1, gateway)
    links_before = set(links())

    filler = fill(state_on_small_disk)
    name = unique("net")
    out = docker("network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN, "--subnet", SECOND_SUBNET, name,
                 check=False, timeout=90)
    assert not out.ok
    assert f"state file {state}" in out.stderr and "full" in out.stderr, out.stderr
    assert not docker("network", "inspect", name, check=False).ok, "a network was half made"

    c2 = make_container(net, check=False)
    assert c2.result is not None and not c2.result.ok, "docker run must fail while the state disk is full"
    assert f"state file {state}" in c2.result.stderr, c2.result.stderr
    if docker("container", "inspect", c2.name, check=False).ok:  # created, but it must not run
        assert not c2.running()
    assert set(links()) == links_before, "a failed call left a link behind (or took one away)"
    ping(c1, gateway)  # the running container is untouched

    filler.unlink()
    c3 = make_container(net)
    ping(c3, c1.ip(net))
    net2 = make_network("--subnet", SECOND_SUBNET)
    assert net2.bridge in links()
