"""A short-lived etcd connection for the read-only commands (status, check): bounded by
``ETCD_WAIT_S`` as a whole, so an etcd that does not answer costs a few seconds, not a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pynetdrv.cluster.errors import EtcdConfigError, EtcdError, EtcdUnavailable
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.settings import ETCD_WAIT_S, ClusterSettings
from pynetdrv.store.etcd_keys import Keys

T = TypeVar("T")

PREFIX = b"/pynetdrv/v1/"


class EtcdAway(Exception):
    """etcd could not be read in time (the message names it); the caller shows the local view."""


async def read_cluster(settings: ClusterSettings, read: Callable[[EtcdClient, Keys], Awaitable[T]],
                       wait: float = ETCD_WAIT_S) -> T:
    try:
        client = EtcdClient.from_url(settings.etcd, cacert=settings.etcd_cacert, cert=settings.etcd_cert,
                                     key=settings.etcd_key, timeout=wait)
    except EtcdConfigError as e:
        raise EtcdAway(str(e)) from None
    away = f"etcd {settings.etcd} did not answer within {wait:g} s"
    try:
        # The client's own deadline (`wait`) normally ends a call first, with gRPC's reason; this
        # outer bound, a second later, only catches a read of several calls that overruns.
        return await asyncio.wait_for(read(client, Keys(PREFIX)), wait + 1.0)
    except TimeoutError:
        raise EtcdAway(away) from None
    except EtcdUnavailable as e:
        raise EtcdAway(f"{away} ({e.what}: {e.detail})") from None
    except EtcdError as e:
        raise EtcdAway(str(e)) from None
    finally:
        await client.close()
