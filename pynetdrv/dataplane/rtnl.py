"""How the dataplane's requests reach the kernel: rtnetlink sockets.

- The event loop's ``AsyncIPRoute``, opened lazily, in the host namespace or
  in a named one (``/run/netns/NAME``; pyroute2 opens the socket inside it,
  so this process never calls setns itself).
- A synchronous ``IPRoute`` on one worker thread, for requests the kernel
  holds the sender on (``off_loop``).
- ``batch``: several requests in one send, every reply read.

Kernel errors are matched on ``NetlinkError.code`` (errno), never on text,
and surface as ``DataplaneError("<step> <object>: <strerror>")``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nlsocket import NetlinkRequest
from pyroute2.netlink.rtnl import RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from .base import DataplaneError

log = logging.getLogger(__name__)

#: pyroute2's parsed netlink messages (ifinfmsg, ifaddrmsg, rtmsg) are untyped.
Msg = Any


def kernel_error(step: str, name: str, exc: NetlinkError) -> DataplaneError:
    return DataplaneError(f"{step} {name}: {os.strerror(exc.code)}")


@contextmanager
def kernel_step(step: str, name: str) -> Iterator[None]:
    """Name the step and the object in any kernel error raised inside."""
    try:
        yield
    except NetlinkError as exc:
        raise kernel_error(step, name, exc) from exc


def setlink(ifname: str, *attrs: list[Any]) -> Msg:
    """An RTM_NEWLINK changing the existing link ``ifname`` (index 0: the
    kernel finds it by IFLA_IFNAME)."""
    msg = ifinfmsg()
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
    msg["attrs"] = [["IFLA_IFNAME", ifname], *attrs]
    return msg


class Rtnl:
    def __init__(
        self,
        netns: str | None = None,
        socket_factory: Callable[..., AsyncIPRoute] = AsyncIPRoute,
        slow_socket_factory: Callable[..., IPRoute] = IPRoute,
    ) -> None:
        """``socket_factory``: opens the event loop's socket;
        ``slow_socket_factory`` the worker thread's synchronous one.  Tests
        and the measurement script pass subclasses that count sends."""
        self._netns = netns
        self._socket_factory = socket_factory
        self._slow_socket_factory = slow_socket_factory
        self._ipr_obj: AsyncIPRoute | None = None
        self._ipr_lock = asyncio.Lock()
        self._slow: ThreadPoolExecutor | None = None
        self._slow_ipr: IPRoute | None = None

    async def socket(self) -> AsyncIPRoute:
        # The lock keeps concurrent first calls from opening two sockets
        # (with a netns, opening one forks a helper process).
        async with self._ipr_lock:
            if self._ipr_obj is None:
                log.debug("opening rtnetlink socket (netns=%s)", self._netns)
                kwargs = {"netns": self._netns} if self._netns else {}
                self._ipr_obj = self._socket_factory(**kwargs)
            return self._ipr_obj

    async def close(self) -> None:
        async with self._ipr_lock:
            if self._ipr_obj is not None:
                self._ipr_obj.close()
                self._ipr_obj = None
        if self._slow is not None:
            await asyncio.get_running_loop().run_in_executor(self._slow, self._close_slow_socket)
            self._slow.shutdown(wait=True)
            self._slow = None

    async def off_loop(self, request: Callable[[IPRoute], Any]) -> Any:
        """Run ``request`` on the worker thread's own synchronous socket.

        The kernel handles a netlink request inside the sender's sendmsg(),
        and deleting a link waits there for an RCU grace period: 13-21 ms
        here, during which an event loop that sent it would serve nothing
        (measured: not one tick of a 0.5 ms timer ran).  Creating a veth pair
        holds the sender ~1 ms (two devices registered).  On the worker
        thread the loop keeps answering (EndpointOperInfo, other endpoints)
        while the kernel works; the hand-off costs ~0.2 ms of wall time, no
        loop time."""
        if self._slow is None:
            self._slow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pynetdrv-netlink")
        return await asyncio.get_running_loop().run_in_executor(self._slow, self._in_slow_thread, request)

    def _in_slow_thread(self, request: Callable[[IPRoute], Any]) -> Any:
        if self._slow_ipr is None:
            self._slow_ipr = self._slow_socket_factory(**({"netns": self._netns} if self._netns else {}))
        return request(self._slow_ipr)

    def _close_slow_socket(self) -> None:
        if self._slow_ipr is not None:
            self._slow_ipr.close()
            self._slow_ipr = None

    async def batch(self, requests: list[tuple[str, str, Msg]]) -> None:
        """Send (step, object, message) requests in one send and read every
        reply; the first failure is raised, named by its step and object.
        (pyroute2's nlm_request_batch stops reading at the first error.)"""
        ipr = await self.socket()
        pending = [NetlinkRequest(ipr, msg) for _, _, msg in requests]
        failure: DataplaneError | None = None
        try:
            data = b""
            for request in pending:
                await request.prepare()
                data += request.msg.data
            log.debug("batch: %s", [(step, name) for step, name, _ in requests])
            try:
                ipr.send(data)
            except NetlinkError as exc:
                raise kernel_error(requests[0][0], requests[0][1], exc) from exc
            while pending:
                request = pending.pop(0)
                step, name, _ = requests[len(requests) - len(pending) - 1]
                try:
                    async for _reply in request.response():  # frees the request
                        pass
                except NetlinkError as exc:
                    failure = failure or kernel_error(step, name, exc)
        finally:
            for request in pending:  # not sent, or cancelled before its reply
                request.cleanup()
        if failure is not None:
            raise failure
