"""Render the rules that accept VXLAN (UDP to the VXLAN port) only from the
cluster's members: pure, in ``iptables-save`` form like ``render``.

filter  P-VXLAN-IN  <- INPUT (first): ``-p udp --dport PORT`` jumps here;
                       a member's VTEP address is accepted, anything else
                       dropped.

VXLAN carries no authentication: a datagram from anywhere on the underlay
with a known VNI would be put on a network's bridge.  The member list comes
from the registry (the VTEP addresses of the cluster's hosts, this one
included); IPv4 and IPv6 members go to their own family's table.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..dataplane.vxlan_plan import check_port, norm_ip
from .render import Family, Jump, TableRules


def vxlan_chain(prefix: str) -> str:
    return f"{prefix}-VXLAN-IN"


def vxlan_jump(prefix: str, port: int) -> Jump:
    return Jump("filter", "INPUT", f"-p udp -m udp --dport {check_port(port)} -j {vxlan_chain(prefix)}", "first")


def render_vxlan_input(members: Iterable[str], port: int, prefix: str, family: Family) -> TableRules:
    """The filter table's VXLAN chain for ``family``: one ACCEPT per member
    address of that family (sorted, no duplicates), then DROP.  Raises
    VxlanInputError naming a member that is not a unicast IP address."""
    chain = vxlan_chain(prefix)
    addrs = {norm_ip(m, "cluster member VTEP") for m in members}
    host_len = 32 if family == 4 else 128
    mine = sorted((a for a in addrs if a.version == family), key=lambda a: int(a))
    rules = [f"-A {chain} -s {a}/{host_len} -j ACCEPT" for a in mine]
    rules.append(f"-A {chain} -j DROP")
    return TableRules("filter", (chain,), tuple(rules), (vxlan_jump(prefix, port),))
