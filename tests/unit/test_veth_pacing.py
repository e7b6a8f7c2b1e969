"""NetlinkDataplane's own scheduling of ensure_veth (dataplane.veth_pacing):
which pairs it tries to create first, and when an add leaves the loop.  The
same properties against the kernel: tests/netns/test_netns_veth_fast.py and
test_netns_loop_free.py."""

from __future__ import annotations

from pynetdrv.dataplane.veth_pacing import VethPacing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unseen_pairs_are_likely_new_and_seen_ones_not() -> None:
    p = VethPacing()
    assert p.likely_new("v1")
    p.exists("v1")
    assert not p.likely_new("v1")
    p.gone("v1")
    assert p.likely_new("v1")


def test_a_dump_replaces_what_was_known() -> None:
    p = VethPacing()
    p.exists("v1")
    p.dumped(["v2", "v3"])
    assert [p.likely_new(n) for n in ("v1", "v2", "v3", "v4")] == [True, False, False, True]


def test_a_lone_add_stays_on_the_loop() -> None:
    clock = Clock()
    p = VethPacing(burst_window=0.05, clock=clock)
    with p.ensuring():
        assert not p.add_off_loop()
    clock.now += 1.0  # the next container start, long after
    with p.ensuring():
        assert not p.add_off_loop()


def test_adds_back_to_back_leave_the_loop_after_the_first() -> None:
    """One network's CreateEndpoint calls arrive one at a time (its lock)."""
    clock = Clock()
    p = VethPacing(burst_window=0.05, clock=clock)
    placed = []
    for _ in range(5):
        with p.ensuring():
            placed.append(p.add_off_loop())
        clock.now += 0.004
    assert placed == [False, True, True, True, True]
    clock.now += 0.05  # quiet again
    with p.ensuring():
        assert not p.add_off_loop()


def test_adds_with_others_in_flight_leave_the_loop() -> None:
    clock = Clock()
    p = VethPacing(burst_window=0.0, clock=clock)
    with p.ensuring():
        assert not p.add_off_loop()
        with p.ensuring():
            clock.now += 1.0
            assert p.add_off_loop()
    clock.now += 1.0
    with p.ensuring():
        assert not p.add_off_loop()
