"""The test suite's own shape: no test module imports another test module. What two modules
share (fake servers, helpers, constants, fixtures) lives in tests/fake_servers.py,
tests/helpers.py or a conftest.py, so running or deleting one test module never depends on
another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_test_modules(path: Path) -> list[str]:
    """The `test_*` modules of this suite that `path` imports (absolute or relative)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("tests."))
        elif isinstance(node, ast.ImportFrom) and (node.level or node.module.startswith("tests")):
            module = "." * node.level + (node.module or "")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return sorted(n for n in names if any(p.startswith("test_") for p in n.split(".")))


def test_no_test_module_imports_another_test_module():
    offenders = {
        str(path.relative_to(TESTS)): _imported_test_modules(path)
        for path in sorted(TESTS.rglob("test_*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}
