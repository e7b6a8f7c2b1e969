"""``pynetdrv cluster forget-host ADDRESS``: declare a lost host gone for good (registry.forget).

Prints what will be freed, asks (unless ``--yes``), frees it; exit 0 done or nothing to do, 1 refused
(the host is up, etcd unreachable, not confirmed), with one line on stderr saying why."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_cluster_parser(sub: Any) -> None:
    c = sub.add_parser("cluster", help="cluster mode operations on the shared etcd (docs/multihost.md)")
    csub = c.add_subparsers(dest="cluster_command", required=True)
    f = csub.add_parser("forget-host", help="declare a lost host gone for good: free its addresses, pool uses, "
                        "VNIs and registry records, and refuse its return with old records (tombstone)")
    f.add_argument("address", metavar="ADDRESS", help="the host's --advertise-address")
    f.add_argument("--store", required=True, metavar="etcd://HOST:PORT[,HOST:PORT...]", help="the cluster's etcd")
    f.add_argument("--etcd-cacert", type=Path, metavar="FILE")
    f.add_argument("--etcd-cert", type=Path, metavar="FILE")
    f.add_argument("--etcd-key", type=Path, metavar="FILE")
    f.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    f.add_argument("--etcd-prefix", default="/pynetdrv/v1/", help=argparse.SUPPRESS)  # tests: a prefix of their own


def cluster_command(args: argparse.Namespace, confirm: Callable[[str], bool] | None = None) -> int:
    from pynetdrv.errors import PynetdrvError

    try:
        ipaddress.ip_address(args.address)
        if not args.store.startswith("etcd://"):
            raise ValueError(f"--store {args.store}: forget-host needs the cluster's etcd (etcd://HOST:PORT)")
        return asyncio.run(_forget(args, confirm or _ask))
    except (ValueError, PynetdrvError) as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 1


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"{question} [y/N] (stdin is not a terminal: give --yes)", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def _forget(args: argparse.Namespace, confirm: Callable[[str], bool]) -> int:
    from pynetdrv.cluster.etcd import EtcdClient
    from pynetdrv.registry.forget import HostAlive, forget_host, plan_forget
    from pynetdrv.store.etcd_keys import Keys

    def opt(path: Path | None) -> str | None:
        return None if path is None else str(path)

    async with EtcdClient.from_url(args.store, cacert=opt(args.etcd_cacert), cert=opt(args.etcd_cert),
                                   key=opt(args.etcd_key)) as client:
        keys = Keys(args.etcd_prefix.encode())
        plan = await plan_forget(client, keys, args.address)
        if plan.alive:
            raise HostAlive(f"host {args.address} is up (its registry lease is alive): only a lost host can be "
                            "forgotten; stop it first and wait for its lease to expire (10 s)")
        if plan.nothing_to_do:
            print(f"host {args.address}: nothing to do (already forgotten)")
            return 0
        print(f"forgetting host {args.address}:")
        for line in plan.lines():
            print(f"  {line}")
        if not args.yes and not confirm(f"Forget host {args.address} for good?"):
            print("pynetdrv: not confirmed; nothing changed", file=sys.stderr)
            return 1
        await forget_host(client, keys, args.address)
        print(f"host {args.address} forgotten")
        return 0
