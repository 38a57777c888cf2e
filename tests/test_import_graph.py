"""The shape of `portal/` as its imports draw it: no module-level import cycle (so no module
depends on the order others are imported in), no reaching into another module's private
names, and the layers pointing one way (services never import pages or the API)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / "portal"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _top_level_imports(tree: ast.Module):
    """Imports run when the module is imported: module level, including inside `try` and
    `if`, but not `if TYPE_CHECKING:` blocks nor function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                stack.extend(handler.body)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module -> modules it imports at import time; and every private cross-module import."""
    graph: dict[str, set[str]] = {}
    private: list[str] = []
    for path in sorted(PORTAL.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        edges = graph.setdefault(module, set())
        for node in ast.walk(tree):  # private names: anywhere, function bodies included
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{module}: from {node.module} import {alias.name}")
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    package = _package_of(module, path).split(".")
                    package = package[: len(package) - node.level + 1]
                    base = ".".join(package + ([base] if base else []))
                targets = [
                    f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
                    for a in node.names
                ]
            edges.update(t for t in targets if t == "portal" or t.startswith("portal."))
        edges.discard(module)
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """A cycle of the graph (the standard library finds one), or none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return [sorted(set(exc.args[1]))]
    return []


def test_no_module_level_import_cycle_in_portal():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_no_module_imports_another_modules_private_names():
    _, private = _graph()
    assert private == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("portal.services", ("portal.web", "portal.api", "portal.http", "portal.cli")),
        ("portal.models", ("portal.services", "portal.web", "portal.api")),
        ("portal.lib", ("portal.services", "portal.models", "portal.web", "portal.api")),
    ],
)
def test_layers_point_one_way(layer, forbidden):
    graph, _ = _graph()
    wrong = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target.startswith(forbidden)
    ]
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle():
    """The check above could pass by never finding anything; here it must."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
