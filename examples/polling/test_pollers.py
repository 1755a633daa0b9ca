"""The two pollers against the plugin's in-process sandbox, on the test's clock (their
``wait`` moves it), graded by the polling report.

``POLLING_REPORTS=DIR pytest`` also writes the report each gets to
``DIR/polite.report.txt`` and ``DIR/impolite.report.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import impolite
import polite
import pytest

from pollable.testing import Sandbox
from pollable.testing.client import describe_polling

CREATE = "index_s3bucket_v2"
READ = "get_job_status_v2"
KINDS = (
    "early_poll",
    "poll_after_terminal",
    "no_backoff",
    "retry_without_idempotency_key",
    "cursor_not_followed",
    "gave_up",
)


def keep(name: str, report: dict[str, Any]) -> None:
    directory = os.environ.get("POLLING_REPORTS")
    if directory:
        Path(directory, f"{name}.report.txt").write_text(describe_polling(report) + "\n")


def advance(pollable: Sandbox) -> Any:
    return lambda seconds: pollable.clock.advance(seconds=seconds)


def test_the_polite_poller_gets_no_finding(pollable: Sandbox) -> None:
    # A 429 on its create and a 503 on a poll: the SDK waits their Retry-After (one real
    # second each) and retries; the create's retry carries the same Idempotency-Key.
    pollable.fault(status=429, retry_after=1, operation=CREATE, times=1)
    pollable.fault(status=503, retry_after=1, operation=READ, times=1)
    uris = polite.index_and_wait(pollable.captain(), files=60, wait=advance(pollable))
    assert len(set(uris)) == 60
    report = pollable.assert_polite_polling()
    keep("polite", report)
    assert [e["status"] for e in reversed(pollable.requests(status=429))] == [429]
    assert [e["status"] for e in reversed(pollable.requests(status=503))] == [503]
    (client,) = report["clients"]
    assert client["client"].startswith("captain-sdk/") and client["polls"] >= 2


def impolite_run(pollable: Sandbox) -> dict[str, Any]:
    # A 429 on its first create: the poller tries again at once, without a key.
    pollable.fault(status=429, retry_after=1, operation=CREATE, times=1)
    client = pollable.captain()
    assert impolite.index_and_wait(client, files=3, max_polls=2, wait=advance(pollable)) == []
    uris = impolite.index_and_wait(client, files=60, wait=advance(pollable))
    assert len(uris) == 50  # the first page only
    return pollable.polling_report()


def test_the_impolite_poller_is_flagged_for_every_kind(pollable: Sandbox) -> None:
    report = impolite_run(pollable)
    keep("impolite", report)
    found = report["findings"]
    assert {kind: found[kind] >= 1 for kind in KINDS} == dict.fromkeys(KINDS, True)
    with pytest.raises(AssertionError, match="impolite polling"):
        pollable.assert_polite_polling()
