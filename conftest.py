"""Suite-wide rule: in CI (CI=true) a skipped test fails the run.

The netns tests skip themselves without root so a developer can run the unit
tests anywhere; CI runs as root with a Docker engine, where a skip can only
mean something is broken, and must not be counted as passing."""

from __future__ import annotations

import os

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _skipped(config: pytest.Config) -> int:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return len(reporter.stats.get("skipped", [])) if reporter else 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _in_ci() and exitstatus == 0 and _skipped(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = _skipped(terminalreporter.config)
    if _in_ci() and skipped:
        terminalreporter.write_line(f"CI: {skipped} test(s) skipped; in CI every test must run", red=True)


# Per-test time limits (pytest-timeout): a test that hangs fails on its own, with the stack of every
# thread printed, instead of holding its whole run until integration/matrix.py kills it without a
# word on which test it was. Generous: they catch hangs, they do not measure speed. The first test
# of an integration module also pays for its module's fixtures (a lab up takes about a minute).
_TIME_LIMITS_S = {"tests": 120, "integration": 900}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        try:
            top = item.path.relative_to(config.rootpath).parts[0]
        except ValueError:
            top = ""
        item.add_marker(pytest.mark.timeout(_TIME_LIMITS_S.get(top, 900)))
