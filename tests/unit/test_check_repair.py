"""``pynetdrv check``: reading Docker's view and the state, ``--repair`` (with and without
Docker's view, refused while the daemon runs) and the command line (see check_world.py)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from check_world import EP1, EP2, NET, FakeEngine, World, _inspect, bridge

from pynetdrv.api import ipam_models as im
from pynetdrv.check.command import RepairRefused, check, repair
from pynetdrv.check.docker_view import DockerUnreachable, read_docker_view
from pynetdrv.check.model import DockerEndpoint, DockerNetwork, DockerView
from pynetdrv.check.state import read_state
from pynetdrv.lock import StateLock
from pynetdrv.store.base import EndpointRecord
from pynetdrv.store.sqlite import SQLiteStore


async def test_docker_view_over_a_unix_socket(engine: FakeEngine) -> None:
    engine.networks = [
        _inspect(NET),
        {"Name": "bridge", "Id": "b" * 64, "Driver": "bridge", "IPAM": {"Driver": "default"}, "Containers": {}},
    ]
    view = await read_docker_view("pynetdrv", engine.sock)
    assert engine.asked == ["/networks", f"/networks/{NET}"]  # the bridge network is not inspected
    assert view == DockerView((DockerNetwork(
        NET, "app", "pynetdrv", "pynetdrv", ("10.9.0.0/24",), ("10.9.0.10",),
        (DockerEndpoint("f" * 64, "web", EP1, "10.9.0.2/24", ""),)),))


async def test_repair_with_dockers_view_releases_forgets_and_reserves(world: World, engine: FakeEngine) -> None:
    """What Docker's lost calls leave (its plugin client retries a refused call with an empty
    body, which pynetdrv must refuse): a ReleaseAddress lost -> a leaked allocation; a
    DeleteEndpoint lost -> an endpoint and veth Docker no longer knows."""
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    leaked = (await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))).Address
    await world.endpoint("e4" * 32)  # becomes the orphan: Docker is told nothing of it
    orphan_addr = world.addresses.pop("e4" * 32)
    ip2 = world.addresses[EP2].split("/")[0]
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=ip2))
    engine.serve(world)

    before, done, after = await repair(opts, lambda: world.dp, world.kernel)
    assert sorted(f.line() for f in before.findings) == sorted([
        (f"leak allocation {leaked.split('/')[0]}: dynamic allocation in pool 10.9.0.0/24 held by no endpoint "
        "and no --aux-address"),
        (f"orphan endpoint {'e4' * 6}: in the state on 'app' (veth pnve-e4e4e4e4e4, address {orphan_addr}), "
        "unknown to Docker"),
        (f"missing allocation {ip2}: endpoint {EP2[:12]} uses it but pool 10.9.0.0/24 has it free "
        "(it could be handed out again)"),
    ])
    assert all(f.repairable for f in before.findings)
    assert f"forgot endpoint {'e4' * 6} unknown to Docker, removed veth pnve-e4e4e4e4e4" in done
    assert f"released {leaked.split('/')[0]} in pool {world.pool_id}" in done
    assert f"released {orphan_addr.split('/')[0]} in pool {world.pool_id}" in done
    assert f"reserved {ip2} in pool {world.pool_id} again" in done
    assert after.clean, [f.line() for f in after.findings]
    assert "pnve-e4e4e4e4e4" not in world.dp.links


async def test_without_dockers_view_addresses_are_never_released(world: World) -> None:
    await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))
    before, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert [f.kind for f in before.findings] == ["leak"] and not before.findings[0].repairable
    assert done == [] and after.findings == before.findings


async def test_pool_of_no_docker_network_is_deleted_by_repair(world: World, engine: FakeEngine) -> None:
    await world.ipam.request_pool(im.RequestPoolRequest(Pool="10.8.0.0/24"))
    engine.serve(world)
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    _, done, after = await repair(opts, lambda: world.dp, world.kernel)
    assert done[0] == "deleted pool local/10.8.0.0/24" and after.clean


async def test_docker_unreachable_is_a_note_not_a_failure(world: World, tmp_path: Path) -> None:
    with pytest.raises(DockerUnreachable, match="no Docker socket"):
        await read_docker_view("pynetdrv", tmp_path / "none.sock")
    dead = tmp_path / "dead.sock"
    import socket as so
    s = so.socket(so.AF_UNIX)
    s.bind(str(dead))
    s.close()  # a socket file nobody listens on
    opts = dataclasses.replace(world.opts(), docker_socket=dead)
    result = await check(opts, world.kernel)
    assert result.clean and result.ctx.docker is None
    assert any(n.startswith(f"Docker not compared: Docker at {dead} did not answer") for n in result.ctx.notes)


async def test_read_state_is_read_only_and_does_not_wait_for_the_writer(world: World) -> None:
    before = world.state.read_bytes()
    writer = sqlite3.connect(world.state, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a write
        snap = read_state(world.state)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert {e.endpoint_id for e in snap.endpoints} == {EP1, EP2}
    assert len(snap.allocations[world.pool_id]) == 3
    assert world.state.read_bytes() == before
    with pytest.raises(sqlite3.OperationalError):
        conn = sqlite3.connect(f"{world.state.as_uri()}?mode=ro", uri=True)
        conn.execute("DELETE FROM endpoints")  # what mode=ro refuses, so read_state cannot write


async def test_repair_refused_while_the_daemon_holds_the_lock(world: World) -> None:
    name = bridge(world)
    del world.dp.links[name]
    calls = len(world.dp.calls)
    held = StateLock(world.state)
    held.acquire()
    try:
        with pytest.raises(RepairRefused, match="already running"):
            await repair(world.opts(), lambda: world.dp, world.kernel)
    finally:
        held.release()
    assert len(world.dp.calls) == calls and name not in world.dp.links


async def test_repair_with_nothing_repairable_changes_nothing(world: World) -> None:
    await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))  # a leak: not repairable
    calls = len(world.dp.calls)
    before, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert done == [] and not before.clean and after is before
    assert len(world.dp.calls) == calls


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pynetdrv", "check", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_exit_codes(tmp_path: Path) -> None:
    missing = _cli("--state", str(tmp_path / "none.db"), "--no-docker")
    assert missing.returncode == 2 and "no state file" in missing.stderr
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    corrupt = _cli("--state", str(bad), "--no-docker")
    assert corrupt.returncode == 2 and f"cannot read state {bad}" in corrupt.stderr
    assert bad.read_bytes() == b"not sqlite at all" * 100


async def test_cli_on_a_state_with_problems(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    store = SQLiteStore(state)
    await store.open()
    try:
        await store.put_network(dataclasses.replace(
            (await _record_network()), bridge="pnbr-unittest"), 0)
        await store.put_endpoint(EndpointRecord(EP1, NET, "pnve-unittest", "pnvc-unittest", "02:00:00:00:00:01"))
    finally:
        await store.close()
    # A socket name no daemon uses: no link on this host carries its alias.
    sock = tmp_path / f"pnunit-{tmp_path.name[-6:]}.sock"
    # The firewall is compared over the Firewall seam above and in the netns tests.
    out = _cli("--state", str(state), "--socket", str(sock), "--no-docker", "--no-firewall")
    assert out.returncode == 1, out
    lines = out.stdout.splitlines()
    assert f"missing bridge pnbr-unittest: network {NET[:12]} has no bridge" in lines
    assert any(line.startswith("missing veth pnve-unittest:") for line in lines)
    assert "note: Docker not compared (--no-docker)" in lines
    # (The host may hold unmarked pnve- pairs of others: count only ours.)
    assert " 2 repairable with --repair" in lines[-1], lines[-1]


async def _record_network() -> Any:
    from pynetdrv.store.base import NetworkRecord
    return NetworkRecord(NET, "x", "02:00:00:00:00:02", None)


async def test_lost_delete_endpoint_with_delivered_release(world: World, engine: FakeEngine) -> None:
    """Docker's DeleteEndpoint lost, its ReleaseAddress delivered, the address then handed to a
    new container: an orphan endpoint, a free address it still claims, a state duplicate. All
    three go once --repair forgets the endpoint Docker does not know (seen on Docker 26.1)."""
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    addr = world.addresses.pop(EP1)
    ip = addr.split("/")[0]
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=ip))
    await world.endpoint("e5" * 32, address=ip)
    engine.serve(world)
    before, _, after = await repair(opts, lambda: world.dp, world.kernel)
    lines = sorted(f.line() for f in before.findings)
    assert lines == sorted([
        f"orphan endpoint {EP1[:12]}: in the state on 'app' (veth pnve-c1c1c1c1c1, address {addr}), unknown to Docker",
        f"duplicate address {ip}: held by endpoint {EP1[:12]} and endpoint {'e5' * 6} on network {NET[:12]}",
    ]), lines
    assert all(f.repairable for f in before.findings)
    assert after.clean, [f.line() for f in after.findings]


async def test_missing_allocation_of_an_endpoint_docker_forgot(world: World, engine: FakeEngine) -> None:
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    addr = world.addresses.pop(EP1)
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=addr.split("/")[0]))
    engine.serve(world)
    before, done, after = await repair(opts, lambda: world.dp, world.kernel)
    assert sorted(f.kind for f in before.findings) == ["missing", "orphan"]
    assert all(f.repairable for f in before.findings)
    assert f"forgot endpoint {EP1[:12]} unknown to Docker, removed veth pnve-c1c1c1c1c1" in done
    assert after.clean


async def test_cli_repair_refuses_while_the_daemon_runs(world: World, tmp_path: Path) -> None:
    held = StateLock(world.state)
    held.acquire()
    try:
        out = _cli("--state", str(world.state), "--socket", str(tmp_path / "pnunit-x.sock"), "--no-docker", "--repair")
    finally:
        held.release()
    assert out.returncode == 2, out
    assert "Repair only runs while the daemon is stopped" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr
