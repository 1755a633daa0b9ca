"""The dashboard at size, on SQLite: a 100,000-file job's page and a 100,000-entry log's
pages read one page each (the control plane's keyset pages), never the whole. Each page is
timed (the median of a few reads, written to ``artifacts/scale.txt``) and held to a bound
far above what it takes, so a page that loaded everything would fail."""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pollable.server.settings import Settings
from pollable.store.base import LoggedMessage, RequestEntry
from tests.conftest import Api, Tenant, start, store_url
from tests.dashboard.pages import bearer, sign_in

N = 100_000
#: Far above a page's time here (tens of milliseconds), far below reading 100,000 rows.
BOUND_SECONDS = 1.0
REPORT = Path(__file__).resolve().parents[2] / "artifacts" / "scale.txt"
BUCKET = {
    "bucket_name": "acme-docs", "processing_type": "basic", "max_files": N,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture
def api(tmp_path: Any) -> Any:
    settings = Settings(store=store_url("sqlite", tmp_path), log_max_entries=2 * N)
    yield from start(settings)


def timed(read: Callable[[], Any], times: int = 5) -> tuple[float, Any]:
    """The median seconds of ``times`` calls of ``read``, and its last answer."""
    spent, answer = [], None
    for _ in range(times):
        started = time.perf_counter()
        answer = read()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent), answer


def record(line: str) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as out:
        out.write(line + "\n")
    print(line)


def test_a_job_of_100000_files(api: Api, acme: Tenant) -> None:
    made = api.client.post("/v2/collections/docs/index/s3", json=BUCKET, headers=acme.captain)
    assert made.status_code == 202, made.text
    job_id = made.json()["job_id"]
    api.clock.advance(3600 * 24)  # well into processing: files in every state
    sign_in(api.client, bearer(acme.crosmos))
    seconds, page = timed(lambda: api.client.get(f"/dashboard/jobs/{job_id}"))
    assert page.status_code == 200 and f"of {N}" in page.text
    assert page.text.count("<td><code>s3://acme-docs/") == 50  # one page of files
    cursor = re.search(r"items_cursor=([^\"&]+)", page.text)
    assert cursor is not None
    later, second = timed(
        lambda: api.client.get(f"/dashboard/jobs/{job_id}?items_cursor={cursor[1]}")
    )
    assert second.status_code == 200 and second.text.count("<td><code>s3://") == 50
    listing, jobs = timed(lambda: api.client.get("/dashboard/jobs"))
    assert jobs.status_code == 200 and job_id in jobs.text
    record(
        f"{N} files (sqlite): job page {seconds * 1000:.1f} ms, its next files page "
        f"{later * 1000:.1f} ms, job list {listing * 1000:.1f} ms"
    )
    assert max(seconds, later, listing) < BOUND_SECONDS


def test_a_log_of_100000_entries(api: Api, acme: Tenant) -> None:
    store, start_at = api.services.store, time.time() - N
    for first in range(0, N, 10_000):
        batch = [
            RequestEntry(
                id=f"req_{uuid.uuid4().hex[:24]}", tenant_id=acme.tenant.id,
                at=start_at + i, method="GET", path=f"/v2/jobs/job-{i % 50}", query="",
                status=200 if i % 7 else 429, duration_ms=1.0,
                request=LoggedMessage({"user-agent": "scale"}),
                response=LoggedMessage({"content-type": "application/json"}, '{"ok": 1}', 9),
                api="captain", job_id=f"job-{i % 50}",
            )
            for i in range(first, first + 10_000)
        ]  # fmt: skip
        api.run(store.append_requests, batch)
    count = api.client.get("/sandbox/v1/requests/count", headers=acme.crosmos).json()["count"]
    assert count >= N
    sign_in(api.client, bearer(acme.crosmos))
    newest, page = timed(lambda: api.client.get("/dashboard/requests"))
    assert page.status_code == 200 and page.text.count("<tr><td>") == 50
    cursor = re.search(r"cursor=([^\"&]+)", page.text)
    assert cursor is not None
    older, second = timed(lambda: api.client.get(f"/dashboard/requests?cursor={cursor[1]}"))
    assert second.status_code == 200 and second.text.count("<tr><td>") == 50
    filtered, rare = timed(lambda: api.client.get("/dashboard/requests?status=429&job_id=job-7"))
    assert rare.status_code == 200 and rare.text.count("<tr><td>") == 50
    record(
        f"{count} log entries (sqlite): newest page {newest * 1000:.1f} ms, an older page "
        f"{older * 1000:.1f} ms, filtered (status, job) {filtered * 1000:.1f} ms"
    )
    assert max(newest, older, filtered) < BOUND_SECONDS
