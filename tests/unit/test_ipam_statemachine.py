"""IPAM against a model, stateful (hypothesis RuleBasedStateMachine).

Any sequence of RequestPool / ReleasePool / RequestAddress / ReleaseAddress,
with repeats, unknown and released pool IDs, static, gateway and automatic
addresses, and daemon restarts on the same state file, sent over the real
unix socket to the app the daemon serves (SQLite state file, FakeDataplane):

- every answer is the one the model predicts: the exact automatic address
  (round robin: a released address comes back only after the rest of the
  range), the exact error kind, ``{}`` for releases (idempotent);
- another allocator on the same state file (as another daemon sharing the
  store) racing the daemon's own requests takes addresses from the same
  round robin: together they get exactly the addresses the model hands out
  next, none twice;
- no address is ever held twice, a released address is free again, and the
  store's pools and allocations equal the model's after every step and every
  restart; ``pynetdrv status`` counts agree.

PYNETDRV_LONG=1 runs 20x the examples and 3x the steps.
"""

from __future__ import annotations

import asyncio
import re

import netaddr
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, precondition, rule
from plugin_harness import PluginHarness, machine_settings

from pynetdrv.errors import Unavailable
from pynetdrv.ipam.addresses import usable_bounds
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.store.sqlite import SQLiteStore

AUTO_V4 = netaddr.IPNetwork("10.226.0.0/22")  # four automatic /24s
AUTO_V6 = netaddr.IPNetwork("fd00:226::/122")  # four automatic /124s
DEFAULT_POOLS = (f"base={AUTO_V4},size=24", f"base={AUTO_V6},size=124")

#: (subnet, ip-range) pairs, small enough to fill, some overlapping each other
#: or the automatic ranges.
EXPLICIT = [
    ("10.227.0.0/29", None),
    ("10.227.0.0/28", "10.227.0.8/30"),
    ("10.227.0.8/30", None),
    ("10.227.0.16/31", None),
    ("10.227.0.20/32", None),
    ("10.226.1.0/28", "10.226.1.4/31"),
    ("10.226.0.0/23", None),
    ("fd00:226:1::/125", None),
    ("fd00:226:1::/124", "fd00:226:1::8/126"),
]
#: Pool IDs to send: mostly ones handed out (live or released), sometimes never known.
UNKNOWN_POOLS = ["local/10.227.9.0/24", "nonsense", "local/10.227.0.0/29 ", "global/10.227.0.0/29"]

def some_pool(bundle: Bundle) -> st.SearchStrategy[str]:
    return st.one_of(bundle, bundle, bundle, st.sampled_from(UNKNOWN_POOLS))


GW = {"RequestAddressType": "com.docker.network.gateway"}
REQUEST_POOL = "/IpamDriver.RequestPool"
RELEASE_POOL = "/IpamDriver.ReleasePool"
REQUEST_ADDRESS = "/IpamDriver.RequestAddress"
RELEASE_ADDRESS = "/IpamDriver.ReleaseAddress"

STATS = {"examples": 0, "steps": 0, "restarts": 0}


class ModelPool:
    def __init__(self, cidr: str, subpool: str | None) -> None:
        self.net = netaddr.IPNetwork(cidr)
        self.first, self.last = usable_bounds(self.net)
        lo, hi = self.first, self.last
        if subpool:
            sub = netaddr.IPNetwork(subpool)
            lo, hi = max(lo, int(sub.first)), min(hi, int(sub.last))
        self.lo, self.hi = lo, hi
        self.cursor = lo
        self.held: set[int] = set()

    def ip(self, value: int) -> str:
        return str(netaddr.IPAddress(value, self.net.version))

    def next_free(self) -> int | None:
        """The allocator's round robin: first free at or after the cursor,
        wrapping once to the start of the range."""
        for a in [*range(self.cursor, self.hi + 1), *range(self.lo, self.cursor)]:
            if a not in self.held:
                return a
        return None

    def take_next(self) -> int | None:
        a = self.next_free()
        if a is not None:
            self.held.add(a)
            self.cursor = a + 1 if a < self.hi else self.lo
        return a


