"""Render a ``FirewallState`` into iptables rules: pure, so golden files pin
every rule, and written in ``iptables-save``'s own canonical form, so what the
kernel holds can be compared line by line with what it should hold.

Chains (``P`` is the instance prefix, e.g. ``PYNETDRV``), all our own; the
only change to a built-in chain is one jump rule each:

filter  P-FORWARD      <- FORWARD (right after Docker's DOCKER-USER jump, so
                          the administrator's DOCKER-USER rules come first)
nat     P-DNAT         <- PREROUTING and OUTPUT, for local destinations:
                          published ports
nat     P-POSTROUTING  <- POSTROUTING: outbound masquerade, hairpin and
                          loopback sources of published ports
raw     P-PREROUTING   <- PREROUTING: drops 127.0.0.0/8 arriving on a bridge
                          (the bridges have route_localnet=1 so 127.0.0.1
                          reaches published ports; see iptables.py)

P-FORWARD decides every packet into one of our bridges first (replies,
published ports, same-network traffic, then DROP: that is the isolation
between networks and from the outside), then packets out of them (accepted
unless the network is internal).  IPv6 gets the same FORWARD rules without
NAT or published ports: it is routed, as Docker's bridge does by default.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import netaddr

from .model import FirewallState, NetworkRules, PortRule

Family = int  # 4 or 6


@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain that jumps to one of ours."""

    table: str
    chain: str
    #: The rule without ``-A CHAIN``, as iptables-save prints it.
    spec: str
    #: "first": insert after the jump to DOCKER-USER if there is one, else at
    #: the top; "last": append.
    position: str = "last"

    @property
    def line(self) -> str:
        return f"-A {self.chain} {self.spec}"


@dataclass(frozen=True)
class TableRules:
    table: str
    #: Our chains in this table (declared even when empty).
    chains: tuple[str, ...]
    #: Their rules, ``-A CHAIN ...`` lines in iptables-save form.
    rules: tuple[str, ...]
    jumps: tuple[Jump, ...]


def chains(prefix: str) -> dict[Family, dict[str, tuple[str, ...]]]:
    """Every chain an instance may own, by family and table."""
    return {
        4: {"filter": (f"{prefix}-FORWARD",), "nat": (f"{prefix}-DNAT", f"{prefix}-POSTROUTING"),
            "raw": (f"{prefix}-PREROUTING",)},
        6: {"filter": (f"{prefix}-FORWARD",)},
    }


def jumps(prefix: str) -> dict[Family, dict[str, tuple[Jump, ...]]]:
    local = "-m addrtype --dst-type LOCAL"
    return {
        4: {
            "filter": (Jump("filter", "FORWARD", f"-j {prefix}-FORWARD", "first"),),
            "nat": (
                Jump("nat", "PREROUTING", f"{local} -j {prefix}-DNAT"),
                Jump("nat", "OUTPUT", f"{local} -j {prefix}-DNAT"),
                Jump("nat", "POSTROUTING", f"-j {prefix}-POSTROUTING"),
            ),
            "raw": (Jump("raw", "PREROUTING", f"-j {prefix}-PREROUTING"),),
        },
        6: {"filter": (Jump("filter", "FORWARD", f"-j {prefix}-FORWARD", "first"),)},
    }


def render(state: FirewallState, prefix: str, family: Family) -> list[TableRules]:
    """The tables of ``family`` with every rule ``state`` needs."""
    # Every network is in both families' FORWARD chain: a bridge without
    # subnets of a family is still closed to that family's forwarding.
    nets = list(state.networks)
    ports = [p for p in state.ports if family == 4]
    rules: dict[str, list[str]] = {
        "filter": _forward(nets, ports, prefix, family),
        "nat": _dnat(ports, prefix) + _postrouting(nets, prefix) if family == 4 else [],
        "raw": _raw(nets, prefix) if family == 4 else [],
    }
    out = []
    for table, names in chains(prefix)[family].items():
        out.append(TableRules(table, names, tuple(rules[table]), jumps(prefix)[family][table]))
    return out


