"""Run a blocking function inside a named network namespace.

Some kernel state is reached through the calling thread's network namespace
rather than a netlink socket: /proc/sys/net (sysctls) and new sockets (port
reservations).  ``setns`` switches only the calling thread, so each call gets
a fresh thread that never runs anything else; without a namespace the
function simply runs in the default executor.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


def _setns(name: str) -> None:
    path = os.path.join(NETNS_DIR, name)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    if netns is None:
        return await asyncio.to_thread(fn)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: object) -> None:
        if done.done():
            return
        if ok:
            done.set_result(value)  # type: ignore[arg-type]
        else:
            done.set_exception(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            _setns(netns)
            result: object = fn()
            ok = True
        except BaseException as e:
            result, ok = e, False
        loop.call_soon_threadsafe(settle, ok, result)

    threading.Thread(target=run, name=f"netns-{netns}", daemon=True).start()
    return await done
