"""The ``pynetdrv check`` command: gather the three views, run the checkers,
print one line per finding; ``--repair`` runs the start-up reconcile while
holding the state lock, then checks again."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pynetdrv.check import run_checks
from pynetdrv.check.context import CheckContext
from pynetdrv.check.docker_view import DockerUnreachable, read_docker_view
from pynetdrv.check.kernel import KernelView, NetlinkKernelView
from pynetdrv.check.model import Finding
from pynetdrv.check.state import read_state
from pynetdrv.dataplane.base import Dataplane
from pynetdrv.lock import AlreadyRunning, StateLock
from pynetdrv.reconcile import ReconcileReport, reconcile


@dataclass
class CheckOptions:
    state: Path
    instance: str
    #: None: do not ask Docker.
    docker_socket: Path | None
    netns: str | None = None


@dataclass
class CheckResult:
    ctx: CheckContext
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


async def gather(opts: CheckOptions, kernel: KernelView | None = None) -> CheckContext:
    """Raises FileNotFoundError / sqlite3.Error if the state cannot be read."""
    ctx = CheckContext(state=read_state(opts.state), instance=opts.instance, netns=opts.netns)
    ctx.links = await (kernel or NetlinkKernelView(opts.netns)).links()
    if opts.docker_socket is None:
        ctx.notes.append("Docker not compared (--no-docker)")
    else:
        try:
            ctx.docker = await read_docker_view(opts.instance, opts.docker_socket)
        except DockerUnreachable as e:
            ctx.notes.append(f"Docker not compared: {e}")
    return ctx


async def check(opts: CheckOptions, kernel: KernelView | None = None) -> CheckResult:
    ctx = await gather(opts, kernel)
    return CheckResult(ctx, await run_checks(ctx))


def render(result: CheckResult) -> list[str]:
    lines = [f.line() for f in result.findings]
    lines += [f"note: {n}" for n in result.ctx.notes]
    s = result.ctx.state
    seen = (f"{len(s.networks)} network(s), {len(s.endpoints)} endpoint(s), {len(s.pools)} pool(s), "
            f"{len(result.ctx.links or [])} link(s) in the kernel")
    if result.ctx.docker is not None:
        eps = sum(len(n.endpoints) for n in result.ctx.docker.networks)
        seen += f", Docker: {len(result.ctx.docker.networks)} network(s), {eps} endpoint(s)"
    if result.clean:
        lines.append(f"pynetdrv check: all agree ({seen})")
    else:
        fixable = sum(1 for f in result.findings if f.repairable)
        lines.append(f"pynetdrv check: {len(result.findings)} problem(s), {fixable} repairable with --repair ({seen})")
    return lines


class RepairRefused(Exception):
    """The daemon holds the state lock."""


async def repair(
    opts: CheckOptions, make_dataplane: Callable[[], Dataplane], kernel: KernelView | None = None,
) -> tuple[CheckResult, list[str], CheckResult]:
    """(before, what was done, after).  Only with the state lock held: the
    daemon is not running and cannot start meanwhile, so nothing can change
    the state or the kernel objects under us.  The work is the daemon's own
    start-up reconcile (idempotent ensure_* / remove_* steps on the Dataplane,
    limited to links carrying this instance's alias): it recreates missing
    bridges and unjoined veths, fixes their MTU, addresses and master,
    removes links with our alias the state does not know, and forgets joined
    endpoints whose veth died with their container.  It never releases an
    address or deletes a network or pool: whether Docker still relies on one
    cannot be known safely, so those findings stay for a person."""
    from pynetdrv.store.sqlite import SQLiteStore

    lock = StateLock(opts.state)
    try:
        lock.acquire()
    except AlreadyRunning as e:
        raise RepairRefused(str(e)) from None
    try:
        before = await check(opts, kernel)
        if not any(f.repairable for f in before.findings):
            return before, [], before
        store = SQLiteStore(opts.state)
        dataplane = make_dataplane()
        try:
            await store.open()
            report = await reconcile(store, dataplane)
        finally:
            await dataplane.close()
            await store.close()
        after = await check(opts, kernel)
        return before, _done(report, before, after), after
    finally:
        lock.release()


def _done(report: ReconcileReport, before: CheckResult, after: CheckResult) -> list[str]:
    done = [f"forgot dead endpoint {eid[:12]} (state)" for eid in report.endpoints_forgotten]
    remaining = {f.line() for f in after.findings}
    done += [f"fixed: {f.line()}" for f in before.findings if f.repairable and f.line() not in remaining]
    done += [f"failed: {e}" for e in report.errors]
    return done


def state_error(state: Path, e: Exception) -> str:
    if isinstance(e, FileNotFoundError):
        return f"pynetdrv: no state file at {state}"
    if isinstance(e, sqlite3.Error):
        return f"pynetdrv: cannot read state {state}: {e}"
    return f"pynetdrv: {e}"
