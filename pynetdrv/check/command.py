"""The ``pynetdrv check`` command: gather the three views, run the checkers,
print one line per finding; ``--repair`` runs the start-up reconcile while
holding the state lock, then checks again."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pynetdrv.check import run_checks
from pynetdrv.check.context import CheckContext
from pynetdrv.check.docker_view import DockerUnreachable, read_docker_view
from pynetdrv.check.kernel import KernelView, NetlinkKernelView
from pynetdrv.check.model import Finding
from pynetdrv.check.state import read_state
from pynetdrv.cluster.settings import ClusterSettings
from pynetdrv.dataplane.base import Dataplane, DataplaneError
from pynetdrv.driver.external import External
from pynetdrv.errors import PynetdrvError, StateFileError
from pynetdrv.firewall.base import Firewall
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.lock import AlreadyRunning, StateLock
from pynetdrv.reconcile import reconcile
from pynetdrv.store.base import Store


@dataclass
class CheckOptions:
    state: Path
    instance: str
    #: None: do not ask Docker.
    docker_socket: Path | None
    netns: str | None = None
    #: Compare (and repair) the firewall; None: not compared.
    firewall: Firewall | None = None
    #: Other driver names Docker knows this instance by (a managed plugin's NAME:TAG).
    driver_names: tuple[str, ...] = ()
    #: Cluster mode (recorded by the daemon, or given): compare the VXLAN devices with the registry.
    cluster: ClusterSettings | None = None


@dataclass
class CheckResult:
    ctx: CheckContext
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


async def gather(opts: CheckOptions, kernel: KernelView | None = None) -> CheckContext:
    """Raises FileNotFoundError / StateFileError if the state cannot be read."""
    ctx = CheckContext(state=read_state(opts.state), instance=opts.instance, netns=opts.netns,
                       firewall=opts.firewall, driver_names=opts.driver_names)
    ctx.links = await (kernel or NetlinkKernelView(opts.netns)).links()
    if opts.firewall is None:
        ctx.notes.append("firewall not compared (--no-firewall)")
    if opts.cluster is not None:
        await _gather_cluster(ctx, opts.cluster, opts.netns)
    if opts.docker_socket is None:
        ctx.notes.append("Docker not compared (--no-docker)")
    else:
        try:
            ctx.docker = await read_docker_view((opts.instance, *opts.driver_names), opts.docker_socket)
        except DockerUnreachable as e:
            ctx.notes.append(f"Docker not compared: {e}")
    return ctx


async def _gather_cluster(ctx: CheckContext, settings: ClusterSettings, netns: str | None) -> None:
    from pynetdrv.check.cluster_checks import ClusterExpect
    from pynetdrv.dataplane.vxlan import VxlanDataplane
    from pynetdrv.registry.inventory import read_inventory
    from pynetdrv.registry.readonly import EtcdAway, read_cluster

    if not settings.advertise_address:
        ctx.notes.append("VXLAN devices not compared with the registry: this host's advertise address is unknown "
                         "(the daemon records it at start, in the state's .cluster.json)")
        return
    try:
        inventory = await read_cluster(settings, read_inventory)
    except EtcdAway as e:
        ctx.notes.append(f"VXLAN devices not compared with the registry: {e}")
        return
    # The pools live in etcd: this host's part of them (pools it uses, addresses it or the shared
    # gateway holds) joins the snapshot, so the state and Docker checks see them as on one host.
    me = settings.advertise_address
    mine = [n for n in inventory.networks if me in n.users]
    ctx.state = dataclasses.replace(
        ctx.state, pools=(*ctx.state.pools, *(n.pool for n in mine)),
        allocations={**ctx.state.allocations, **{n.pool.pool_id: tuple(
            a for a in n.allocations if a.owner == me or a.kind == "gateway") for n in mine}})
    vxlan = VxlanDataplane(netns, instance=ctx.instance)
    try:
        devices = await vxlan.list_vxlan_state()
    finally:
        await vxlan.close()
    ctx.cluster = ClusterExpect(inventory.view, settings.advertise_address, settings.vxlan_port, devices)


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
    daemon is not running and cannot start meanwhile, so nothing changes the
    state or our kernel objects under us, and Docker can make no IPAM or
    endpoint call (they all need the daemon), so its view cannot move either.

    1. Endpoints in the state that Docker does not know (a DeleteEndpoint
       Docker could not deliver) are forgotten and their veth removed.
    2. The daemon's own start-up reconcile (idempotent ensure_* / remove_*
       steps on the Dataplane, only on links carrying this instance's alias):
       missing bridges and unjoined veths recreated, MTU/addresses/master
       fixed, links with our alias the state does not know removed, joined
       endpoints whose veth died with their container forgotten.
    3. With Docker's view only: allocations held by nothing Docker knows are
       released (a ReleaseAddress Docker could not deliver), pools of no
       Docker network deleted, and an address Docker's endpoint uses but the
       pool has free is reserved again.
    Without Docker's view, steps 1 and 3 do nothing: whether Docker still
    relies on an address cannot be known, so those findings stay."""
    from pynetdrv.config import Config
    from pynetdrv.store.open import open_store

    lock = StateLock(opts.state)
    try:
        lock.acquire()
    except AlreadyRunning as e:
        raise RepairRefused(str(e)) from None
    try:
        before = await check(opts, kernel)
        if not any(f.repairable for f in before.findings):
            return before, [], before
        done: list[str] = []
        store = await open_store(Config(state=opts.state))
        dataplane = make_dataplane()
        try:
            done += await _apply(store, dataplane, before.findings, "forget_endpoint")
            external = None
            if opts.firewall is not None:
                from pynetdrv.ports.reserver import SocketReserver

                # Held only while repair runs: the daemon takes them again at start.
                external = External(store, opts.firewall, SocketReserver(opts.netns))
            report = await reconcile(store, dataplane, external)
            done += [f"forgot dead endpoint {eid[:12]} (its veth died with its container)"
                     for eid in report.endpoints_forgotten]
            done += [f"failed: {e}" for e in report.errors]
            middle = await check(opts, kernel)
            done += await _apply(store, dataplane, middle.findings, "release", "delete_pool", "reserve")
            done += await _repair_cluster(middle, opts)
        finally:
            await dataplane.close()
            await store.close()
        after = await check(opts, kernel)
        remaining = {f.line() for f in after.findings}
        fixed = [f"fixed: {f.line()}" for f in before.findings if f.repairable and f.line() not in remaining]
        return before, done + fixed, after
    finally:
        lock.release()


