"""Fixtures of the cross-cutting conformance suite: live servers on real sockets, SQLite
files provisioned before start-up, and the summary of the Schemathesis runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.conformance.live import Servers, Tenant, provision

#: One line per Schemathesis run (contract, backend, seed, cases, failures, time); printed
#: after the session.
SCHEMATHESIS_RUNS: list[str] = []


#: One line per proof (test, store, what it counted); printed after the session.
PROOF_FIGURES: list[str] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> list[str]:
    """Where a proof appends what it measured (prefixed with its test's id)."""
    return _Figures(request.node.name)


class _Figures(list[str]):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def append(self, line: str) -> None:
        PROOF_FIGURES.append(f"{self.name}: {line}")
        super().append(line)


@pytest.fixture
def schemathesis_runs() -> list[str]:
    """The summary lines; a fixture, so tests append to the list this conftest prints."""
    return SCHEMATHESIS_RUNS


#: The stores live servers share, for ``parametrize("db_url", ON_EVERY_STORE, indirect=True)``.
ON_EVERY_STORE = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's own store: a SQLite file, or (``indirect`` param ``"postgresql"``) a
    schema of its own in the test database (skipped, or failed in CI, without a server)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return postgres.schema_url(str(tmp_path))
    return f"sqlite:///{tmp_path}/live.db"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def tenants(db_url: str) -> dict[str, Tenant]:
    """Two tenants, provisioned into ``db_url`` before any server starts."""
    return provision(db_url, "acme", "globex")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PROOF_FIGURES:
        terminalreporter.section("Proofs (what each counted)")
        for line in PROOF_FIGURES:
            terminalreporter.write_line(line)
    if not SCHEMATHESIS_RUNS:
        return
    terminalreporter.section("Schemathesis runs (st run, schemathesis.toml)")
    for line in SCHEMATHESIS_RUNS:
        terminalreporter.write_line(line)
