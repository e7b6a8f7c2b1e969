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
