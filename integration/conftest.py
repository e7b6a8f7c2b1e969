"""Integration tests against the real dockerd on this machine (no mocks).

Set-up (dockerd, the local/busybox image, the venv) is done by ./scripts/test. Here:
- every test is marked `docker` and `root`;
- one pynetdrv daemon (plugin `pynetdrv-it`) serves the whole session; tests that restart
  it (or dockerd) do so through the same fixture objects, against the same state file;
- after EVERY test, whatever the tests created in docker is removed, then the host is checked
  for anything of pynetdrv's left behind (links, netns, iptables rules); a leak fails the test.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from integration.cmd import run, wait_for
from integration.constants import DOCKER, IDLE_CMD, IMAGE, LABEL, PLUGIN, PLUGIN_SOCKET
from integration.docker_objects import Container, Network, cleanup_docker_objects, docker, unique
from integration.dockerd import (
    DockerdProcess,
    docker_answers,
    exec_root_of,
    restart_dockerd,
    running_dockerd,
    start_dockerd,
    wait_docker,
)
from integration.engine_processes import KILLED_ENGINES, EngineProcess, orphan_shims, reap
from integration.host import bridge_name_for, forward_policies, leaks, links, netns_entries
from integration.processes import end_process
from integration.pynetdrv_daemon import PynetdrvDaemon, leftover_daemons, plugin_activates
from integration.subnet_allocator import SubnetAllocator

HERE = Path(__file__).resolve().parent
SCRIPTS_HINT = "run ./scripts/test (as root), which installs docker.io, starts dockerd and imports the image"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.root)
    # scripts/test runs the integration tests once per engine; tests marked `once` run on
    # the first engine only. Deselected, not skipped: they did run, on that engine.
    # Tests marked `first_and_last` run on the first and the last engine of the run only
    # (matrix.py exports the last one's name as PYNETDRV_IT_LAST_ENGINE), not on those between.
    first = os.environ.get("PYNETDRV_IT_ENGINE_INDEX", "0") == "0"
    last = os.environ.get("PYNETDRV_IT_ENGINE") == os.environ.get("PYNETDRV_IT_LAST_ENGINE")
    skipped = () if first else ("once",) if last else ("once", "first_and_last")
    dropped = [item for item in items if any(item.get_closest_marker(m) for m in skipped)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


# ---------------------------------------------------------------------------------------------
# Session: the engine, the image, the daemon


LOCK_PATH = Path("/run/lock/pynetdrv-integration.lock")
LOCK_WAIT = 20 * 60


@pytest.fixture(scope="session")
def exclusive() -> Iterator[None]:
    """One integration run at a time on a machine: they share dockerd (which some tests
    restart), the plugin name and the socket path. A second run waits for the first.
    scripts/test, which switches engines between pytest runs, holds the lock itself for its
    whole run and says so in PYNETDRV_IT_LOCK_HELD (its pid, an ancestor of ours)."""
    holder = os.environ.get("PYNETDRV_IT_LOCK_HELD", "")
    if holder.isdigit() and _is_ancestor(int(holder)):
        yield
        return
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "w") as lock:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pytest.fail(f"another integration run held {LOCK_PATH} for {LOCK_WAIT} s", pytrace=False)
                time.sleep(1)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def _is_ancestor(pid: int) -> bool:
    current = os.getppid()
    for _ in range(16):
        if current == pid:
            return True
        if current <= 1:
            return False
        try:
            current = int(Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
    return False


@pytest.fixture(scope="session")
def dockerd_record(exclusive: None) -> DockerdProcess:
    """Checks the engine is usable; remembers how dockerd was started (to revive it)."""
    if os.geteuid() != 0:
        pytest.fail(f"the integration tests need root; {SCRIPTS_HINT}", pytrace=False)
    if not os.access(DOCKER, os.X_OK):
        pytest.fail(f"{DOCKER} is missing; {SCRIPTS_HINT}", pytrace=False)
    if not docker_answers():
        pytest.fail(f"dockerd is not reachable (`{DOCKER} info` fails); {SCRIPTS_HINT}", pytrace=False)
    if not docker("image", "inspect", IMAGE, check=False).ok:
        pytest.fail(f"the test image {IMAGE} is missing; {SCRIPTS_HINT}", pytrace=False)
    return running_dockerd()


@pytest.fixture(scope="session")
def pynetdrv(dockerd_record: DockerdProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PynetdrvDaemon]:
    """The daemon under test, serving /run/docker/plugins/pynetdrv-it.sock for the session."""
    # We hold the integration lock: a pynetdrv-it still running is an aborted run's leftover.
    for pid in leftover_daemons(PLUGIN_SOCKET):
        end_process(pid)
    if plugin_activates(PLUGIN_SOCKET):
        pytest.fail(f"something already serves {PLUGIN_SOCKET}; stop it first", pytrace=False)
    if PLUGIN_SOCKET.exists() or PLUGIN_SOCKET.is_symlink():
        PLUGIN_SOCKET.unlink()  # stale socket of an aborted run (ours: the test plugin's path)
    workdir = tmp_path_factory.mktemp("pynetdrv")
    daemon = PynetdrvDaemon(PLUGIN_SOCKET, workdir / "state.db", workdir / "pynetdrv.log")
    daemon.start()
    problems = cleanup_docker_objects()  # leftovers of an aborted earlier run
    if problems:
        pytest.fail("could not remove leftovers of an earlier run:\n" + "\n".join(problems), pytrace=False)
    yield daemon
    if not daemon.running():
        daemon.start()
    cleanup_docker_objects()
    daemon.stop(signal.SIGTERM)
    # With no network left, a clean shutdown leaves the host's firewall as it found it:
    # none of this instance's chains (PYNETDRV-IT-*) or jumps to them.
    for tool in ("iptables-save", "ip6tables-save"):
        dump = str(run([tool], check=False))
        ours = [line for line in dump.splitlines() if f"{PLUGIN.upper()}-" in line]
        assert not ours, f"{tool}: {PLUGIN} left {ours} behind after the session"


@pytest.fixture(scope="session")
def subnet_allocator() -> SubnetAllocator:
    return SubnetAllocator()


# ---------------------------------------------------------------------------------------------
# Per test: cleanup + leak check, failure logs

LOG_KEY = pytest.StashKey[tuple[PynetdrvDaemon, int, Path, int]]()


@dataclass
class Resources:
    """What a test created on the host side, for the leak check."""

    links_before: set[str]
    netns_before: set[str]
    bridges: set[str] = field(default_factory=set)
    subnets: set[str] = field(default_factory=set)


@pytest.fixture(autouse=True)
def resources(request: pytest.FixtureRequest, pynetdrv: PynetdrvDaemon,
              dockerd_record: DockerdProcess) -> Iterator[Resources]:
    """Autouse: after every test remove its containers/networks, then assert nothing of
    pynetdrv's is left: links with our instance's alias (`pynetdrv-it:`), new pnbr-/pnve-
    links, container netns, iptables rules for the test's bridges/subnets (see leaks() in host.py)."""
    request.node.stash[LOG_KEY] = (pynetdrv, pynetdrv.log_size(), dockerd_record.log_path,
                                   _size(dockerd_record.log_path))
    res = Resources(links_before=set(links()), netns_before=netns_entries())
    policies = forward_policies()
    KILLED_ENGINES.clear()
    yield res
    problems: list[str] = []
    # Engines first: cleanup needs dockerd and (for DeleteNetwork etc.) pynetdrv.
    if not docker_answers():
        try:
            if not run(["pidof", "dockerd"], check=False).ok:
                start_dockerd(dockerd_record)
            else:
                wait_docker(60)
        except AssertionError as exc:
            problems.append(f"dockerd is down after the test and could not be revived: {exc}")
    if not pynetdrv.running():
        problems.append(f"pynetdrv was not running at the end of the test (exit code "
                        f"{pynetdrv.proc.returncode if pynetdrv.proc else None}); restarted it")
        pynetdrv.start()
    problems += cleanup_docker_objects()
    found: list[str] = []
    orphans: list[EngineProcess] = []
    exec_root = exec_root_of(dockerd_record.cmdline)

    def clean() -> bool:
        found[:] = leaks(res.links_before, res.netns_before, res.bridges, res.subnets)
        orphans[:] = _orphan_shims(exec_root)
        return not found and not orphans

    try:
        wait_for(clean, 5, "the host to be clean")
    except AssertionError:
        problems += found
    if orphans:
        # Shims (and their containers' processes) of the engine under test with no container
        # behind them. A test that SIGKILLed the engine may orphan them: its teardown ends them.
        # Any other test leaked them.
        if exec_root not in KILLED_ENGINES:
            problems += [f"a shim without a container was left running (ended now): {p}" for p in orphans]
        problems += reap(orphans)
    if forward_policies() != policies:
        problems.append(f"the FORWARD policies changed: {policies} -> {forward_policies()}")
    if problems:
        pytest.fail("after the test (cleanup done first):\n  " + "\n  ".join(problems), pytrace=False)


