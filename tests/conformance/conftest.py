"""Fixtures of the cross-cutting conformance suite: live servers on real sockets, SQLite
files provisioned before start-up, and the tally of what Schemathesis sent."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.live import Servers, Tenant, provision

#: Requests Schemathesis sent, by (api, backend, "phase/mode"), and the statuses it got
#: (api, backend, "status NNN"); printed after the run.
CASE_COUNTS: collections.Counter[tuple[str, str, str]] = collections.Counter()


@pytest.fixture
def case_counts() -> collections.Counter[tuple[str, str, str]]:
    return CASE_COUNTS


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
    if not CASE_COUNTS:
        return
    terminalreporter.section("Schemathesis requests per API and backend")
    by_target: dict[tuple[str, str], dict[str, int]] = collections.defaultdict(dict)
    statuses: dict[tuple[str, str], dict[str, int]] = collections.defaultdict(dict)
    for (api, backend, kind), count in sorted(CASE_COUNTS.items()):
        if kind.startswith("status "):
            statuses[(api, backend)][kind.removeprefix("status ")] = count
        else:
            by_target[(api, backend)][kind] = count
    for (api, backend), kinds in sorted(by_target.items()):
        detail = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(statuses[(api, backend)].items()))
        terminalreporter.write_line(f"{api:8} {backend:7} {sum(kinds.values()):6}  ({detail})")
        terminalreporter.write_line(f"{'':16} {'':6}  answers {answers}")
