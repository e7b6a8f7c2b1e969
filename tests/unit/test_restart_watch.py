"""The restart-policy watch and its record (pynetdrv.returning.watch, .record): what Docker
says about running containers on our networks becomes the record, saved next to the state
file; Docker not answering changes nothing.  Docker is a fake at the ``Containers`` seam
(its JSON as the Engine API sends it); the real Engine API is driven by
integration/test_faults.py."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from pynetdrv.engine_api import DockerError, DockerUnavailable
from pynetdrv.returning.keep import ReturningAddresses
from pynetdrv.returning.record import Holder, load, record_path, save
from pynetdrv.returning.watch import RestartWatch, addresses_on

OURS, OTHER = "n" * 64, "o" * 64


def container(cid: str, name: str, **networks: tuple[str, str, str]) -> dict[str, Any]:
    """networks: key -> (network ID, IPv4, IPv6)."""
    return {"Id": cid, "Names": [f"/{name}"], "NetworkSettings": {"Networks": {
        k: {"NetworkID": nid, "IPAddress": v4, "GlobalIPv6Address": v6} for k, (nid, v4, v6) in networks.items()}}}


class FakeDocker:
    def __init__(self) -> None:
        self.containers: list[dict[str, Any]] = []
        self.policies: dict[str, str] = {}
        self.down = False
        self.inspected: list[str] = []

    async def running(self) -> list[dict[str, Any]]:
        if self.down:
            raise DockerUnavailable("Docker at /run/docker.sock did not answer within 10 s")
        return self.containers

    async def restart_policy(self, container_id: str) -> str:
        self.inspected.append(container_id)
        if container_id not in self.policies:
            raise DockerError(f"GET /containers/{container_id}/json: HTTP 404: No such container")
        return self.policies[container_id]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def docker() -> FakeDocker:
    d = FakeDocker()
    d.containers = [
        container("c1", "db", net=(OURS, "10.9.0.2", "fd09::2")),
        container("c2", "web", net=(OURS, "10.9.0.3", ""), bridge=(OTHER, "172.17.0.2", "")),
        container("c3", "elsewhere", bridge=(OTHER, "172.17.0.3", "")),
    ]
    d.policies = {"c1": "always", "c2": "no", "c3": "always"}
    return d


def watch(docker: FakeDocker, tmp_path: Path, returning: ReturningAddresses, clock: Clock | None = None,
          **kw: Any) -> RestartWatch:
    async def ours() -> set[str]:
        return {OURS}

    return RestartWatch(docker, ours, record_path(tmp_path / "state.db"), returning, clock=clock or Clock(), **kw)


async def test_the_record_is_what_docker_says_of_our_networks(docker: FakeDocker, tmp_path: Path) -> None:
    returning = ReturningAddresses()
    assert await watch(docker, tmp_path, returning).refresh() is True
    expected = {"10.9.0.2": Holder("c1", "db", "always"), "fd09::2": Holder("c1", "db", "always"),
                "10.9.0.3": Holder("c2", "web", "no")}
    assert returning.holders == expected
    assert load(tmp_path / "state.restarts.json") == expected
    assert "c3" not in docker.inspected  # not on our networks: Docker is not asked about it


async def test_docker_not_answering_keeps_the_last_record(docker: FakeDocker, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pynetdrv")
    returning = ReturningAddresses()
    w = watch(docker, tmp_path, returning)
    await w.refresh()
    before = dict(returning.holders)
    docker.down = True
    assert await w.refresh() is False
    assert await w.refresh() is False
    assert returning.holders == before and load(tmp_path / "state.restarts.json") == before
    assert sum("did not answer" in r.getMessage() for r in caplog.records) == 1  # said once, not every time


async def test_a_policy_is_read_again_only_after_its_ttl(docker: FakeDocker, tmp_path: Path) -> None:
    clock = Clock()
    returning = ReturningAddresses()
    w = watch(docker, tmp_path, returning, clock)
    await w.refresh()
    docker.policies["c2"] = "unless-stopped"  # docker update --restart
    await w.refresh()
    assert returning.holders["10.9.0.3"].policy == "no"
    clock.now += 301
    await w.refresh()
    assert returning.holders["10.9.0.3"].policy == "unless-stopped"
    assert docker.inspected.count("c1") == 2


async def test_a_container_removed_between_list_and_inspect_counts_as_no_policy(docker: FakeDocker,
                                                                                 tmp_path: Path) -> None:
    del docker.policies["c2"]
    returning = ReturningAddresses()
    await watch(docker, tmp_path, returning).refresh()
    assert returning.holders["10.9.0.3"].comes_back is False


async def test_the_record_is_saved_only_when_it_changed(docker: FakeDocker, tmp_path: Path) -> None:
    returning = ReturningAddresses()
    w = watch(docker, tmp_path, returning)
    await w.refresh()
    path = tmp_path / "state.restarts.json"
    path.write_text(path.read_text() + " ")
    await w.refresh()
    assert path.read_text().endswith(" ")
    docker.containers.pop(0)
    await w.refresh()
    assert set(load(path)) == {"10.9.0.3"}


async def recorded_within(returning: ReturningAddresses, seconds: float) -> None:
    """Until the record names some address, at most ``seconds`` (the caller asserts what)."""
    for _ in range(int(seconds / 0.01)):
        if returning.holders:
            return
        await asyncio.sleep(0.01)


async def test_an_address_handed_out_makes_the_watch_read_docker_soon(docker: FakeDocker, tmp_path: Path) -> None:
    returning = ReturningAddresses()
    w = watch(docker, tmp_path, returning, interval=3600, settle=0.01)
    w.start()
    try:
        returning.handed_out("local/10.9.0.0/24", "10.9.0.2")
        await recorded_within(returning, 2.0)
        assert "10.9.0.2" in returning.holders
    finally:
        await w.stop()


async def test_a_container_starting_while_the_watch_reads_makes_another_round(docker: FakeDocker,
                                                                              tmp_path: Path) -> None:
    """A start announced during the pause before a read (its container not running yet when Docker
    is read) is not lost until the interval: the watch reads again."""
    later = docker.containers
    docker.containers = []
    returning = ReturningAddresses()
    w = watch(docker, tmp_path, returning, interval=3600, settle=0.2)
    w.start()
    try:
        returning.handed_out("local/10.9.0.0/24", "10.9.0.2")
        await asyncio.sleep(0.05)
        returning.handed_out("local/10.9.0.0/24", "10.9.0.3")  # during the pause
        await asyncio.sleep(0.3)  # the first read is done, and saw nothing
        docker.containers = later
        await recorded_within(returning, 2.0)
        assert "10.9.0.3" in returning.holders
    finally:
        await w.stop()


def test_a_missing_or_malformed_record_is_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.restarts.json"
    assert load(path) == {}
    for bad in ("{", "[]", json.dumps({"addresses": {"10.9.0.2": {"name": "x"}}})):
        path.write_text(bad)
        assert load(path) == {}
    assert "unreadable" in caplog.text


def test_save_replaces_the_record_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.restarts.json"
    save(path, {"10.9.0.2": Holder("c1", "db", "always")})
    save(path, {"fd09::3": Holder("c2", "web", "no")})
    assert load(path) == {"fd09::3": Holder("c2", "web", "no")}
    assert [p.name for p in tmp_path.iterdir()] == ["state.restarts.json"]


def test_addresses_on_reads_both_families_of_our_networks_only() -> None:
    c = container("c", "x", a=(OURS, "10.9.0.2", "fd09::2"), b=(OTHER, "10.8.0.2", ""), c=(OURS, "", ""))
    assert addresses_on(c, {OURS}) == ["10.9.0.2", "fd09::2"]
    assert addresses_on({"Id": "c"}, {OURS}) == []
