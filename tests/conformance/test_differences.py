"""docs/differences.md lists every sandbox bound the served documents carry, with its
numbers, and nothing that is not one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pollable.server.settings import Settings
from tests.conftest import start

DIFFERENCES = Path(__file__).resolve().parents[2] / "docs" / "differences.md"
DOCUMENTS = ("/openapi.json", "/v2/openapi.json", "/sandbox/openapi.json")
BOUNDS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")


def sandbox_bounds(node: Any, label: str = "") -> Iterator[tuple[str, tuple[int, ...]]]:
    """(label, numbers) of every schema marked ``x-sandbox-bound``. The label is the name
    a reader looks for: the parameter's, the property's, or the component schema's."""
    if isinstance(node, list):
        for item in node:
            yield from sandbox_bounds(item, label)
        return
    if not isinstance(node, dict):
        return
    if node.get("x-sandbox-bound"):
        numbers = tuple(int(node[key]) for key in BOUNDS if key in node)
        assert numbers, f"{label}: marked as a sandbox bound, but bounds nothing"
        yield label, numbers
    if "in" in node and "name" in node and "schema" in node:  # a parameter
        label = node["name"]
    for key, value in node.items():
        if key in ("properties", "schemas") and isinstance(value, dict):
            for name, schema in value.items():
                yield from sandbox_bounds(schema, name)
        else:
            yield from sandbox_bounds(value, label)


def bound_rows() -> dict[str, str]:
    """The rows of the "Sandbox bounds" table, by the first `name` of their second cell."""
    text = DIFFERENCES.read_text(encoding="utf-8")
    section = text.split("## Sandbox bounds", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    separator = next(i for i, line in enumerate(table) if set(line) <= set("|- "))
    rows = {}
    for line in table[separator + 1 :]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        found = re.search(r"`([^`]+)`", cells[1])
        if found:
            rows[found.group(1)] = line.replace(",", "")
    return rows


@pytest.fixture(scope="module")
def served() -> Iterator[list[dict[str, Any]]]:
    """The documents as the server publishes them."""
    for api in start(Settings(store="memory://")):
        yield [api.client.get(path).json() for path in DOCUMENTS]


def test_every_sandbox_bound_is_listed_with_its_numbers(served: list[dict[str, Any]]) -> None:
    rows = bound_rows()
    found = {bound for document in served for bound in sandbox_bounds(document)}
    assert found, "the served documents carry no sandbox bound"
    for label, numbers in sorted(found):
        assert label in rows, f"`{label}` is a sandbox bound not listed in {DIFFERENCES.name}"
        figures = set(re.findall(r"\d+", rows[label]))
        missing = [n for n in numbers if str(n) not in figures]
        assert not missing, f"`{label}`: {missing} not in its row: {rows[label]}"


def test_every_listed_bound_is_served(served: list[dict[str, Any]]) -> None:
    labels = {label for document in served for label, _ in sandbox_bounds(document)}
    stale = set(bound_rows()) - labels
    assert not stale, f"{DIFFERENCES.name} lists bounds the documents do not carry: {stale}"


def test_the_readme_links_it() -> None:
    readme = (DIFFERENCES.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/differences.md" in readme
