"""``pynetdrv status`` and ``check`` in cluster mode over fakes (tests/fakes/etcd.py, tests/fakes/vxlan.py):
two hosts share a cluster network; the inventory read from etcd attributes every address to its host,
and this host's VXLAN device compared with the registry gives a finding per wrong entry, fixed by
the daemon's own sync."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_cluster import PREFIX, Host, fake_cluster, until

from pynetdrv.api import ipam_models as im
from pynetdrv.check.cluster_checks import ClusterExpect, compare_vxlan, repair_vxlan
from pynetdrv.cluster.settings import ClusterSettings, load_settings, resolve_settings, save_settings, settings_path
from pynetdrv.dataplane.vxlan_plan import FdbEntry, NeighEntry
from pynetdrv.registry.inventory import read_inventory, render_inventory
from pynetdrv.store.etcd_keys import Keys
from tests.fakes.etcd import FakeEtcd

N1, N2, N3 = "1" * 64, "2" * 64, "3" * 64
E1, E2 = "a" * 64, "b" * 64


@pytest.fixture
async def two() -> AsyncIterator[tuple[FakeEtcd, Host, Host]]:
    async with fake_cluster() as hosts:
        yield hosts


async def _populated(h1: Host, h2: Host) -> tuple[str, str]:
    await h1.create(N1)
    await h2.create(N2)
    ip1, ip2 = await h1.run(N1, E1), await h2.run(N2, E2)
    await until(lambda: N2 in h2.vx.devices and len(h2.vx.devices[N2].endpoints) == 1, "host 2 has host 1's endpoint")
    await until(lambda: N1 in h1.vx.devices and len(h1.vx.devices[N1].endpoints) == 1, "host 1 has host 2's endpoint")
    return ip1, ip2


async def test_status_lists_every_host_network_and_address_holder(two: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, h1, h2 = two
    ip1, ip2 = await _populated(h1, h2)
    # an address allocated without an endpoint (an --aux-address, or an IPAM call not yet followed)
    spare = await h1.ipam.request_address(im.RequestAddressRequest(PoolID="local/10.77.0.0/24", Address=""))
    inv = await read_inventory(etcd, Keys(PREFIX))
    assert inv.host_names() == [h1.addr, h2.addr] and all(inv.alive(h) for h in inv.host_names())
    (net,) = inv.networks
    assert net.pool.cidr == "10.77.0.0/24" and net.vni == 1 and sorted(net.users) == [h1.addr, h2.addr]
    held = {x.address: (x.kind, x.host) for x in inv.holders(net)}
    assert held[ip1] == ("endpoint", h1.addr) and held[ip2] == ("endpoint", h2.addr)
    assert held["10.77.0.1"] == ("gateway", "every host")
    assert held[spare.Address.split("/")[0]] == ("reserved", h1.addr)
    text = "\n".join(render_inventory(inv))
    assert f"{ip1:<29} local/10.77.0.0/24            {h1.addr} (endpoint {E1[:12]})" in text
    assert f"{h2.addr:<29} yes     1          local/10.77.0.0/24" in text
    assert "reserved by 192.0.2.11 (no endpoint)" in text
    js = inv.to_json()
    assert [h["endpoints"] for h in js["hosts"]] == [1, 1]
    # a host whose lease expired: listed (it still uses the pool), not alive, no endpoints
    lease = next(kv.lease for kv in etcd.kvs.values() if kv.key.endswith(b"/hosts/192.0.2.12"))
    await h2.member.stop()
    etcd.expire(lease)
    inv = await read_inventory(etcd, Keys(PREFIX))
    assert not inv.alive(h2.addr) and inv.endpoints_of(h2.addr) == []
    assert {x.address: x.kind for x in inv.holders(inv.networks[0])}[ip2] == "reserved"
    await h2.member.start()


async def test_check_finds_each_wrong_entry_and_repair_syncs_it(two: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, h2 = two
    ip1, _ = await _populated(h1, h2)
    view = h2.member.registry.view
    nets = tuple(await h2.local.list_networks())
    expect = ClusterExpect(view, h2.addr, 4789, await h2.vx.list_vxlan_state())
    assert compare_vxlan(nets, expect) == []  # a clean cluster: no finding
    dev = expect.devices[0]
    mac1 = next(iter(h2.vx.devices[N2].endpoints)).mac
    broken = dataclasses.replace(
        dev, vni=9, fdb=dev.fdb - {FdbEntry(mac1, h1.addr)} | {FdbEntry("02:00:00:00:00:99", "192.0.2.99")},
        neigh=dev.neigh - {NeighEntry(ip1, mac1)})
    lines = [f.line() for f in compare_vxlan(nets, dataclasses.replace(expect, devices=[broken]))]
    subject = f"vxlan {dev.name} of network {N2[:12]} (cluster network local/10.77.0.0/24, VNI 1)"
    assert lines == [
        f"mismatch {subject}: VNI is 9, the cluster wants 1",
        f"missing {subject}: FDB entry {mac1} -> {h1.addr}",
        f"orphan {subject}: FDB entry 02:00:00:00:00:99 -> 192.0.2.99 not in the registry",
        f"missing {subject}: neighbour entry {ip1} -> {mac1}",
    ]
    # no device at all, then a device of a network this host does not have
    missing = compare_vxlan(nets, dataclasses.replace(expect, devices=[]))
    assert [f.line() for f in missing] == [f"missing {subject}: no VXLAN device in the kernel"]
    stray = dataclasses.replace(dev, name="pnvx-3333333333", network_id=N3)
    (orphan,) = compare_vxlan(nets, dataclasses.replace(expect, devices=[dev, stray]))
    assert orphan.kind == "orphan" and not orphan.repairable and N3[:12] in orphan.detail
    # repair: the daemon's steps (ensure + sync) on the fake kernel, which then agrees again
    h2.vx.devices.clear()
    done = await repair_vxlan(missing, nets, expect, h2.vx)
    assert done == [f"synced vxlan {dev.name} of network {N2[:12]} with the registry (2 change(s))"]
    assert compare_vxlan(nets, dataclasses.replace(expect, devices=await h2.vx.list_vxlan_state())) == []
    h2.vx.fail = True
    assert (await repair_vxlan(missing, nets, expect, h2.vx))[0].startswith("failed: sync vxlan")
    h2.vx.fail = False


def test_settings_are_recorded_read_and_overridden(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    assert load_settings(state) is None and resolve_settings(state, None, None, None, None) is None
    s = ClusterSettings("etcd://10.0.0.1:2379", "10.0.0.21", 4790, "/etc/ca.pem", None, None)
    save_settings(state, s)
    assert load_settings(state) == s
    o = resolve_settings(state, "etcd://10.0.0.2:2379", None, Path("/c.pem"), Path("/k.pem"))
    assert o == ClusterSettings("etcd://10.0.0.2:2379", "10.0.0.21", 4790, "/etc/ca.pem", "/c.pem", "/k.pem")
    settings_path(state).write_text("{not json")
    with pytest.raises(ValueError, match=r"state\.db\.cluster\.json"):
        load_settings(state)
    save_settings(state, None)
    assert not settings_path(state).exists()


async def _empty_state(path: Path) -> None:
    from pynetdrv.store.sqlite import SQLiteStore

    s = SQLiteStore(path)
    await s.open()
    await s.close()


def test_status_with_etcd_away_shows_the_local_view_and_names_etcd(tmp_path: Path) -> None:
    """Nothing listens on 127.0.0.1:9 (discard): within the few seconds, one line naming etcd, exit 0."""
    import asyncio
    import subprocess
    import sys

    state = tmp_path / "state.db"
    asyncio.run(_empty_state(state))
    save_settings(state, ClusterSettings("etcd://127.0.0.1:9", "127.0.0.1"))
    proc = subprocess.run([sys.executable, "-m", "pynetdrv", "status", "--state", str(state), "--no-docker"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "NETWORK" in proc.stdout and "CLUSTER HOST" not in proc.stdout
    assert "showing this host's view only: etcd" in proc.stderr and "127.0.0.1:9" in proc.stderr
    # --store etcd:// on the command line wins over the recorded one
    proc = subprocess.run([sys.executable, "-m", "pynetdrv", "status", "--state", str(state), "--no-docker",
                           "--store", "etcd://127.0.0.1:7"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "127.0.0.1:7" in proc.stderr and "127.0.0.1:9" not in proc.stderr


def test_check_with_etcd_away_or_no_advertise_address_says_what_it_did_not_compare(tmp_path: Path) -> None:
    import asyncio
    import subprocess
    import sys

    state = tmp_path / "state.db"
    asyncio.run(_empty_state(state))

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pynetdrv", "check", "--state", str(state), "--no-docker",
                               "--no-firewall", *extra], capture_output=True, text=True, timeout=30)

    given = check("--store", "etcd://127.0.0.1:9")
    assert given.returncode == 0, given.stdout + given.stderr
    not_compared = "note: VXLAN devices not compared with the registry:"
    assert f"{not_compared} this host's advertise address is unknown" in given.stdout
    save_settings(state, ClusterSettings("etcd://127.0.0.1:9", "127.0.0.1"))
    away = check()
    assert away.returncode == 0, away.stdout + away.stderr
    assert f"{not_compared} etcd etcd://127.0.0.1:9 did not answer" in away.stdout


def test_an_ipv6_address_is_attributed_to_its_endpoint_though_the_record_names_the_ipv4_pool() -> None:
    """A dual-stack cluster network is named by its first (IPv4) pool in the endpoint's record; its
    IPv6 address lives in the second pool and must still be the endpoint's, not "reserved"."""
    from pynetdrv.ipam.records import Allocation, PoolRecord
    from pynetdrv.registry.inventory import ClusterNetwork, Inventory
    from pynetdrv.registry.view import EndpointEntry, HostEntry, RegistryView

    view = RegistryView(b"/r/")
    view.hosts["10.0.0.21"] = HostEntry("10.0.0.21", ("local/10.77.0.0/24",))
    view.endpoints[("10.0.0.21", E1)] = EndpointEntry("local/10.77.0.0/24", "02:42:0a:4d:00:02",
                                                      ("10.77.0.2", "fd77::2"), "10.0.0.21")
    v6 = ClusterNetwork(PoolRecord("local/fd77::/64", "local", "fd77::/64"), None, {"10.0.0.21": 1},
                        (Allocation("fd77::2", "dynamic", "10.0.0.21"),))
    (holder,) = Inventory(view, [v6]).holders(v6)
    assert (holder.kind, holder.host, holder.endpoint_id) == ("endpoint", "10.0.0.21", E1)
