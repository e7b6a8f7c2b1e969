"""daemon.lifecycle.running: components start in order and stop in reverse,
on shutdown and after a failed start (only those that started), with every
start and stop in the log (debug), and one info line per start and stop.  And the daemon's own list
(daemon_components)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from pynetdrv.api.routes import Gate
from pynetdrv.config import Config
from pynetdrv.daemon.components import daemon_components
from pynetdrv.daemon.lifecycle import Component, running

NAMES = ["lock", "store", "socket", "dataplane", "reconcile"]


class Part:
    def __init__(self, name: str, events: list[str], fail_start: bool = False, fail_stop: bool = False) -> None:
        self.name = name
        self._events = events
        self._fail_start = fail_start
        self._fail_stop = fail_stop

    def detail(self) -> str:
        return f"{self.name}-detail" if self.name != "reconcile" else ""

    async def start(self) -> None:
        self._events.append(f"start {self.name}")
        if self._fail_start:
            raise RuntimeError(f"{self.name} broke")

    async def stop(self) -> None:
        self._events.append(f"stop {self.name}")
        if self._fail_stop:
            raise OSError(f"{self.name} would not stop")


def parts(events: list[str], fail_start: str = "", fail_stop: str = "") -> list[Component]:
    return [Part(n, events, fail_start=n == fail_start, fail_stop=n == fail_stop) for n in NAMES]


async def test_start_in_order_stop_in_reverse() -> None:
    events: list[str] = []
    async with running(parts(events)):
        assert events == [f"start {n}" for n in NAMES]
        events.append("serving")
    assert events == [f"start {n}" for n in NAMES] + ["serving"] + [f"stop {n}" for n in reversed(NAMES)]


async def test_the_body_failing_still_stops_everything_in_reverse() -> None:
    events: list[str] = []
    with pytest.raises(KeyError):
        async with running(parts(events)):
            raise KeyError("boom")
    assert events[len(NAMES):] == [f"stop {n}" for n in reversed(NAMES)]


@pytest.mark.parametrize("position", range(len(NAMES)))
async def test_a_failed_start_stops_only_those_started_in_reverse(position: int) -> None:
    events: list[str] = []
    failed: list[tuple[str, str]] = []
    body_ran = False
    with pytest.raises(RuntimeError, match=f"^{NAMES[position]} broke$"):
        async with running(parts(events, fail_start=NAMES[position]),
                           on_start_failure=lambda c, e: failed.append((c.name, str(e)))):
            body_ran = True
    assert not body_ran
    assert failed == [(NAMES[position], f"{NAMES[position]} broke")]
    started = NAMES[:position]
    assert events == [f"start {n}" for n in NAMES[:position + 1]] + [f"stop {n}" for n in reversed(started)]


async def test_a_failing_stop_does_not_keep_the_others_from_stopping(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    caplog.set_level(logging.DEBUG, logger="pynetdrv.daemon.lifecycle")
    async with running(parts(events, fail_stop="socket")):
        pass
    assert events[len(NAMES):] == [f"stop {n}" for n in reversed(NAMES)]
    assert "could not stop socket cleanly: OSError: socket would not stop" in caplog.messages
    assert not any(m.startswith("stopped socket") for m in caplog.messages)


async def test_every_start_and_stop_is_logged_with_its_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pynetdrv.daemon.lifecycle")
    async with running(parts([])):
        pass
    want: list[str] = []
    for n in NAMES:
        want += [f"starting {n} ({n}-detail)" if n != "reconcile" else "starting reconcile", f"started {n} in # ms"]
    want.append("started in # ms: " + ", ".join(f"{n} # ms" for n in NAMES))
    for n in reversed(NAMES):
        want += [f"stopping {n}", f"stopped {n} in # ms"]
    want.append("stopped in # ms")
    assert [re.sub(r"\d+ ms", "# ms", m) for m in caplog.messages] == want


async def test_at_info_a_start_and_a_stop_are_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pynetdrv.daemon.lifecycle")
    async with running(parts([])):
        pass
    assert [re.sub(r"\d+ ms", "# ms", m) for m in caplog.messages] == [
        "started in # ms: lock # ms, store # ms, socket # ms, dataplane # ms, reconcile # ms", "stopped in # ms"]


async def test_a_refused_start_adds_nothing_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """The caller reports the error (the CLI: one line on stderr)."""
    caplog.set_level(logging.INFO, logger="pynetdrv.daemon.lifecycle")
    with pytest.raises(RuntimeError):
        async with running(parts([], fail_start="store")):
            pass
    assert caplog.messages == []


async def test_a_failed_start_is_logged_naming_the_component(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pynetdrv.daemon.lifecycle")
    with pytest.raises(RuntimeError):
        async with running(parts([], fail_start="dataplane")):
            pass
    messages = [re.sub(r"after \d+ ms", "after # ms", m) for m in caplog.messages]
    i = messages.index("could not start dataplane after # ms: RuntimeError: dataplane broke")
    assert messages[i + 1:] == ["stopping socket", messages[i + 2], "stopping store", messages[i + 4],
                                "stopping lock", messages[i + 6]]
    assert [messages[i + k].split(" in ")[0] for k in (2, 4, 6)] == ["stopped socket", "stopped store", "stopped lock"]


def test_the_daemon_starts_its_parts_in_this_order(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db")
    names = [c.name for c in daemon_components(config, Gate())]
    assert names == ["state lock", "store", "socket", "serving modules", "dataplane", "firewall", "port reserver",
                     "services", "reconcile", "firewall tidy-up", "serving", "firewall keeper",
                     "restart-policy watch"]
    details = {c.name: c.detail() for c in daemon_components(config, Gate())}
    assert details["store"] == f"sqlite:{tmp_path / 's.db'}"
    assert details["socket"] == str(tmp_path / "p.sock")
    assert details["firewall keeper"] == "every 30 s"
    assert details["restart-policy watch"] == "Docker at /var/run/docker.sock"


def test_no_keeper_when_the_firewall_check_is_off(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db", firewall_check_seconds=0)
    assert "firewall keeper" not in [c.name for c in daemon_components(config, Gate())]
