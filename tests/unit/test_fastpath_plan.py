"""What the fast path (pynetdrv.dataplane.fastpath) puts where: the u32 keys for an address, and the
redirects per device.  The kernel side is tests/netns/test_netns_fastpath.py."""

from __future__ import annotations

from pynetdrv.dataplane.fastpath import Redirect, u32_keys, wanted_redirects
from pynetdrv.dataplane.vxlan_plan import LocalPort


def test_keys_match_the_version_then_the_destination_address() -> None:
    assert u32_keys("10.77.0.5") == ["0x40000000/0xf0000000+0", "0x0a4d0005/0xffffffff+16"]
    assert u32_keys("fd77::5") == ["0x60000000/0xf0000000+0", "0xfd770000/0xffffffff+24", "0x00000000/0xffffffff+28",
                                   "0x00000000/0xffffffff+32", "0x00000005/0xffffffff+36"]


def test_the_device_sends_to_the_local_veths_and_each_veth_to_the_device() -> None:
    ports = {7: LocalPort("pnve-a", ("10.77.0.2", "fd77::2")), 8: LocalPort("pnve-b", ("10.77.0.3",))}
    got = wanted_redirects(5, ports, ["10.77.0.9", "fd77::9", "10.77.0.9"])
    assert got[5] == {Redirect("10.77.0.2", 7), Redirect("fd77::2", 7), Redirect("10.77.0.3", 8)}
    assert got[7] == got[8] == {Redirect("10.77.0.9", 5), Redirect("fd77::9", 5)}
    assert set(got) == {5, 7, 8}


def test_devices_with_nothing_to_redirect_are_left_out() -> None:
    assert wanted_redirects(5, {7: LocalPort("pnve-a", ("10.77.0.2",))}, []) == {5: {Redirect("10.77.0.2", 7)}}
    assert wanted_redirects(5, {}, ["10.77.0.9"]) == {}
