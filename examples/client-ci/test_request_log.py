"""The request log shows what our code sent, and only this test's requests."""

from __future__ import annotations

from typing import Any

import pytest

from pollable.testing import Sandbox

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
LEFT: dict[str, Any] = {}


def test_the_log_shows_what_our_code_sent(pollable: Sandbox) -> None:
    client = pollable.crosmos()
    job_id = client.sources.ingest(space_id=SPACE_ID, sources=[{"content": "logged"}]).job_id
    client.jobs.get_status(job_id)
    client.jobs.get_status(job_id)
    entries = pollable.requests(job_id=job_id)
    assert sorted(entry["method"] for entry in entries) == ["GET", "GET", "POST"]
    assert len(pollable.requests(job_id=job_id, method="GET")) == 2
    assert all(pollable.crosmos_key not in repr(entry) for entry in entries), "keys are redacted"
    LEFT["job"] = job_id


def test_the_next_test_has_its_own_log(pollable: Sandbox) -> None:
    if "job" not in LEFT:
        pytest.skip("runs after test_the_log_shows_what_our_code_sent, in the same process")
    assert pollable.requests(job_id=LEFT["job"]) == []


def test_reset_clears_the_log(pollable: Sandbox) -> None:
    client = pollable.crosmos()
    job_id = client.sources.ingest(space_id=SPACE_ID, sources=[{"content": "logged"}]).job_id
    assert pollable.requests(job_id=job_id)
    pollable.reset()
    assert pollable.requests(job_id=job_id) == []
