"""``examples/polling``, a polite and an impolite poller on the official Captain SDK, run
against pollable by its own ``test_pollers.py``: the polite one gets no finding, the
impolite one every kind of finding."""

from __future__ import annotations

import crosmos  # noqa: F401
import httpcore  # noqa: F401
import pytest
import runcaptain  # noqa: F401

from pollable.testing.plugin import SandboxServer
from tests.examples.test_client_ci import ROOT

pytest_plugins = ("pytester",)

EXAMPLE = ROOT / "examples" / "polling"


def test_the_pollers_are_graded_as_their_readme_says(
    pytester: pytest.Pytester, pollable_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLABLE_URL", pollable_server.url)
    monkeypatch.setenv("POLLABLE_ADMIN_TOKEN", pollable_server.admin_token)
    monkeypatch.delenv("POLLING_REPORTS", raising=False)
    recorded = pytester.inline_run(
        str(EXAMPLE / "test_pollers.py"),
        "-c", str(EXAMPLE / "pytest.ini"), "--rootdir", str(EXAMPLE), "-p", "no:cacheprovider",
    )  # fmt: skip
    passed, skipped, failed = recorded.listoutcomes()
    assert not failed, [report.longreprtext for report in failed]
    assert sorted(str(report.head_line) for report in passed) == [
        "test_the_impolite_poller_is_flagged_for_every_kind",
        "test_the_polite_poller_gets_no_finding",
    ]
    assert not skipped, [report.head_line for report in skipped]


def test_the_saved_reports_are_the_pollers() -> None:
    polite = (EXAMPLE / "polite.report.txt").read_text()
    impolite = (EXAMPLE / "impolite.report.txt").read_text()
    assert "no findings" in polite and "early_poll" not in polite
    for kind in ("early_poll", "poll_after_terminal", "no_backoff",
                 "retry_without_idempotency_key", "cursor_not_followed", "gave_up"):  # fmt: skip
        assert f"  {kind}  req_" in impolite