class IpamMachine(RuleBasedStateMachine):
    pool_ids = Bundle("pool_ids")

    def __init__(self) -> None:
        super().__init__()
        self.h = PluginHarness(DEFAULT_POOLS)
        self.pools: dict[str, ModelPool] = {}
        STATS["examples"] += 1

    def teardown(self) -> None:
        STATS["steps"] += self.h.requests
        self.h.close()

    # helpers ----------------------------------------------------------------
    def _expect_error(self, reply_status: int, text: str, status: int, *words: str) -> None:
        assert reply_status == status, (reply_status, text)
        err = self.h_last.json["Err"]
        assert isinstance(err, str) and err
        for w in words:
            assert w in err, (w, err)

    def call(self, path: str, body: dict[str, object]) -> tuple[int, object]:
        reply = self.h.call(path, body)
        self.h_last = reply
        assert reply.content_type == "application/vnd.docker.plugins.v1.2+json", reply
        return reply.status, reply.json

    def _overlapping(self, net: netaddr.IPNetwork) -> bool:
        return any(p.net.version == net.version and p.net.first <= net.last and net.first <= p.net.last
                   for p in self.pools.values())

    # rules -------------------------------------------------------------------
    @rule(target=pool_ids, choice=st.sampled_from(EXPLICIT), space=st.sampled_from(["", "local"]))
    def request_explicit_pool(self, choice: tuple[str, str | None], space: str) -> object:
        cidr, sub = choice
        status, body = self.call(REQUEST_POOL, {"AddressSpace": space, "Pool": cidr, "SubPool": sub or "",
                                                "Options": {}, "V6": False})
        pid = f"local/{cidr}"
        if self._overlapping(netaddr.IPNetwork(cidr)):
            self._expect_error(status, str(body), 500, "overlaps")
            return multiple()
        assert status == 200, body
        assert body == {"PoolID": pid, "Pool": cidr, "Data": {}}
        self.pools[pid] = ModelPool(cidr, sub)
        return pid

    @rule(target=pool_ids, v6=st.booleans())
    def request_automatic_pool(self, v6: bool) -> object:
        base = AUTO_V6 if v6 else AUTO_V4
        size = 124 if v6 else 24
        free = [s for s in base.subnet(size) if not self._overlapping(s)]
        status, body = self.call(REQUEST_POOL, {"AddressSpace": "local", "Pool": "", "SubPool": "",
                                                "Options": None, "V6": v6})
        if not free:
            self._expect_error(status, str(body), 500, "no free")
            return multiple()
        assert status == 200, body
        assert isinstance(body, dict)
        got = netaddr.IPNetwork(body["Pool"])
        assert got in free, (got, free)
        assert body["PoolID"] == f"local/{got}"
        self.pools[body["PoolID"]] = ModelPool(str(got), None)
        return body["PoolID"]

    @rule(pid=st.one_of(pool_ids, st.sampled_from(UNKNOWN_POOLS)))
    def release_pool(self, pid: str) -> None:
        status, body = self.call(RELEASE_POOL, {"PoolID": pid})
        assert (status, body) == (200, {})
        self.pools.pop(pid, None)

    @rule(pid=some_pool(pool_ids), gateway=st.booleans())
    def request_automatic_address(self, pid: str, gateway: bool) -> None:
        status, body = self.call(REQUEST_ADDRESS, {"PoolID": pid, "Address": "", "Options": GW if gateway else {}})
        pool = self.pools.get(pid)
        if pool is None:
            self._expect_error(status, str(body), 500, "unknown pool")
            return
        if gateway and pool.first not in pool.held:
            want: int | None = pool.first  # the .1, taken without moving the cursor
            pool.held.add(pool.first)
        else:
            want = pool.take_next()
        if want is None:
            self._expect_error(status, str(body), 500, "no free address")
            return
        assert (status, body) == (200, {"Address": f"{pool.ip(want)}/{pool.net.prefixlen}", "Data": {}})

    @rule(pid=pool_ids, offset=st.integers(-2, 20), gateway=st.booleans())
    def request_static_address(self, pid: str, offset: int, gateway: bool) -> None:
        pool = self.pools.get(pid)
        base = pool.net if pool else netaddr.IPNetwork("10.227.0.0/29")
        addr = int(base.first) + offset
        ip = str(netaddr.IPAddress(addr, base.version))
        status, body = self.call(REQUEST_ADDRESS, {"PoolID": pid, "Address": ip, "Options": GW if gateway else None})
        if pool is None:
            self._expect_error(status, str(body), 500, "unknown pool")
        elif not pool.net.first <= addr <= pool.net.last:
            self._expect_error(status, str(body), 400, "outside pool")
        elif not pool.first <= addr <= pool.last:
            self._expect_error(status, str(body), 400, "network or broadcast")
        elif addr in pool.held:
            self._expect_error(status, str(body), 500, "already in use")
        else:
            assert (status, body) == (200, {"Address": f"{ip}/{pool.net.prefixlen}", "Data": {}})
            pool.held.add(addr)

    @rule(pid=some_pool(pool_ids), data=st.data())
    def release_address(self, pid: str, data: st.DataObject) -> None:
        pool = self.pools.get(pid)
        if pool is not None and pool.held and data.draw(st.integers(0, 4), label="held") > 0:
            addr = data.draw(st.sampled_from(sorted(pool.held)), label="addr")
            ip = pool.ip(addr)
        else:
            ip = data.draw(st.sampled_from(["10.227.0.3", "10.226.1.5", "fd00:226:1::3", "10.226.0.1"]), label="ip")
        status, body = self.call(RELEASE_ADDRESS, {"PoolID": pid, "Address": ip})
        assert (status, body) == (200, {})
        if pool is not None and netaddr.IPAddress(ip).version == pool.net.version:
            pool.held.discard(int(netaddr.IPAddress(ip)))

    @rule(pid=pool_ids, ops=st.lists(st.integers(-1, 5), min_size=2, max_size=12))
    def churn_addresses(self, pid: str, ops: list[int]) -> None:
        """Containers coming and going on one pool: -1 asks for an address,
        n releases the n-th held one (round robin shows only over such runs)."""
        for op in ops:
            pool = self.pools.get(pid)
            if op < 0 or pool is None or not pool.held:
                self.request_automatic_address(pid, False)
                continue
            addr = sorted(pool.held)[op % len(pool.held)]
            status, body = self.call(RELEASE_ADDRESS, {"PoolID": pid, "Address": pool.ip(addr)})
            assert (status, body) == (200, {})
            pool.held.discard(addr)

    @rule(pid=pool_ids, mine=st.integers(1, 5), theirs=st.integers(1, 5))
    def another_allocator_races(self, pid: str, mine: int, theirs: int) -> None:
        """``mine`` RequestAddress calls to the daemon while an allocator of
        its own store on the same file takes ``theirs`` automatic addresses,
        interleaved: as a set, they get the next mine + theirs addresses of
        the round robin (which of them gets which is up to the race)."""
        pool = self.pools.get(pid)
        if pool is None:
            return

        async def race() -> tuple[list[object], list[str | None]]:
            other = SQLiteStore(self.h.state)
            await other.open()
            try:
                alloc = Allocator(other)

                async def theirs_() -> list[str | None]:
                    out: list[str | None] = []
                    for _ in range(theirs):
                        await asyncio.sleep(0)
                        try:
                            out.append(await alloc.reserve(pid, None, "dynamic"))
                        except Unavailable:
                            out.append(None)
                    return out

                async def mine_() -> list[object]:
                    return [await self.h.acall(REQUEST_ADDRESS, {"PoolID": pid, "Address": "", "Options": {}})
                            for _ in range(mine)]

                return await asyncio.gather(mine_(), theirs_())
            finally:
                await other.close()

        replies, other_got = self.h.run(race())
        want = [pool.take_next() for _ in range(mine + theirs)]
        got = [a for a in other_got if a is not None]
        refused = other_got.count(None)
        for reply in replies:
            if reply.status == 200:
                address = reply.json["Address"]
                assert address.endswith(f"/{pool.net.prefixlen}"), reply
                got.append(address.split("/")[0])
            else:
                assert reply.status == 500 and "no free address" in reply.json["Err"], reply
                refused += 1
        assert len(got) == len(set(got)), f"an address was handed out twice: {got}"
        assert sorted(got, key=netaddr.IPAddress) == sorted((pool.ip(a) for a in want if a is not None),
                                                            key=netaddr.IPAddress)
        assert refused == want.count(None)

    @rule(pid=consumes(pool_ids))
    def release_pool_then_request_again_gets_it_empty(self, pid: str) -> None:
        """A released pool's subnet is free for a new pool, which starts empty."""
        pool = self.pools.get(pid)
        status, _ = self.call(RELEASE_POOL, {"PoolID": pid})
        assert status == 200
        self.pools.pop(pid, None)
        if pool is None or self._overlapping(pool.net):
            return
        cidr = str(pool.net)
        status, body = self.call(REQUEST_POOL, {"AddressSpace": "local", "Pool": cidr})
        assert status == 200, body
        fresh = ModelPool(cidr, None)
        self.pools[f"local/{cidr}"] = fresh
        assert fresh.next_free() is not None or fresh.lo > fresh.hi

    @precondition(lambda self: bool(self.pools))
    @rule()
    def restart_daemon(self) -> None:
        self.h.restart()
        STATS["restarts"] += 1

    # invariants ---------------------------------------------------------------
    @invariant()
    def store_equals_model(self) -> None:
        snap = self.h.snapshot()
        assert {p.pool_id: p.cidr for p in snap["pools"]} == {k: str(p.net) for k, p in self.pools.items()}
        for pid, allocs in snap["allocations"].items():
            addrs = [int(netaddr.IPAddress(a.address)) for a in allocs]
            assert len(addrs) == len(set(addrs)), f"address held twice in {pid}: {allocs}"
            assert set(addrs) == self.pools[pid].held, (pid, allocs)
        # The IPAM half never touches the kernel.
        assert snap["links"] == {}

    @invariant()
    def status_counts_agree(self) -> None:
        used = {}
        for line in self.h.status().splitlines():
            m = re.match(r"(\S+/\d+)\s+\S+.*?\s(\d+) / \d+", line)
            if m and "/" in line.split()[-1]:
                used[line.split()[-1]] = int(m.group(2))
        assert used == {pid: len(p.held) for pid, p in self.pools.items()}


def test_ipam_state_machine() -> None:
    before = dict(STATS)
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(IpamMachine, settings=machine_settings(examples=60, steps=40))
    ran = {k: STATS[k] - before[k] for k in STATS}
    print(f"\nIPAM state machine: {ran['examples']} examples, {ran['steps']} requests, {ran['restarts']} restarts")
    assert ran["examples"] > 0 and ran["steps"] > 0
