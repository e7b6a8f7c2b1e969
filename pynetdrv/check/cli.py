"""``pynetdrv check [--repair]`` for the command line: exit 0 when all agree,
1 when something disagrees, 2 when the check could not run."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pynetdrv.check.command import CheckOptions, RepairRefused, check, render, repair, state_error
from pynetdrv.config import Config
from pynetdrv.dataplane.base import Dataplane
from pynetdrv.errors import StateFileError


def check_command(args: argparse.Namespace) -> int:
    instance = Config(socket=args.socket).instance
    from pynetdrv.cluster.settings import resolve_settings

    try:
        cluster = resolve_settings(args.state, args.store, args.etcd_cacert, args.etcd_cert, args.etcd_key)
    except ValueError as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 2
    from pynetdrv.firewall.iptables import IptablesFirewall

    opts = CheckOptions(
        state=args.state,
        instance=instance,
        docker_socket=None if args.no_docker else args.docker_socket,
        firewall=None if args.no_firewall else IptablesFirewall(instance=instance),
        driver_names=tuple(getattr(args, "driver_names", ())),
        cluster=cluster,
    )
    try:
        if args.repair:
            return _repair(opts)
        result = asyncio.run(check(opts))
    except (FileNotFoundError, StateFileError) as e:
        print(state_error(args.state, e), file=sys.stderr)
        return 2
    print("\n".join(render(result)))
    return 0 if result.clean else 1


def _repair(opts: CheckOptions) -> int:
    def dataplane() -> Dataplane:
        # The daemon's own dataplane, so repair does exactly what its
        # start-up reconcile would (the firewall comes with opts).
        from pynetdrv.dataplane.netlink import NetlinkDataplane

        return NetlinkDataplane(instance=opts.instance)

    try:
        before, done, after = asyncio.run(repair(opts, dataplane))
    except RepairRefused as e:
        print(f"pynetdrv check --repair: {e}. Repair only runs while the daemon is stopped "
              "(restarting the daemon also repairs: its start-up reconcile does the same)", file=sys.stderr)
        return 2
    if not done:
        print("\n".join(render(before)))
        print("pynetdrv check --repair: nothing repairable, nothing changed")
        return 0 if before.clean else 1
    print("before:")
    print("\n".join(f"  {line}" for line in render(before)))
    print("\n".join(f"repair: {line}" for line in done))
    print("after:")
    print("\n".join(render(after)))
    return 0 if after.clean else 1
