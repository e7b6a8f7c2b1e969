"""Firewall rules that let traffic between the ports of our bridges through.

Docker sets the iptables FORWARD policy to DROP and loads br_netfilter, so a
frame bridged between two containers on one of OUR bridges traverses the
FORWARD chain and is dropped unless something accepts it.  We keep our rules
in a chain of our own, ``PYNETDRV-FORWARD``, jumped to from FORWARD, with one
``-i BR -o BR -j ACCEPT`` rule per bridge, commented with the instance name
(``pynetdrv`` by default; see ``base.owner_alias``) so that two instances
sharing the chain each see and remove only their own rules.  We never touch
FORWARD's policy or any other rule.

This is the one place pynetdrv shells out: running ``iptables`` (like dockerd
does) keeps us on whichever backend, nft or legacy, the ``iptables``
alternative points to, so our rules live in the same tables as Docker's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Protocol

from .base import DEFAULT_INSTANCE, DataplaneError

log = logging.getLogger(__name__)

CHAIN = "PYNETDRV-FORWARD"
#: A hung iptables (e.g. waiting for the xtables lock forever) must not hang
#: the driver: Docker would time out its request anyway.
COMMAND_TIMEOUT = 60.0
#: Upper bound on duplicate rules deleted in one call; duplicates only appear
#: if something raced us, so a handful is plenty and the loop cannot spin.
MAX_DUPLICATES = 16


class Firewall(Protocol):
    """Idempotent firewall steps for one network namespace."""

    async def ensure_bridge(self, bridge: str) -> None:
        """Accept forwarded traffic between the ports of ``bridge``."""

    async def remove_bridge(self, bridge: str) -> None:
        """Remove ``bridge``'s rule; succeed when it is already gone."""

    async def owned_bridges(self) -> set[str]:
        """Bridges that have a rule in our chain (either family)."""

    async def remove_all(self) -> None:
        """Drop our rules, and our chain and the jump to it once no other
        instance has rules left in it (tests, uninstall)."""


def _bridge_rule(bridge: str, comment: str) -> list[str]:
    match = ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment]
    return [CHAIN, *match, "-j", "ACCEPT"]


def _jump_rule() -> list[str]:
    return ["FORWARD", "-j", CHAIN]


def _option(words: list[str], flag: str) -> str | None:
    if flag not in words[:-1]:
        return None
    return words[words.index(flag) + 1].strip('"')


def _parse_bridge(line: str, comment: str) -> str | None:
    """The bridge of an ``iptables -S`` line that is one of our bridge rules."""
    words = line.split()
    if words[:2] != ["-A", CHAIN] or _option(words, "--comment") != comment:
        return None
    in_if = _option(words, "-i")
    return in_if if in_if is not None and in_if == _option(words, "-o") else None


