"""``examples/client-ci``, a client team's suite on the pytest plugin, run against pollable:
every test passes, none sleeps, none takes more than 0.3 s (its tenant, clock and keys
included).

The README's example test is run the same way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import crosmos  # noqa: F401
import httpcore  # noqa: F401
import pytest
import runcaptain  # noqa: F401

from pollable.testing.plugin import SandboxServer

pytest_plugins = ("pytester",)

# The inner runs are in-process: what they import first is forgotten after each run (see
# tests/testing/test_plugin.py), and a first import would count against a test's budget.
# The SDKs and httpcore are imported here, once.

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "client-ci"
MODULES = (
    "test_captain_jobs.py",
    "test_crosmos_jobs.py",
    "test_isolation.py",
    "test_request_log.py",
)
#: Seconds a test may take, setup and teardown of its sandbox included.
BUDGET = 0.3


def test_every_module_is_run() -> None:
    assert {path.name for path in EXAMPLE.glob("test_*.py")} == set(MODULES)


def test_no_test_sleeps() -> None:
    for path in EXAMPLE.glob("test_*.py"):
        names = {
            node.attr if isinstance(node, ast.Attribute) else node.id
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute | ast.Name)
        }
        assert "sleep" not in names, path.name


@pytest.mark.parametrize("module", MODULES)
def test_the_example_passes_in_time(
    module: str,
    pytester: pytest.Pytester,
    pollable_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The session's server, already started: its start-up is no test's cost.
    monkeypatch.setenv("POLLABLE_URL", pollable_server.url)
    monkeypatch.setenv("POLLABLE_ADMIN_TOKEN", pollable_server.admin_token)
    recorded = pytester.inline_run(
        str(EXAMPLE / module),
        "-c", str(EXAMPLE / "pytest.ini"), "--rootdir", str(EXAMPLE), "-p", "no:cacheprovider",
    )  # fmt: skip
    passed, skipped, failed = recorded.listoutcomes()
    assert not failed, [report.longreprtext for report in failed]
    assert passed and not skipped

    spent: dict[str, float] = {}
    for report in recorded.getreports("pytest_runtest_logreport"):
        spent[report.nodeid] = spent.get(report.nodeid, 0.0) + report.duration
    slow = {test: round(seconds, 3) for test, seconds in spent.items() if seconds > BUDGET}
    assert not slow, f"over {BUDGET}s: {slow}"


def readme_test() -> str:
    """The README's example test: the Python block of "Contract tests in CI"."""
    section = (ROOT / "README.md").read_text().split("## Contract tests in CI", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_passes(
    pytester: pytest.Pytester, pollable_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ast.parse(readme_test())
    monkeypatch.setenv("POLLABLE_URL", pollable_server.url)
    monkeypatch.setenv("POLLABLE_ADMIN_TOKEN", pollable_server.admin_token)
    pytester.makepyfile(readme_test())
    pytester.runpytest().assert_outcomes(passed=1)
