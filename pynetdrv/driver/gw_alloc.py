"""``/NetworkDriver.GwAllocCheck`` (Docker 28+, sent when GetCapabilities says
``GwAllocChecker``): before ``network create`` allocates anything, Docker asks
whether the network needs gateway addresses.

pynetdrv always does: the gateway address is the bridge's own address, the
containers' default route and the host's way to reach them (on ``--internal``
networks too, where only the default route is left out), just as Docker's
bridge keeps it unless ``gateway_mode`` is ``isolated`` or ``inhibit_ipv4``
is set with ``--internal`` (options pynetdrv does not have).  So both answers
are False.

What the call adds for users is an earlier, cleaner refusal: the options are
checked here with the same parser CreateNetwork uses, so an invalid ``-o``
value fails ``network create`` before Docker has asked the IPAM for a pool.
Stateless: nothing is stored, so Docker may call it any number of times."""

from __future__ import annotations

from pynetdrv.api.network_models import GwAllocCheckRequest, GwAllocCheckResponse
from pynetdrv.driver.options import parse_network_options


async def gw_alloc_check(req: GwAllocCheckRequest) -> GwAllocCheckResponse:
    parse_network_options(req.Options or {})  # InvalidParameter names the bad option
    return GwAllocCheckResponse(SkipIPv4=False, SkipIPv6=False)
