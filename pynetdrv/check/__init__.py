"""``pynetdrv check``: compare the state file with the kernel and with Docker.

The comparison is a list of checker functions (``CHECKERS``), each taking a
``CheckContext`` and returning ``Finding``s.  Sections:

- ``STATE_CHECKERS``: the state against itself (``state_checks``);
- ``KERNEL_CHECKERS``: the kernel's links against the state (``kernel_checks``).
  ``check_firewall`` compares this instance's iptables rules with the render
  of the state (the daemon's own ``Firewall.drift``);
- ``CLUSTER_CHECKERS``: cluster mode, this host's VXLAN devices against the
  registry (``cluster_checks``), skipped when etcd cannot be read;
- ``DOCKER_CHECKERS``: Docker's view against the state (``docker_checks``),
  skipped when Docker cannot be reached.
"""

from __future__ import annotations

from pynetdrv.check.cluster_checks import check_cluster
from pynetdrv.check.context import CheckContext, Checker
from pynetdrv.check.docker_checks import check_docker_endpoints, check_docker_networks
from pynetdrv.check.kernel_checks import check_bridges, check_firewall, check_unknown_links, check_veths
from pynetdrv.check.model import Finding
from pynetdrv.check.state_checks import check_allocations, check_duplicates, check_records

STATE_CHECKERS: list[Checker] = [check_records, check_duplicates, check_allocations]
KERNEL_CHECKERS: list[Checker] = [check_bridges, check_veths, check_unknown_links, check_firewall]
CLUSTER_CHECKERS: list[Checker] = [check_cluster]
DOCKER_CHECKERS: list[Checker] = [check_docker_networks, check_docker_endpoints]


def all_checkers() -> list[Checker]:
    return [*STATE_CHECKERS, *KERNEL_CHECKERS, *CLUSTER_CHECKERS, *DOCKER_CHECKERS]


async def run_checks(ctx: CheckContext, checkers: list[Checker] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for checker in all_checkers() if checkers is None else checkers:
        findings += await checker(ctx)
    return findings


__all__ = [
    "CLUSTER_CHECKERS",
    "DOCKER_CHECKERS",
    "KERNEL_CHECKERS",
    "STATE_CHECKERS",
    "CheckContext",
    "Checker",
    "Finding",
    "all_checkers",
    "run_checks",
]