def _orphan_shims(exec_root: Path) -> list[EngineProcess]:
    """The engine's shims for containers it does not know ([] if it cannot be asked)."""
    ids = docker("ps", "-aq", "--no-trunc", check=False)
    return orphan_shims(exec_root, set(ids.split())) if ids.ok else []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome: Any = yield
    rep = outcome.get_result()
    if not rep.failed or LOG_KEY not in item.stash:
        return
    daemon, offset, dockerd_log, dockerd_offset = item.stash[LOG_KEY]
    # pyroute2's own debug lines (whole netlink messages) drown the daemon's: leave them out.
    text = "\n".join(line for line in daemon.log_text(offset).splitlines()
                     if " DEBUG pyroute2." not in line)
    if len(text) > 40000:
        text = "[... cut ...]\n" + text[-40000:]
    rep.sections.append((f"pynetdrv log ({daemon.log_path}) during this test", text or "(empty)"))
    try:
        with open(dockerd_log, "rb") as f:
            f.seek(dockerd_offset)
            dtext = f.read().decode(errors="replace")
    except OSError as exc:
        dtext = f"({exc})"
    lines = dtext.splitlines()
    if len(lines) > 150:
        lines = ["[... cut ...]", *lines[-150:]]
    rep.sections.append((f"dockerd log ({dockerd_log}) during this test", "\n".join(lines) or "(empty)"))


