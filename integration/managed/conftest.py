"""Fixtures of the managed-plugin tests: one plugin per test module (built once per sources, see
integration/managed_plugin.py), and after each test no link or rule of its instance left."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integration.managed_plugin import ManagedPlugin, left_clean, module_plugin


@pytest.fixture(scope="module")
def managed(dockerd_record: Any, tmp_path_factory: Any) -> Iterator[ManagedPlugin]:
    yield from module_plugin(tmp_path_factory)


@pytest.fixture(autouse=True)
def instance_left_clean(managed: ManagedPlugin) -> Iterator[None]:
    """After each test no link or rule of the plugin's instance is left (see left_clean)."""
    yield
    left_clean(managed)
