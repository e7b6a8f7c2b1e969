"""Create once: the planning rules (pynetdrv.createonce.plan) one by one, then three hosts' syncs
over one fake catalog and a fake Docker each (tests/fakes/create_once.py): create on one host ->
every host; rm anywhere -> gone everywhere once empty; a holder keeps it and is named; Docker down
on a host; re-creating a removed name."""

from __future__ import annotations

import logging

import pytest

from pynetdrv.createonce.catalog import Entry, Spec, Subnet, decode, encode
from pynetdrv.createonce.engine import create_body, local_net
from pynetdrv.createonce.plan import (
    GENERATION_LABEL,
    Create,
    Forget,
    Hold,
    LocalNet,
    Publish,
    Record,
    Remove,
    Tombstone,
    plan,
)
from pynetdrv.createonce.sync import CreateOnceSync
from tests.fakes.create_once import FakeCatalog, FakeEngine

H1, H2, H3 = "192.168.250.11", "192.168.250.12", "192.168.250.13"
SPEC = Spec((Subnet("10.77.0.0/24", "10.77.0.1", "10.77.0.128/25"),), {"com.docker.network.driver.mtu": "1400"},
            {"team": "a"}, "pynetdrv", {}, False, False, False)


def entry(gen: int = 1, hosts: dict[str, str] | None = None, tomb: bool = False,
          holding: dict[str, int] | None = None) -> Entry:
    return Entry("demo", gen, SPEC, hosts or {}, tomb, H2 if tomb else "", holding or {}, revision=5)


def local(id: str = "aa", containers: int = 0, gen: int | None = None) -> LocalNet:
    return LocalNet(id, "demo", SPEC, containers, gen)


# -- rules -------------------------------------------------------------------------------------------
def test_nothing_anywhere_plans_nothing() -> None:
    assert plan(H1, {}, []) == []


def test_a_users_network_is_published() -> None:
    assert plan(H1, {}, [local()]) == [Publish("demo", local(), 1, None)]


def test_our_leftover_without_entry_is_removed_when_empty_only() -> None:
    assert plan(H1, {}, [local(gen=1)]) == [Remove(local(gen=1), None)]
    assert plan(H1, {}, [local(gen=1, containers=2)]) == []


def test_live_entry_missing_here_is_created() -> None:
    e = entry(hosts={H1: "aa"})
    assert plan(H2, {"demo": e}, []) == [Create(e)]


def test_live_entry_recorded_here_but_gone_from_docker_is_tombstoned() -> None:
    e = entry(hosts={H1: "aa", H2: "bb"})
    assert plan(H2, {"demo": e}, []) == [Tombstone(e)]


def test_live_entry_and_local_network_are_recorded_once() -> None:
    e = entry(hosts={H1: "aa"})
    assert plan(H2, {"demo": e}, [local("bb", gen=1)]) == [Record(e, local("bb", gen=1))]
    assert plan(H2, {"demo": e}, [local("bb")]) == [Record(e, local("bb"))]  # a user's same-name joins
    assert plan(H1, {"demo": e}, [local("aa")]) == []


def test_stale_generation_is_removed_before_the_new_one_is_created() -> None:
    e = entry(gen=3, hosts={H1: "aa"})
    assert plan(H2, {"demo": e}, [local("old", gen=2)]) == [Remove(local("old", gen=2), e)]


def test_tombstone_removes_the_removed_network_when_empty_else_holds_it() -> None:
    e = entry(tomb=True, hosts={H3: "cc"})
    assert plan(H3, {"demo": e}, [local("cc")]) == [Remove(local("cc"), e)]
    assert plan(H3, {"demo": e}, [local("cc", containers=1)]) == [Hold(e, local("cc", containers=1))]
    held = entry(tomb=True, hosts={H3: "cc"}, holding={H3: 1})
    assert plan(H3, {"demo": held}, [local("cc", containers=1)]) == []
    # the network we made for that generation counts as the removed one even before it was recorded
    assert plan(H1, {"demo": e}, [local("xx", gen=1)]) == [Remove(local("xx", gen=1), e)]


def test_tombstone_forgets_a_host_that_no_longer_has_it() -> None:
    e = entry(tomb=True, hosts={H3: "cc"})
    assert plan(H3, {"demo": e}, []) == [Forget(e)]
    assert plan(H1, {"demo": e}, []) == []


def test_a_name_created_again_after_removal_is_a_new_generation() -> None:
    e = entry(gen=4, tomb=True, hosts={H3: "cc"})
    assert plan(H1, {"demo": e}, [local("new")]) == [Publish("demo", local("new"), 5, e)]


# -- wire formats ------------------------------------------------------------------------------------
def test_entry_round_trips_and_garbage_is_refused() -> None:
    e = entry(gen=2, hosts={H1: "aa"}, tomb=True, holding={H3: 2})
    assert decode(encode(e), 5) == e
    with pytest.raises(ValueError, match="not a catalog entry"):
        decode(b'{"name": "x"}')
    with pytest.raises(ValueError, match="not a catalog entry"):
        decode(b"nope")


