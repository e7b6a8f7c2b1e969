"""The VXLAN input rules (pynetdrv.firewall.vxlan_rules): VXLAN accepted from
cluster members only.  tests/netns/test_netns_vxlan.py loads these lines into
a host's kernel and sends VXLAN from a member and from a stranger."""

from __future__ import annotations

import pytest

from pynetdrv.dataplane.vxlan_plan import VxlanInputError
from pynetdrv.firewall.render import restore_text
from pynetdrv.firewall.vxlan_rules import render_vxlan_input

MEMBERS = ["192.168.250.13", "fd00:250::12", "192.168.250.11", "192.168.250.13"]


def test_v4_members_accepted_sorted_once_then_drop() -> None:
    assert restore_text([render_vxlan_input(MEMBERS, 4789, "PYNETDRV", 4)], {}) == (
        "*filter\n"
        ":PYNETDRV-VXLAN-IN - [0:0]\n"
        "-A PYNETDRV-VXLAN-IN -s 192.168.250.11/32 -j ACCEPT\n"
        "-A PYNETDRV-VXLAN-IN -s 192.168.250.13/32 -j ACCEPT\n"
        "-A PYNETDRV-VXLAN-IN -j DROP\n"
        "COMMIT\n"
    )


def test_v6_members_in_their_own_family_and_the_jump_names_the_port() -> None:
    table = render_vxlan_input(MEMBERS, 4790, "PN-IT", 6)
    assert table.rules == ("-A PN-IT-VXLAN-IN -s fd00:250::12/128 -j ACCEPT", "-A PN-IT-VXLAN-IN -j DROP")
    (jump,) = table.jumps
    assert (jump.chain, jump.position) == ("INPUT", "first")
    assert jump.line == "-A INPUT -p udp -m udp --dport 4790 -j PN-IT-VXLAN-IN"


def test_no_members_drops_all_vxlan() -> None:
    assert render_vxlan_input([], 4789, "PYNETDRV", 4).rules == ("-A PYNETDRV-VXLAN-IN -j DROP",)


@pytest.mark.parametrize(("members", "port", "named"), [
    (["192.168.250.300"], 4789, "192.168.250.300"),
    (["0.0.0.0"], 4789, "0.0.0.0"),  # would match anything in iptables' eyes
    (["192.168.250.11"], 0, "port 0"),
])
def test_bad_members_or_port_refused_by_name(members: list[str], port: int, named: str) -> None:
    with pytest.raises(VxlanInputError, match=named):
        render_vxlan_input(members, port, "PYNETDRV", 4)
