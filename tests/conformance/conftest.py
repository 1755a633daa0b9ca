"""Fixtures of the cross-cutting conformance suite: live servers on real sockets, SQLite
files provisioned before start-up, and the summary of the Schemathesis runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.live import Servers, Tenant, provision

#: One line per Schemathesis run (contract, backend, seed, cases, failures, time); printed
#: after the session.
SCHEMATHESIS_RUNS: list[str] = []


@pytest.fixture
def schemathesis_runs() -> list[str]:
    """The summary lines; a fixture, so tests append to the list this conftest prints."""
    return SCHEMATHESIS_RUNS


@pytest.fixture
def db_url(tmp_path: Path) -> str:
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
    if not SCHEMATHESIS_RUNS:
        return
    terminalreporter.section("Schemathesis runs (st run, schemathesis.toml)")
    for line in SCHEMATHESIS_RUNS:
        terminalreporter.write_line(line)
