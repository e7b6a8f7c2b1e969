"""Startup reconcile: make the kernel match the store before serving.

- A stored network whose bridge is missing (host reboot) is recreated through
  the same idempotent ensure_bridge the create path uses.
- A link carrying a pynetdrv alias that the store does not know (a crash
  between a kernel step and its store write, or a network deleted while we
  were down) is removed.  Links without our alias are never touched.
- A stored endpoint whose veth exists is re-ensured if the link dump shows
  it differs from its spec (a recreated bridge has lost its ports; hairpin,
  MTU or up lost); a healthy one costs nothing beyond the one dump.  One
  whose veth is gone: if a container had joined, the container's namespace
  died and took the pair with it, so the endpoint is dead and is forgotten; if not joined yet, the pair is recreated.
- Published ports are held again and the firewall is rebuilt from the store
  (a reboot or a flushed ruleset loses nothing); a port some process took
  while we were down is dropped from its endpoint and reported.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from pynetdrv.dataplane.base import Dataplane, DataplaneError, OwnedLink, veth_in_shape
from pynetdrv.driver.external import External
from pynetdrv.driver.service import bridge_spec, veth_spec
from pynetdrv.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    bridges_ensured: list[str] = field(default_factory=list)
    links_removed: list[str] = field(default_factory=list)
    endpoints_forgotten: list[str] = field(default_factory=list)
    veths_recreated: list[str] = field(default_factory=list)
    #: Present veths re-ensured because the dump showed them differing from their spec.
    veths_repaired: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def reconcile(store: Store, dataplane: Dataplane, external: External | None = None) -> ReconcileReport:
    """``external``: also restore published ports and rebuild the firewall."""
    report = ReconcileReport()
    networks = {n.network_id: n for n in await store.list_networks()}
    endpoints = {e.endpoint_id: e for e in await store.list_endpoints()}
    for net in networks.values():
        await _step(report, f"ensure bridge {net.bridge}", dataplane.ensure_bridge(bridge_spec(net)))
        report.bridges_ensured.append(net.bridge)
    present: dict[str, OwnedLink] = {}
    for link in await dataplane.owned_links():
        present[link.name] = link
        if link.kind == "bridge" and link.object_id not in networks:
            await _step(report, f"remove bridge {link.name}", dataplane.remove_bridge(link.name, link.object_id))
            report.links_removed.append(link.name)
        elif link.kind == "veth" and link.object_id not in endpoints:
            await _step(report, f"remove veth {link.name}", dataplane.remove_veth(link.name, link.object_id))
            report.links_removed.append(link.name)
    for ep in endpoints.values():
        if ep.network_id not in networks:
            continue
        if ep.host_ifname in present:
            # Re-attach: a bridge recreated above has lost its ports.
            spec = veth_spec(networks[ep.network_id], ep)
            if veth_in_shape(present[ep.host_ifname], spec):
                continue
            await _step(report, f"ensure veth {ep.host_ifname}", dataplane.ensure_veth(spec))
            report.veths_repaired.append(ep.host_ifname)
        elif ep.sandbox_key:
            await store.delete_endpoint(ep.endpoint_id)
            report.endpoints_forgotten.append(ep.endpoint_id)
        else:
            spec = veth_spec(networks[ep.network_id], ep)
            await _step(report, f"recreate veth {ep.host_ifname}", dataplane.ensure_veth(spec))
            report.veths_recreated.append(ep.host_ifname)
    if external is not None:
        try:
            report.errors += await external.restore()
        except DataplaneError as e:
            log.error("reconcile: firewall rebuild failed: %s", e)
            report.errors.append(f"firewall: {e}")
    log.info(
        "reconcile: %d bridge(s) ensured, %d stale link(s) removed, %d veth(s) repaired, %d recreated, "
        "%d dead endpoint(s) forgotten, %d error(s)",
        len(report.bridges_ensured), len(report.links_removed), len(report.veths_repaired),
        len(report.veths_recreated), len(report.endpoints_forgotten), len(report.errors),
    )
    return report


async def _step(report: ReconcileReport, what: str, step: Awaitable[None]) -> None:
    """One failure must not stop the daemon from serving the other networks."""
    try:
        await step
    except DataplaneError as e:
        log.error("reconcile: %s failed: %s", what, e)
        report.errors.append(f"{what}: {e}")