async def _repair_cluster(result: CheckResult, opts: CheckOptions) -> list[str]:
    """The VXLAN findings fixed by the daemon's own ``ensure_vxlan`` + ``sync`` (cluster_checks)."""
    from pynetdrv.check.cluster_checks import ACTION, repair_vxlan
    from pynetdrv.dataplane.vxlan import VxlanDataplane

    expect = result.ctx.cluster
    if expect is None or not any(f.action[:1] == (ACTION,) for f in result.findings):
        return []
    vxlan = VxlanDataplane(opts.netns, instance=opts.instance)
    try:
        return await repair_vxlan(result.findings, result.ctx.state.networks, expect, vxlan)
    finally:
        await vxlan.close()


async def _apply(store: Store, dataplane: Dataplane, findings: list[Finding], *kinds: str) -> list[str]:
    done = []
    for f in findings:
        if not f.repairable or not f.action or f.action[0] not in kinds:
            continue
        what, *args = f.action
        try:
            if what == "forget_endpoint":
                ep = await store.get_endpoint(args[0])
                if ep is not None:
                    await dataplane.remove_veth(ep.host_ifname, ep.endpoint_id)
                    await store.delete_endpoint(ep.endpoint_id)
                    done.append(f"forgot endpoint {args[0][:12]} unknown to Docker, removed veth {ep.host_ifname}")
            elif what == "release":
                if await Allocator(store).release(args[0], args[1]):
                    done.append(f"released {args[1]} in pool {args[0]}")
            elif what == "delete_pool":
                if await store.delete_pool(args[0]):
                    done.append(f"deleted pool {args[0]}")
            elif what == "reserve":
                await Allocator(store).reserve(args[0], args[1], "dynamic")
                done.append(f"reserved {args[1]} in pool {args[0]} again")
        except (DataplaneError, PynetdrvError) as e:
            done.append(f"failed: {what} {' '.join(args)}: {e}")
    return done


def state_error(state: Path, e: Exception) -> str:
    if isinstance(e, FileNotFoundError):
        return f"pynetdrv: no state file at {state}"
    if isinstance(e, StateFileError):
        return f"pynetdrv: cannot read state {state}: {e}"
    return f"pynetdrv: {e}"