class IptablesFirewall:
    """``Firewall`` on iptables/ip6tables, optionally inside a named netns."""

    def __init__(self, netns: str | None = None, instance: str = DEFAULT_INSTANCE) -> None:
        self._netns = netns
        self._comment = instance
        # Check-then-insert sequences must not interleave with each other.
        self._lock = asyncio.Lock()

    async def ensure_bridge(self, bridge: str) -> None:
        async with self._lock:
            for tool in self._tools():
                await self._ensure_chain(tool)
                await self._ensure_rule(tool, _bridge_rule(bridge, self._comment), insert=False)
                # Jump last: FORWARD only points at a chain that is complete.
                await self._ensure_rule(tool, _jump_rule(), insert=True)

    async def remove_bridge(self, bridge: str) -> None:
        async with self._lock:
            for tool in self._tools():
                await self._delete_rule(tool, _bridge_rule(bridge, self._comment))

    async def owned_bridges(self) -> set[str]:
        async with self._lock:
            bridges: set[str] = set()
            for tool in self._tools():
                bridges |= self._bridges_in(await self._dump(tool))
            return bridges

    async def remove_all(self) -> None:
        async with self._lock:
            for tool in self._tools():
                dump = await self._dump(tool)
                if f"-N {CHAIN}" not in dump:
                    continue
                for bridge in self._bridges_in(dump):
                    await self._delete_rule(tool, _bridge_rule(bridge, self._comment))
                if not any(line.startswith(f"-A {CHAIN} ") for line in await self._dump(tool)):
                    # Empty: no other instance needs it any more.
                    await self._delete_rule(tool, _jump_rule())
                    await self._run(tool, "-X", CHAIN)

    def _bridges_in(self, dump: list[str]) -> set[str]:
        found = (_parse_bridge(line, self._comment) for line in dump)
        return {bridge for bridge in found if bridge is not None}

    # -- steps ------------------------------------------------------------

    async def _ensure_chain(self, tool: str) -> None:
        if not await self._has_chain(tool):
            log.debug("%s: creating chain %s", tool, CHAIN)
            await self._run(tool, "-N", CHAIN)

    async def _has_chain(self, tool: str) -> bool:
        # Listing the whole table never fails for a missing chain, unlike
        # ``-S CHAIN`` whose nft-backend error text is not worth parsing.
        return f"-N {CHAIN}" in await self._dump(tool)

    async def _dump(self, tool: str) -> list[str]:
        return (await self._run(tool, "-S")).splitlines()

    async def _ensure_rule(self, tool: str, rule: list[str], *, insert: bool) -> None:
        if await self._check(tool, rule):
            return
        chain, spec = rule[0], rule[1:]
        log.debug("%s: adding rule %s", tool, " ".join(rule))
        if insert:
            # Position 1: Docker's own FORWARD rules (and its DROP policy)
            # must not see our bridges' traffic first.
            await self._run(tool, "-I", chain, "1", *spec)
        else:
            await self._run(tool, "-A", chain, *spec)

    async def _delete_rule(self, tool: str, rule: list[str]) -> None:
        # Loop: a rule added twice by a racing process is removed completely.
        for _ in range(MAX_DUPLICATES):
            if not await self._check(tool, rule):
                return
            log.debug("%s: deleting rule %s", tool, " ".join(rule))
            await self._run(tool, "-D", *rule)

    async def _check(self, tool: str, rule: list[str]) -> bool:
        """``-C``: exit 0 = present, 1 = absent (rule or its chain missing);
        anything else (bad arguments, no permission, lock) is a real error."""
        code, _, err = await self._exec(tool, "-C", *rule)
        if code in (0, 1):
            return code == 0
        cmd = " ".join(self._argv(tool, ("-C", *rule)))
        raise DataplaneError(f"{cmd} failed (exit {code}): {err.strip()}")

    # -- process plumbing -------------------------------------------------

    def _tools(self) -> list[str]:
        if shutil.which("iptables") is None:
            raise DataplaneError("iptables not found: install the iptables package")
        # IPv6 is optional on the host; without ip6tables there is nothing
        # IPv6 to filter through FORWARD either.
        return ["iptables"] + (["ip6tables"] if shutil.which("ip6tables") else [])

    def _argv(self, tool: str, args: tuple[str, ...]) -> list[str]:
        argv = [tool, "-w", *args]
        if self._netns is None:
            return argv
        if shutil.which("nsenter") is None:
            raise DataplaneError("nsenter not found: install the util-linux package")
        path = f"/run/netns/{self._netns}"
        # nsenter exits 1 for a missing namespace, which ``-C`` would read as
        # "rule absent": check here so that mistake is an error, not a no-op.
        if not os.path.exists(path):
            raise DataplaneError(f"network namespace {self._netns} not found ({path})")
        return ["nsenter", f"--net={path}", *argv]

    async def _run(self, tool: str, *args: str) -> str:
        """Run a command that must succeed; returns its stdout."""
        code, out, err = await self._exec(tool, *args)
        if code != 0:
            cmd = " ".join(self._argv(tool, args))
            raise DataplaneError(f"{cmd} failed (exit {code}): {err.strip() or out.strip()}")
        return out

    async def _exec(self, tool: str, *args: str) -> tuple[int, str, str]:
        argv = self._argv(tool, args)
        log.debug("running %s", " ".join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as e:
            raise DataplaneError(f"{' '.join(argv)}: {e.strerror}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        except BaseException as e:
            # Timeout or cancellation: do not leave the child running.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if isinstance(e, TimeoutError):
                raise DataplaneError(f"{' '.join(argv)}: timed out") from e
            raise
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
