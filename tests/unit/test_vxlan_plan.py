"""The VXLAN entry diff (pynetdrv.dataplane.vxlan_plan): wanted entries from
endpoints and hosts, the plan that gets a device's entries there, and that it
never touches others' entries.  The kernel's effect of each operation is
modelled in ``apply`` (the netns tests check the real kernel)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pynetdrv.dataplane.vxlan_plan import (
    ZERO_MAC,
    Actual,
    FdbEntry,
    ForeignEntryError,
    NeighEntry,
    Plan,
    RemoteEndpoint,
    VxlanInputError,
    check_port,
    check_vni,
    plan,
    removal,
    vxlan_device_name,
    wanted_entries,
)

MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
H2, H3 = "192.168.250.12", "192.168.250.13"


def apply(changes: Plan, actual: Actual) -> Actual:
    """What the kernel holds after the plan, as the kernel does it: a
    replace of a MAC's FDB entry rewrites its (one) destination, an append
    adds one, a delete removes that MAC+destination; a neighbour replace
    sets the IP's entry, a delete removes the IP's."""
    fdb = set(actual.fdb)
    for op in changes.fdb:
        if op.action == "replace":
            same = sorted(e for e in fdb if e.mac == op.entry.mac)
            assert len(same) <= 1, f"replace of {op.entry.mac} with several destinations: {same}"
            fdb -= set(same)
            fdb.add(op.entry)
        elif op.action == "append":
            fdb.add(op.entry)
        else:
            assert op.entry in fdb, f"delete of an absent entry {op.entry}"
            fdb.discard(op.entry)
    neigh = {n.ip: n for n in actual.neigh}
    for nop in changes.neigh:
        if nop.action == "replace":
            neigh[nop.entry.ip] = nop.entry
        else:
            assert nop.entry.ip in neigh
            del neigh[nop.entry.ip]
    return Actual(frozenset(fdb), frozenset(neigh.values()), actual.foreign_fdb, actual.foreign_neigh)


def test_wanted_entries_per_endpoint_and_host() -> None:
    wanted = wanted_entries(
        [RemoteEndpoint("02:00:00:00:00:0A", ("10.77.0.12", "fd77::0:12"), H2)], [H2, H3]
    )
    assert wanted.fdb == {FdbEntry("02:00:00:00:00:0a", H2), FdbEntry(ZERO_MAC, H2), FdbEntry(ZERO_MAC, H3)}
    assert wanted.neigh == {NeighEntry("10.77.0.12", "02:00:00:00:00:0a"), NeighEntry("fd77::12", "02:00:00:00:00:0a")}


@pytest.mark.parametrize(("endpoints", "hosts", "named"), [
    ([RemoteEndpoint("zz", ("10.0.0.1",), H2)], [], "'zz'"),
    ([RemoteEndpoint("03:00:00:00:00:01", ("10.0.0.1",), H2)], [], "03:00:00:00:00:01"),  # multicast
    ([RemoteEndpoint(ZERO_MAC, ("10.0.0.1",), H2)], [], ZERO_MAC),
    ([RemoteEndpoint(MAC1, ("10.0.0.300",), H2)], [], "10.0.0.300"),
    ([RemoteEndpoint(MAC1, ("10.0.0.1",), "nohost")], [], "nohost"),
    ([RemoteEndpoint(MAC1, (), H2)], [], MAC1),
    ([RemoteEndpoint(MAC1, "10.0.0.1", H2)], [], MAC1),  # type: ignore[arg-type]
    ([], ["224.0.0.1"], "224.0.0.1"),
    ([RemoteEndpoint(MAC1, ("10.0.0.1",), H2), RemoteEndpoint(MAC1, ("10.0.0.2",), H3)], [], "two VTEPs"),
    ([RemoteEndpoint(MAC1, ("10.0.0.1",), H2), RemoteEndpoint(MAC2, ("10.0.0.1",), H2)], [], "two MACs"),
])
def test_bad_wanted_input_is_refused_naming_it(endpoints: list[RemoteEndpoint], hosts: list[str], named: str) -> None:
    with pytest.raises(VxlanInputError, match=named):
        wanted_entries(endpoints, hosts)


@pytest.mark.parametrize("vni", [0, 1 << 24, -1, True, "5"])
def test_vni_outside_range(vni: object) -> None:
    with pytest.raises(VxlanInputError, match="VNI"):
        check_vni(vni)  # type: ignore[arg-type]


def test_vni_and_port_bounds_accepted() -> None:
    assert check_vni(1) == 1 and check_vni((1 << 24) - 1) == (1 << 24) - 1
    assert check_port(4789) == 4789
    with pytest.raises(VxlanInputError, match="port"):
        check_port(65536)


def test_device_name_fits_ifnamsiz_and_is_stable() -> None:
    assert vxlan_device_name("0123456789abcdef" * 4) == "pnvx-0123456789"
    other = vxlan_device_name("not hex at all")
    assert len(other) <= 15 and other == vxlan_device_name("not hex at all") != vxlan_device_name("not hex")


def test_sync_plan_adds_missing_removes_stale_and_moves_a_mac() -> None:
    actual = Actual(
        fdb=frozenset({FdbEntry(MAC1, H2), FdbEntry(MAC2, H2), FdbEntry(ZERO_MAC, H2), FdbEntry(ZERO_MAC, H3)}),
        neigh=frozenset({NeighEntry("10.77.0.1", MAC1), NeighEntry("10.77.0.2", MAC2)}),
    )
    wanted = wanted_entries([RemoteEndpoint(MAC1, ("10.77.0.1",), H3), RemoteEndpoint(MAC3, ("10.77.0.3",), H2)],
                            [H3])
    changes = plan(wanted, actual, "vx")
    # MAC1 moved: one replace, no delete (never a moment without an entry).
    assert [(op.action, op.entry) for op in changes.fdb] == [
        ("del", FdbEntry(MAC2, H2)), ("del", FdbEntry(ZERO_MAC, H2)),
        ("replace", FdbEntry(MAC1, H3)), ("replace", FdbEntry(MAC3, H2)),
    ]
    assert [(op.action, op.entry.ip) for op in changes.neigh] == [("del", "10.77.0.2"), ("replace", "10.77.0.3")]
    after = apply(changes, actual)
    assert (after.fdb, after.neigh) == (wanted.fdb, wanted.neigh)
    assert len(plan(wanted, after, "vx")) == 0


def test_a_neighbour_not_permanent_is_rewritten() -> None:
    actual = Actual(neigh=frozenset({NeighEntry("10.77.0.1", MAC1, permanent=False)}))
    wanted = wanted_entries([RemoteEndpoint(MAC1, ("10.77.0.1",), H2)], [])
    assert [(op.action, op.entry) for op in plan(wanted, actual, "vx").neigh] == [
        ("replace", NeighEntry("10.77.0.1", MAC1))]


def test_extra_destinations_of_a_mac_go_before_the_replace() -> None:
    actual = Actual(fdb=frozenset({FdbEntry(MAC1, H2), FdbEntry(MAC1, H3)}))
    wanted = wanted_entries([RemoteEndpoint(MAC1, ("10.77.0.1",), "192.168.250.14")], [])
    changes = plan(wanted, actual, "vx")
    assert [op.action for op in changes.fdb] == ["del", "replace"]
    assert apply(changes, actual).fdb == {FdbEntry(MAC1, "192.168.250.14")}


def test_others_entries_are_never_in_the_plan() -> None:
    foreign_fdb = frozenset({FdbEntry(MAC3, H3), FdbEntry(ZERO_MAC, "192.168.250.99")})
    foreign_neigh = frozenset({NeighEntry("10.77.0.99", MAC3)})
    actual = Actual(fdb=frozenset({FdbEntry(MAC1, H2)}), foreign_fdb=foreign_fdb, foreign_neigh=foreign_neigh)
    changes = plan(wanted_entries([], []), actual, "vx")
    assert [(op.action, op.entry) for op in changes.fdb] == [("del", FdbEntry(MAC1, H2))]
    assert changes.neigh == []


@pytest.mark.parametrize(("endpoints", "hosts", "named"), [
    ([RemoteEndpoint(MAC3, ("10.77.0.3",), H2)], [], f"FDB entry {MAC3}"),
    ([RemoteEndpoint(MAC1, ("10.77.0.99",), H2)], [], "neighbour entry 10.77.0.99"),
    ([], ["192.168.250.99"], f"FDB entry {ZERO_MAC}"),
    ([], ["192.168.250.50"], f"FDB entry {ZERO_MAC}"),  # the flood entry is someone else's as a whole
])
def test_an_entry_over_someone_elses_is_refused(endpoints: list[RemoteEndpoint], hosts: list[str],
                                                 named: str) -> None:
    actual = Actual(foreign_fdb=frozenset({FdbEntry(MAC3, H3), FdbEntry(ZERO_MAC, "192.168.250.99")}),
                    foreign_neigh=frozenset({NeighEntry("10.77.0.99", MAC3)}))
    with pytest.raises(ForeignEntryError, match=f"vxlan vx0: .*{named}"):
        plan(wanted_entries(endpoints, hosts), actual, "vx0")


def test_scoped_plan_leaves_other_endpoints_and_hosts() -> None:
    actual = Actual(fdb=frozenset({FdbEntry(MAC1, H2), FdbEntry(MAC2, H2), FdbEntry(ZERO_MAC, H2)}),
                    neigh=frozenset({NeighEntry("10.77.0.1", MAC1), NeighEntry("10.77.0.2", MAC2)}))
    one = wanted_entries([RemoteEndpoint(MAC1, ("10.77.0.1",), H3)], [])
    changes = plan(one, actual, "vx", scope=one)
    after = apply(changes, actual)
    assert after.fdb == {FdbEntry(MAC1, H3), FdbEntry(MAC2, H2), FdbEntry(ZERO_MAC, H2)}
    assert after.neigh == actual.neigh
    assert len(plan(one, after, "vx", scope=one)) == 0


def test_removal_only_while_the_entry_still_belongs_to_that_endpoint() -> None:
    # 10.77.0.1 went to MAC2 since; MAC1 moved to H3: nothing of MAC1@H2 is left to remove.
    actual = Actual(fdb=frozenset({FdbEntry(MAC1, H3), FdbEntry(MAC2, H2)}),
                    neigh=frozenset({NeighEntry("10.77.0.1", MAC2)}))
    assert len(removal(wanted_entries([RemoteEndpoint(MAC1, ("10.77.0.1",), H2)], []), actual)) == 0
    gone = removal(wanted_entries([RemoteEndpoint(MAC2, ("10.77.0.1",), H2)], []), actual)
    assert apply(gone, actual) == Actual(fdb=frozenset({FdbEntry(MAC1, H3)}))


macs = st.sampled_from([MAC1, MAC2, MAC3, "02:00:00:00:00:04"])
vteps = st.sampled_from([H2, H3, "192.168.250.14", "fd00::14"])
ips = st.sampled_from(["10.77.0.1", "10.77.0.2", "10.77.0.3", "fd77::1", "fd77::2"])
fdb_entries = st.builds(FdbEntry, st.one_of(macs, st.just(ZERO_MAC)), vteps)
neigh_entries = st.builds(NeighEntry, ips, macs, st.booleans())


@st.composite
def actual_states(draw: st.DrawFn) -> Actual:
    neigh = {n.ip: n for n in draw(st.lists(neigh_entries, max_size=6))}
    return Actual(frozenset(draw(st.sets(fdb_entries, max_size=8))), frozenset(neigh.values()))


@st.composite
def wanted_inputs(draw: st.DrawFn) -> tuple[list[RemoteEndpoint], list[str]]:
    endpoints, used_ips = [], set()
    for mac in draw(st.sets(macs, max_size=4)):
        own = [ip for ip in draw(st.sets(ips, min_size=1, max_size=2)) if ip not in used_ips]
        if own:
            used_ips.update(own)
            endpoints.append(RemoteEndpoint(mac, tuple(own), draw(vteps)))
    return endpoints, draw(st.lists(vteps, max_size=3))


@settings(max_examples=300, deadline=None)
@given(actual_states(), wanted_inputs())
def test_sync_plan_reaches_the_wanted_set_in_one_go(actual: Actual,
                                                      wanted_in: tuple[list[RemoteEndpoint], list[str]]) -> None:
    wanted = wanted_entries(*wanted_in)
    after = apply(plan(wanted, actual, "vx"), actual)
    assert (after.fdb, after.neigh) == (wanted.fdb, wanted.neigh)
    assert len(plan(wanted, after, "vx")) == 0


@settings(max_examples=300, deadline=None)
@given(actual_states(), wanted_inputs())
def test_scoped_plan_changes_nothing_outside_its_scope(actual: Actual,
                                                        wanted_in: tuple[list[RemoteEndpoint], list[str]]) -> None:
    endpoints, hosts = wanted_in
    wanted = wanted_entries(endpoints[:1], hosts[:1])
    after = apply(plan(wanted, actual, "vx", scope=wanted), actual)
    macs_in = {e.mac for e in wanted.fdb if e.mac != ZERO_MAC}
    ips_in = {n.ip for n in wanted.neigh}
    outside = {e for e in actual.fdb if e.mac not in macs_in and e not in wanted.fdb}
    assert outside <= after.fdb and wanted.fdb <= after.fdb
    assert {n for n in actual.neigh if n.ip not in ips_in} | wanted.neigh == after.neigh
