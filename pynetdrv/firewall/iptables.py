"""The Firewall on iptables/ip6tables (either backend, nft or legacy: we run
whatever the ``iptables`` alternative points to, as dockerd does, so our
rules live in the same tables as Docker's).

Each apply reads the tables once (``iptables-save``), then sends one
``iptables-restore --noflush -w`` batch per family that redeclares our chains
(which flushes them) with the full rendered ruleset and adds any missing
jump; each table commits atomically, so no packet ever sees half a change.
Built-in chains, their policies and other programs' rules are never touched
beyond our one jump rule each.  Argument lists only, never a shell.

Host settings that go with the rules, as Docker's bridge sets them:
net.ipv4.ip_forward and net.ipv6.conf.all.forwarding (when a network needs
forwarding), route_localnet on our bridges (127.0.0.1 to published ports;
the raw rule drops loopback destinations arriving on them), and br_netfilter
with bridge-nf-call-ip(6)tables when a network has enable_icc=false.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from dataclasses import dataclass, field

from pynetdrv.dataplane.sysctl import sysctl_exists, write_sysctls

from .base import FirewallError
from .model import FirewallState, chain_prefix
from .render import (
    Family,
    Jump,
    TableRules,
    chains,
    forwarding_needed,
    jumps,
    render,
    restore_text,
    route_localnet_bridges,
)

log = logging.getLogger(__name__)

#: A hung iptables (e.g. waiting for the xtables lock forever) must not hang
#: the driver: Docker would time out its request anyway.
COMMAND_TIMEOUT = 60.0
#: Backends: None = whatever the ``iptables`` alternative points to (as dockerd).
VARIANTS = (None, "nft", "legacy")
BR_NETFILTER = "net/bridge/bridge-nf-call-iptables"


@dataclass
class SavedTable:
    chains: set[str] = field(default_factory=set)
    rules: list[str] = field(default_factory=list)

    def chain_rules(self, chain: str) -> list[str]:
        return [r for r in self.rules if r.startswith(f"-A {chain} ")]


def parse_save(text: str) -> dict[str, SavedTable]:
    tables: dict[str, SavedTable] = {}
    current: SavedTable | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), SavedTable())
        elif current is None or line.startswith("#"):
            continue
        elif line.startswith(":"):
            current.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            current.rules.append(line.strip())
    return tables


def jump_index(saved: SavedTable, jump: Jump) -> int | None:
    """Where a missing jump goes: "first" jumps right after the jump to
    DOCKER-USER (so an administrator's DOCKER-USER rules still see our
    traffic first), else at the top; others are appended (None)."""
    if jump.position != "first":
        return None
    rules = [r for r in saved.chain_rules(jump.chain) if r != jump.line]
    for i, rule in enumerate(rules):
        if rule == f"-A {jump.chain} -j DOCKER-USER":
            return i + 2
    return 1


#: A rule of Docker's own in FORWARD: a jump to one of its chains
#: (DOCKER-FORWARD on 28, DOCKER-ISOLATION-STAGE-1, DOCKER, DOCKER-CT, ...;
#: DOCKER-USER is the administrator's) or a rule naming one of its bridges.
_DOCKERS = re.compile(r"-j DOCKER(?!-USER\b)[\w-]*|-[io] (docker0|docker_gwbridge|br-[0-9a-f]{12})\b")


def jump_misplaced(saved: SavedTable, jump: Jump) -> bool:
    """A "first" jump that Docker's rules have come to precede.  Docker 28
    deletes and re-inserts its DOCKER-FORWARD jump at the top of FORWARD at
    every start (iptabler.go, EnsureJumpRule), and DOCKER-FORWARD accepts what
    leaves Docker's bridges for any other interface (``-i docker0 ! -o
    docker0 -j ACCEPT``): ahead of our chain, that lets containers of Docker's
    bridges into pynetdrv's networks.  An administrator's own rules above ours
    are left where they are."""
    rules = saved.chain_rules(jump.chain)
    if jump.position != "first" or jump.line not in rules:
        return False
    return any(_DOCKERS.search(rule) for rule in rules[:rules.index(jump.line)])


class IptablesFirewall:
    """``Firewall`` on iptables, optionally inside a named netns."""

    def __init__(self, netns: str | None = None, instance: str = "pynetdrv", variant: str | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"iptables variant {variant!r} is not one of {VARIANTS}")
        self._netns = netns
        self._prefix = chain_prefix(instance)
        self._variant = variant
        self._lock = asyncio.Lock()

    def _tool(self, family: Family, action: str) -> str:
        base = "iptables" if family == 4 else "ip6tables"
        return f"{base}-{self._variant}-{action}" if self._variant else f"{base}-{action}"

    @property
    def prefix(self) -> str:
        return self._prefix

    async def apply(self, state: FirewallState) -> None:
        async with self._lock:
            self._argv(())  # a missing namespace is named before any step
            if state.empty:
                await self._remove_all()
                return
            if any(not n.icc for n in state.networks):
                await self._ensure_br_netfilter()
            for family in self._families():
                saved = parse_save(await self._run(self._tool(family, "save")))
                tables = render(state, self._prefix, family)
                missing = {t.table: _missing_jumps(t, saved.get(t.table, SavedTable())) for t in tables}
                moved = {j.line for t in tables for j in t.jumps if jump_misplaced(saved.get(t.table, SavedTable()), j)}
                await self._run(self._tool(family, "restore"), "-w", "--noflush",
                                stdin=restore_text(tables, missing, moved))
            await self._host_settings(state)

    async def remove_all(self) -> None:
        async with self._lock:
            await self._remove_all()

    async def apply_tables(self, family: Family, tables: list[TableRules]) -> None:
        """Make these chains of ours exactly ``tables`` (and their jumps present and in place), in one
        ``restore --noflush`` batch; other chains, ours included, are left alone.  For rule sets
        outside ``FirewallState`` (the VXLAN guard: firewall.vxlan_guard)."""
        async with self._lock:
            saved = parse_save(await self._run(self._tool(family, "save")))
            missing = {t.table: _missing_jumps(t, saved.get(t.table, SavedTable())) for t in tables}
            moved = {j.line for t in tables for j in t.jumps if jump_misplaced(saved.get(t.table, SavedTable()), j)}
            await self._run(self._tool(family, "restore"), "-w", "--noflush",
                            stdin=restore_text(tables, missing, moved))

    async def drift(self, state: FirewallState) -> list[str]:
        async with self._lock:
            problems: list[str] = []
            for family in self._families():
                tool = "iptables" if family == 4 else "ip6tables"
                saved = parse_save(await self._run(self._tool(family, "save")))
                expected = [] if state.empty else render(state, self._prefix, family)
                for t in expected:
                    have = saved.get(t.table, SavedTable())
                    for jump in t.jumps:
                        if jump.line not in have.rules:
                            problems.append(f"{tool} -t {t.table}: jump missing: {jump.line}")
                        elif jump_misplaced(have, jump):
                            problems.append(f"{tool} -t {t.table}: jump after Docker's rules: {jump.line}")
                    for chain in t.chains:
                        want = [r for r in t.rules if r.startswith(f"-A {chain} ")]
                        got = have.chain_rules(chain)
                        if chain not in have.chains:
                            problems.append(f"{tool} -t {t.table}: chain {chain} missing")
                        lost = [f"{tool} -t {t.table}: rule missing: {r}" for r in want if r not in got]
                        extra = [f"{tool} -t {t.table}: unexpected rule: {r}" for r in got if r not in want]
                        if not lost and not extra and want != got:
                            lost.append(f"{tool} -t {t.table}: chain {chain} rules out of order")
                        problems += lost + extra
                if state.empty:
                    for table, names in chains(self._prefix)[family].items():
                        left = [c for c in names if c in saved.get(table, SavedTable()).chains]
                        problems += [f"{tool} -t {table}: chain {c} left with no network" for c in left]
            return problems

    # -- steps ------------------------------------------------------------

    async def _remove_all(self) -> None:
        for family in self._families():
            saved = parse_save(await self._run(self._tool(family, "save")))
            lines: list[str] = []
            for table, names in chains(self._prefix)[family].items():
                have = saved.get(table, SavedTable())
                ours = [c for c in names if c in have.chains]
                dels = [
                    f"-D {j.chain} {j.spec}"
                    for j in jumps(self._prefix)[family][table]
                    for r in have.rules
                    if r == j.line
                ]
                if not ours and not dels:
                    continue
                lines += [f"*{table}", *(f":{c} - [0:0]" for c in ours), *dels, *(f"-X {c}" for c in ours), "COMMIT"]
            if lines:
                await self._run(self._tool(family, "restore"), "-w", "--noflush", stdin="\n".join(lines) + "\n")
                log.info("removed %s firewall chains of %s", "ip6tables" if family == 6 else "iptables", self._prefix)

    async def _host_settings(self, state: FirewallState) -> None:
        # A bridge that is missing (its network failed to come back) gets
        # its setting when reconcile or the next change recreates it.
        per_bridge = {f"net/ipv4/conf/{b}/route_localnet": "1" for b in route_localnet_bridges(state)}
        changed = await write_sysctls(self._netns, per_bridge, if_present=True)
        values = {}
        if forwarding_needed(state, 4):
            values["net/ipv4/ip_forward"] = "1"
        if forwarding_needed(state, 6) and await sysctl_exists(self._netns, "net/ipv6/conf/all/forwarding"):
            values["net/ipv6/conf/all/forwarding"] = "1"
        changed += await write_sysctls(self._netns, values)
        for key in changed:
            log.info("set %s=1", key.replace("/", "."))

    async def _ensure_br_netfilter(self) -> None:
        if not await sysctl_exists(self._netns, BR_NETFILTER):
            # The module is global: loading it from the host namespace
            # serves every namespace.  Docker's bridge does the same.
            if shutil.which("modprobe"):
                await self._exec(["modprobe", "br_netfilter"])
            if not await sysctl_exists(self._netns, BR_NETFILTER):
                raise FirewallError(
                    "enable_icc=false needs the br_netfilter kernel module (modprobe br_netfilter failed)"
                )
        values = {BR_NETFILTER: "1"}
        if await sysctl_exists(self._netns, "net/bridge/bridge-nf-call-ip6tables"):
            values["net/bridge/bridge-nf-call-ip6tables"] = "1"
        await write_sysctls(self._netns, values)

    # -- process plumbing -------------------------------------------------

    def _families(self) -> list[Family]:
        if shutil.which(self._tool(4, "restore")) is None:
            raise FirewallError(f"{self._tool(4, 'restore')} not found: install the iptables package")
        # IPv6 is optional on the host; without ip6tables there is nothing
        # IPv6 to filter through FORWARD either.
        return [4] + ([6] if shutil.which(self._tool(6, "restore")) else [])

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        if self._netns is None:
            return list(args)
        if shutil.which("nsenter") is None:
            raise FirewallError("nsenter not found: install the util-linux package")
        path = f"/run/netns/{self._netns}"
        if not os.path.exists(path):
            raise FirewallError(f"network namespace {self._netns} not found ({path})")
        return ["nsenter", f"--net={path}", *args]

    async def _run(self, *args: str, stdin: str | None = None) -> str:
        """Run a command that must succeed; returns its stdout."""
        argv = self._argv(args)
        code, out, err = await self._exec(argv, stdin)
        if code != 0:
            detail = err.strip() or out.strip()
            if stdin is not None:
                log.error("%s failed on this batch:\n%s", " ".join(argv), stdin)
            raise FirewallError(f"{' '.join(argv)} failed (exit {code}): {detail}")
        return out

    async def _exec(self, argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        log.debug("running %s", " ".join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise FirewallError(f"{' '.join(argv)}: {e.strerror}") from e
        try:
            data = stdin.encode() if stdin is not None else None
            out, err = await asyncio.wait_for(proc.communicate(data), COMMAND_TIMEOUT)
        except BaseException as e:
            # Timeout or cancellation: do not leave the child running.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if isinstance(e, TimeoutError):
                raise FirewallError(f"{' '.join(argv)}: timed out") from e
            raise
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def _missing_jumps(table: TableRules, saved: SavedTable) -> list[tuple[Jump, int | None]]:
    """Jumps to add: those missing, and those out of place (render.restore_text
    deletes those first, then inserts them where they belong)."""
    return [(j, jump_index(saved, j)) for j in table.jumps
            if j.line not in saved.rules or jump_misplaced(saved, j)]