# ---------------------------------------------------------------------------------------------
# Factories


class Subnets:
    def __init__(self, allocator: SubnetAllocator, res: Resources) -> None:
        self._alloc = allocator
        self._res = res

    def v4(self) -> ipaddress.IPv4Network:
        net = self._alloc.v4()
        self._res.subnets.add(str(net))
        return net

    def pair(self) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
        v4 = self.v4()
        v6 = self._alloc.v6_for(v4)
        self._res.subnets.add(str(v6))
        return v4, v6

    def note(self, subnet: str) -> None:
        """Record a subnet chosen elsewhere (automatic pools) for the leak check."""
        self._res.subnets.add(subnet)


@pytest.fixture
def subnets(subnet_allocator: SubnetAllocator, resources: Resources) -> Subnets:
    """Fresh, unused test subnets: 10.231-239.Y.0/24 (+ fd00:23X:0:Y::/64)."""
    return Subnets(subnet_allocator, resources)


@pytest.fixture
def make_network(resources: Resources) -> Iterator[Callable[..., Any]]:
    """make_network(*docker_args, driver=, ipam=, name=, check=) -> Network (or Out if the
    create failed and check=False). The network and its containers go at teardown."""
    created: list[str] = []

    def _make(*args: str, driver: str | None = PLUGIN, ipam: str | None = PLUGIN,
              name: str | None = None, check: bool = True) -> Any:
        name = name or unique("net")
        argv = ["network", "create", "--label", f"{LABEL}=1"]
        if driver:
            argv += ["-d", driver]
        if ipam:
            argv += ["--ipam-driver", ipam]
        argv += [*args, name]
        created.append(name)
        out = docker(*argv, check=check, timeout=90)
        if not out.ok:
            return out
        net_id = out.strip().splitlines()[-1]
        bridge = None
        if driver == PLUGIN:
            bridge = bridge_name_for(net_id)
            for i, a in enumerate(args):
                opt = args[i + 1] if a in ("-o", "--opt") and i + 1 < len(args) else a
                if opt.startswith("com.docker.network.bridge.name="):
                    bridge = opt.split("=", 1)[1]
        if bridge:
            resources.bridges.add(bridge)
        return Network(name, net_id, bridge)

    yield _make
    for name in reversed(created):
        info = docker("network", "inspect", name, check=False)
        if not info.ok:
            continue
        ids = list((json.loads(info)[0].get("Containers") or {}).keys())
        if ids:
            docker("rm", "-f", *ids, check=False, timeout=120)
        docker("network", "rm", name, check=False, timeout=60)


@pytest.fixture
def make_container() -> Iterator[Callable[..., Container]]:
    """make_container(network, *docker_run_args, name=, cmd=, check=) -> Container.
    With check=False the container's .result holds the `docker run` Out."""
    created: list[str] = []

    def _run(network: Network | None = None, *args: str, name: str | None = None,
             cmd: list[str] | None = None, check: bool = True, timeout: float = 90) -> Container:
        name = name or unique("c")
        argv = ["run", "-d", "--name", name, "--label", f"{LABEL}=1"]
        if network is not None:
            argv += ["--network", network.name]
        argv += [*args, IMAGE, *(cmd or IDLE_CMD)]
        created.append(name)
        out = docker(*argv, check=check, timeout=timeout)
        return Container(name, out)

    yield _run
    if created:
        docker("rm", "-f", *created, check=False, timeout=120)


@pytest.fixture
def dockerd(dockerd_record: DockerdProcess) -> Iterator[Callable[[int], int]]:
    """restart(sig) -> new dockerd pid: signal dockerd, wait for it to exit, start the same
    command line again (same log file), wait for `docker info`."""

    def _restart(sig: int) -> int:
        return restart_dockerd(sig)

    yield _restart
    if not docker_answers():
        if not run(["pidof", "dockerd"], check=False).ok:
            start_dockerd(dockerd_record)
        else:
            wait_docker(60)
