"""A short-lived etcd connection for the read-only commands (status, check): bounded by
``ETCD_WAIT_S`` as a whole, so an etcd that does not answer costs a few seconds, not a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pynetdrv.cluster.errors import EtcdConfigError, EtcdError
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
    try:
        return await asyncio.wait_for(read(client, Keys(PREFIX)), wait)
    except TimeoutError:
        raise EtcdAway(f"etcd {settings.etcd} did not answer within {wait:.0f} s") from None
    except EtcdError as e:
        raise EtcdAway(str(e)) from None
    finally:
        await client.close()
