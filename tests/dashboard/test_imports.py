"""The dashboard reaches pollable only through the gateway it is handed: it imports nothing
of ours but ``handlers.api`` (the Principal and Reply records) and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pollable.dashboard as dashboard

PACKAGE = Path(dashboard.__file__).parent
ALLOWED = {"pollable.handlers.api"}


def test_the_dashboard_imports_only_the_handlers_records() -> None:
    ours = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                ours += [(path.name, node.module)] if node.module.startswith("pollable") else []
            elif isinstance(node, ast.Import):
                ours += [(path.name, a.name) for a in node.names if a.name.startswith("pollable")]
    assert ours, "the dashboard uses the handlers' records"
    assert {module for _, module in ours} <= ALLOWED, ours
