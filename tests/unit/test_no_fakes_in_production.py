"""Production code never imports a test double or anything from tests/:
the fakes live in tests/fakes/, and pynetdrv/ must work with real parts only."""

from __future__ import annotations

import ast
from pathlib import Path

import pynetdrv

PACKAGE = Path(pynetdrv.__file__).resolve().parent
#: Top-level modules that are test code (tests/unit and tests/netns are on sys.path as roots too).
TEST_ROOTS = {"tests", "conftest", "fakes", "unit_helpers", "plugin_harness", "fake_dataplane_views", "netns_util"}


def forbidden_imports(source: str) -> list[str]:
    """Imports in ``source`` that name a fake or a test module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.lstrip(".").split(".")
            if parts[0] in TEST_ROOTS or any("fake" in p.lower() for p in parts):
                found.append(name)
    return found


def test_the_check_catches_each_way_of_importing_a_fake() -> None:
    bad = [
        "from tests.fakes.dataplane import FakeDataplane",
        "import tests.fakes.firewall",
        "from pynetdrv.dataplane.fake import FakeDataplane",
        "from .fake import FakeReserver",
        "from . import fake",
        "def f():\n    from tests.fakes.ports import FakeReserver\n",
        "from plugin_harness import Harness",
    ]
    for source in bad:
        assert forbidden_imports(source), source
    assert forbidden_imports("from pynetdrv.firewall.iptables import IptablesFirewall\nimport asyncio\n") == []


def test_no_module_under_pynetdrv_imports_a_fake_or_a_test() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40, modules  # the package itself, not an empty directory
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in modules
        if (found := forbidden_imports(path.read_text()))
    }
    assert offenders == {}


def test_no_fake_module_in_the_package() -> None:
    assert [p for p in PACKAGE.rglob("*.py") if "fake" in p.name.lower()] == []