def _subnets(net: NetworkRules, family: Family) -> list[str]:
    return [str(netaddr.IPNetwork(s).cidr) for s in net.subnets if netaddr.IPNetwork(s).version == family]


def _forward(nets: list[NetworkRules], ports: list[PortRule], prefix: str, family: Family) -> list[str]:
    chain = f"-A {prefix}-FORWARD"
    into: list[str] = []
    out_of: list[str] = []
    for net in nets:
        b = net.bridge
        if not net.internal:
            into.append(f"{chain} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
            for p in ports:
                if p.bridge == b:
                    into.append(
                        f"{chain} -d {p.container_ip}/32 -o {b} -p {p.proto} -m {p.proto} "
                        f"--dport {p.container_port} -m conntrack --ctstate DNAT -j ACCEPT"
                    )
        into.append(f"{chain} -i {b} -o {b} -j {'ACCEPT' if net.icc else 'DROP'}")
        into.append(f"{chain} -o {b} -j DROP")
        out_of.append(f"{chain} -i {b} -j {'DROP' if net.internal else 'ACCEPT'}")
    # Every packet into one of our bridges is decided by the first part, so
    # the second only sees packets leaving for a non-pynetdrv interface.
    return into + out_of


def _dnat(ports: list[PortRule], prefix: str) -> list[str]:
    lines = []
    for p in ports:
        dest = "" if p.host_ip == "0.0.0.0" else f"-d {p.host_ip}/32 "
        lines.append(
            f"-A {prefix}-DNAT {dest}-p {p.proto} -m {p.proto} --dport {p.host_port} "
            f"-j DNAT --to-destination {p.container_ip}:{p.container_port}"
        )
    return lines


def _postrouting(nets: list[NetworkRules], prefix: str) -> list[str]:
    chain = f"-A {prefix}-POSTROUTING"
    lines = []
    for net in nets:
        subnets = _subnets(net, 4)
        if net.internal or not subnets:
            continue
        b = net.bridge
        if net.masquerade:
            lines += [f"{chain} -s {s} ! -o {b} -j MASQUERADE" for s in subnets]
        # A published port reached from the host itself (127.0.0.1 or any of
        # its addresses) or from a container of the same network (hairpin):
        # the reply must come back through the host to be un-NATed.
        lines.append(f"{chain} -o {b} -m addrtype --src-type LOCAL -m conntrack --ctstate DNAT -j MASQUERADE")
        lines += [f"{chain} -s {s} -o {b} -m conntrack --ctstate DNAT -j MASQUERADE" for s in subnets]
    return lines


def _raw(nets: list[NetworkRules], prefix: str) -> list[str]:
    return [
        f"-A {prefix}-PREROUTING -d 127.0.0.0/8 -i {net.bridge} -j DROP"
        for net in nets
        if not net.internal and _subnets(net, 4)
    ]


def route_localnet_bridges(state: FirewallState) -> list[str]:
    """Bridges that need route_localnet=1 for 127.0.0.1 to reach their ports."""
    return [n.bridge for n in state.networks if not n.internal and _subnets(n, 4)]


def forwarding_needed(state: FirewallState, family: Family) -> bool:
    return any(not n.internal and _subnets(n, family) for n in state.networks)


def restore_text(tables: list[TableRules], missing_jumps: dict[str, list[tuple[Jump, int | None]]],
                 moved: Collection[str] = ()) -> str:
    """An ``iptables-restore --noflush`` batch that redefines our chains
    (declaring a chain flushes it) and adds the missing jumps; one COMMIT per
    table, so each table changes atomically.  ``missing_jumps`` maps a table
    to (jump, rule number to insert at, or None to append); a jump whose
    line is in ``moved`` is there already, out of place: it is deleted first
    (the rule number counts the chain without it)."""
    lines: list[str] = []
    for t in tables:
        lines.append(f"*{t.table}")
        lines += [f":{c} - [0:0]" for c in t.chains]
        lines += t.rules
        for jump, index in missing_jumps.get(t.table, []):
            if jump.line in moved:
                lines.append(f"-D {jump.chain} {jump.spec}")
            lines.append(f"-I {jump.chain} {index} {jump.spec}" if index else jump.line)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