def test_create_body_and_inspect_agree() -> None:
    body = create_body(entry(gen=7), "pynetdrv")
    assert body["Driver"] == "pynetdrv" and body["IPAM"]["Driver"] == "pynetdrv"
    assert body["Labels"][GENERATION_LABEL] == "7"
    inspected = {"Id": "ff", "Name": body["Name"], "Driver": "pynetdrv", "Options": body["Options"],
                 "Labels": body["Labels"], "EnableIPv6": False, "Internal": False, "Attachable": False,
                 "IPAM": {"Driver": "pynetdrv", "Options": {},
                          "Config": [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1", "IPRange": "10.77.0.128/25"}]},
                 "Containers": {"c1": {}, "c2": {}}}
    assert local_net(inspected) == LocalNet("ff", "demo", SPEC, 2, 7)


# -- three hosts -------------------------------------------------------------------------------------
class Cluster:
    def __init__(self) -> None:
        self.catalog = FakeCatalog()
        self.docker = {h: FakeEngine() for h in (H1, H2, H3)}
        self.syncs = {h: CreateOnceSync(self.catalog, e, h) for h, e in self.docker.items()}

    async def converge(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            for s in self.syncs.values():
                await s.run_once()

    def names(self, host: str) -> set[str]:
        return {n.name for n in self.docker[host].nets.values()}


async def test_create_once_appears_everywhere_with_the_same_spec() -> None:
    c = Cluster()
    c.docker[H1].user_create("demo", SPEC)
    await c.converge()
    for h in (H2, H3):
        net = c.docker[h].by_name("demo")
        assert net is not None and net.spec == SPEC and net.generation == 1
    e = c.catalog.entries["demo"]
    assert set(e.hosts) == {H1, H2, H3} and not e.tombstone
    before = c.catalog.revision
    await c.converge()
    assert c.catalog.revision == before, "a converged cluster keeps writing the catalog"


async def test_rm_on_one_host_removes_everywhere_and_deletes_the_entry() -> None:
    c = Cluster()
    c.docker[H1].user_create("demo", SPEC)
    await c.converge()
    c.docker[H2].user_remove("demo")
    await c.converge()
    assert not any(c.names(h) for h in (H1, H2, H3))
    assert c.catalog.entries == {}


async def test_a_host_with_containers_keeps_it_is_named_then_removes_it(caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster()
    c.docker[H1].user_create("demo", SPEC)
    await c.converge()
    c.docker[H3].set_containers("demo", 1)
    c.docker[H2].user_remove("demo")
    with caplog.at_level(logging.WARNING):
        await c.converge()
    assert c.names(H1) == c.names(H2) == set() and c.names(H3) == {"demo"}
    e = c.catalog.entries["demo"]
    assert e.tombstone and e.removed_by == H2 and e.holding == {H3: 1} and set(e.hosts) == {H3}
    assert any("stays on this host while 1 container(s)" in r.message and H3 in r.message for r in caplog.records)
    c.docker[H3].set_containers("demo", 0)
    await c.converge()
    assert c.names(H3) == set() and c.catalog.entries == {}


async def test_a_removed_name_can_be_created_again_while_a_holder_keeps_the_old_one() -> None:
    c = Cluster()
    c.docker[H1].user_create("demo", SPEC)
    await c.converge()
    c.docker[H3].set_containers("demo", 1)
    c.docker[H2].user_remove("demo")
    await c.converge()
    c.docker[H1].user_create("demo", SPEC)
    await c.converge()
    assert c.catalog.entries["demo"].generation == 2 and not c.catalog.entries["demo"].tombstone
    assert c.names(H2) == {"demo"}
    old = c.docker[H3].by_name("demo")
    assert old is not None and old.generation == 1  # still in use: kept, the new one waits
    c.docker[H3].set_containers("demo", 0)
    await c.converge()
    new = c.docker[H3].by_name("demo")
    assert new is not None and new.generation == 2
    assert set(c.catalog.entries["demo"].hosts) == {H1, H2, H3}


async def test_docker_down_on_a_host_logs_once_and_catches_up(caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster()
    c.docker[H3].up = False
    c.docker[H1].user_create("demo", SPEC)
    with caplog.at_level(logging.INFO):
        await c.converge()
    assert c.names(H2) == {"demo"} and c.names(H3) == set()
    assert sum("docker does not answer" in r.message for r in caplog.records) == 1
    c.docker[H3].up = True
    with caplog.at_level(logging.INFO):
        await c.converge()
    assert c.names(H3) == {"demo"}
    assert sum("docker answers again" in r.message for r in caplog.records) == 1


async def test_a_refused_create_is_logged_once_and_leaves_the_catalog_alone(caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster()
    c.docker[H2].refuse_create = "Pool overlaps with other one on this address space"
    c.docker[H1].user_create("demo", SPEC)
    with caplog.at_level(logging.WARNING):
        await c.converge()
    assert c.names(H2) == set() and H2 not in c.catalog.entries["demo"].hosts
    assert sum("could not create network demo" in r.message for r in caplog.records) == 1


async def test_start_and_stop_run_the_loop() -> None:
    import asyncio

    c = Cluster()
    c.docker[H1].user_create("demo", SPEC)
    s1, s2 = c.syncs[H1], c.syncs[H2]
    s1.start()
    s2.start()
    try:
        for _ in range(100):
            if c.names(H2) == {"demo"}:
                break
            await asyncio.sleep(0.05)
        assert c.names(H2) == {"demo"}
    finally:
        await s1.stop()
        await s2.stop()


async def test_a_same_name_network_made_by_hand_with_other_subnets_is_named_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster()
    c.docker[H1].user_create("demo", SPEC)
    c.docker[H2].user_create("demo", Spec((Subnet("10.99.0.0/24"),)))
    with caplog.at_level(logging.WARNING):
        await c.converge()
    assert set(c.catalog.entries["demo"].hosts) == {H1, H2, H3}
    assert sum("created by hand with other subnets" in r.message and "10.99.0.0/24" in r.message
               for r in caplog.records) == 1
