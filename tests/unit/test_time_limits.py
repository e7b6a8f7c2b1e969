"""The suite-wide per-test time limits of the root conftest.py (pytest-timeout)."""

from __future__ import annotations

import pytest


def test_a_unit_test_gets_the_short_limit(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args == (120,)


@pytest.mark.timeout(7)
def test_a_test_keeps_its_own_limit(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args == (7,)
