"""No import cycle among pynetdrv's packages and top-level modules.

Each subpackage (``pynetdrv/ipam/``, ``pynetdrv/store/``, ...) and each
top-level module (``cli``, ``lock``, ...) is one node; an edge is a runtime
import, at module level or inside a function, read from the AST.  Imports
under ``if TYPE_CHECKING:`` are not edges: they never run.  The direction
chosen for IPAM and the store: ``store`` depends on ``ipam`` (records, the
allocation primitive's protocol, address arithmetic), never the reverse.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import pynetdrv

ROOT = Path(pynetdrv.__file__).parent
Edges = dict[str, dict[str, str]]  # node -> {imported node: "file:line" of one such import}


def _node(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pynetdrv" and len(parts) > 1 else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    """(module, line) of every runtime import, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[tuple[str, int]] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pynetdrv":
                found += [(f"pynetdrv.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((node.module, node.lineno))
        todo.extend(ast.iter_child_nodes(node))
    return found


def package_graph(root: Path) -> Edges:
    edges: Edges = defaultdict(dict)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        source = rel.parts[0].removesuffix(".py")
        if source == "__init__":
            continue
        for module, line in _imports(ast.parse(path.read_text(), str(path))):
            target = _node(module)
            if target and target != source:
                edges[source].setdefault(target, f"{rel}:{line}")
    return edges


def find_cycle(edges: Edges) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def describe(edges: Edges, cycle: list[str]) -> str:
    return " -> ".join(cycle) + " (" + "; ".join(
        f"{a} -> {b} at {edges[a][b]}" for a, b in itertools.pairwise(cycle)) + ")"


def test_pynetdrv_packages_have_no_import_cycle() -> None:
    edges = package_graph(ROOT)
    assert "ipam" in edges["store"], "the graph misses store -> ipam: the walk is broken"
    cycle = find_cycle(edges)
    assert cycle is None, f"import cycle among pynetdrv packages: {describe(edges, cycle)}"


def test_ipam_does_not_depend_on_store() -> None:
    edges = package_graph(ROOT)
    assert "store" not in edges["ipam"], f"ipam imports store at {edges['ipam'].get('store')}"


def test_the_walk_finds_a_cycle_and_names_it(tmp_path: Path) -> None:
    """The checker itself can fail: a planted cycle (a -> b -> a, b's import
    inside a function) is found and named with its lines; a TYPE_CHECKING
    import is not an edge."""
    pkg = tmp_path / "pynetdrv"
    for name, text in {
        "a/__init__.py": "from pynetdrv.b import thing\n",
        "b/__init__.py": "def f():\n    from pynetdrv.a import x\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pynetdrv.a import y\n",
        "a/deep.py": "import pynetdrv.c\n",
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    edges = package_graph(pkg)
    assert "a" not in edges.get("c", {})
    cycle = find_cycle(edges)
    assert cycle == ["a", "b", "a"]
    assert describe(edges, cycle) == "a -> b -> a (a -> b at a/__init__.py:1; b -> a at b/__init__.py:2)"
