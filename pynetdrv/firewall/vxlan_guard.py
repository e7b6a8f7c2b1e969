"""Cluster mode: UDP to the VXLAN port accepted only from the cluster's members (their VTEP
addresses, from the registry), the rest dropped; rules rendered by ``vxlan_rules``, applied through
the iptables firewall.  Applied again whenever the member list changes, and by ``keep`` on the
firewall keeper's rhythm (an ``iptables -F`` is repaired).  Stays in place when pynetdrv stops:
the containers' VXLAN traffic goes on, and stays guarded."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pynetdrv.firewall.iptables import IptablesFirewall
from pynetdrv.firewall.render import Family
from pynetdrv.firewall.vxlan_rules import render_vxlan_input

log = logging.getLogger(__name__)


class VxlanGuard:
    def __init__(self, firewall: IptablesFirewall, port: int) -> None:
        self._fw, self._port = firewall, port
        self.applied: tuple[str, ...] | None = None

    async def apply(self, members: Iterable[str], force: bool = False) -> None:
        wanted = tuple(sorted(set(members)))
        if wanted == self.applied and not force:
            return
        for family in (4, 6):
            fam: Family = 4 if family == 4 else 6
            if fam == 6 and not any(":" in m for m in wanted):
                continue  # no IPv6 member: the IPv6 table is not ours to touch
            await self._fw.apply_tables(fam, [render_vxlan_input(wanted, self._port, self._fw.prefix, fam)])
        if wanted != self.applied:
            log.info("vxlan port %d accepted from %s only", self._port, ", ".join(wanted) or "nobody")
        self.applied = wanted
