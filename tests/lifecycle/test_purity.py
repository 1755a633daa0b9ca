"""``lifecycle/`` is pure: it imports only pure parts of the standard library and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pollable.lifecycle as lifecycle

PACKAGE = Path(lifecycle.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))

ALLOWED = frozenset({
    "__future__", "math", "random", "re", "enum", "dataclasses", "collections",
    "collections.abc", "typing", "posixpath",
    # MappingProxyType, for read-only defaults: pure.
    "types",
})  # fmt: skip
#: Named so a failure says plainly what crept in; anything outside ALLOWED fails anyway.
FORBIDDEN = frozenset({
    "os", "io", "sys", "time", "datetime", "pathlib", "socket", "sqlite3", "subprocess",
    "logging", "store", "server", "handlers", "connexion", "starlette",
})  # fmt: skip
#: Builtins that reach outside the process or around the import system.
IMPURE_BUILTINS = frozenset({"open", "input", "print", "__import__", "exec", "eval", "compile"})


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, however deeply nested; relative
    imports are resolved against the package, e.g. ``(12, "lifecycle.model")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
            elif node.level == 1:
                found.append((node.lineno, f"lifecycle.{node.module or ''}".rstrip(".")))
            else:
                found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_the_package_has_its_modules():
    names = {path.stem for path in MODULES}
    assert {"model", "engine", "planner", "scenarios", "codec",
            "errors"} <= names  # fmt: skip


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_imports_only_pure_modules(path):
    own = {f"lifecycle.{p.stem}" for p in MODULES} | {"lifecycle"}
    for line, module in imports_of(path):
        top = module.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name}:{line} imports {module}"
        assert module in ALLOWED or module in own, f"{path.name}:{line} imports {module}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_calls_no_impure_builtins(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in IMPURE_BUILTINS, f"{path.name}:{node.lineno}"


def test_the_checker_catches_impure_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nfrom ..store import base\n"
        "def f():\n    import sqlite3\n    from .model import Plan\n"
    )
    assert sorted(imports_of(sample)) == [
        (1, "os"), (2, "..store"), (4, "sqlite3"), (5, "lifecycle.model"),
    ]  # fmt: skip
