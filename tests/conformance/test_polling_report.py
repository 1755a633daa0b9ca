"""The polling report end to end: the official SDKs against the plugin's in-process server,
each test in its own tenant on its own clock, graded by ``pollable.assert_polite_polling``.

A polite poller (waits ``Retry-After`` on the job's clock, reads every page, stops at a
terminal status, sends an ``Idempotency-Key``) gets no finding; an impolite one gets each
finding the log can show today. Findings that need ``Retry-After`` on job reads (``early_poll``)
are asserted in ``test_polling_report_retry_after.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

import crosmos
import httpx
import pytest
import runcaptain
from runcaptain.core.request_options import RequestOptions

from pollable.testing import Sandbox

AWS = {"aws_access_key_id": "AKIA" + "FAKEREPORTING001", "aws_secret_access_key": "f/" + "x" * 38}
#: A clock step when an answer gives no Retry-After (before the polling headers exist).
STEP = 5.0
SPACE_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def options(**query: Any) -> RequestOptions:
    return {"max_retries": 0, "additional_query_parameters": query}


def index_bucket(client: runcaptain.Captain, files: int, **headers: str) -> str:
    accepted = client.indexing.index_s3bucket_v2(
        "report", bucket_name="acme-archive", processing_type="basic", max_files=files,
        request_options={"max_retries": 0, "additional_headers": headers}, **AWS,
    )  # fmt: skip
    return str(accepted.job_id)


def retry_after(headers: Any) -> float:
    value = headers.get("retry-after")
    return float(value) if value else STEP


def poll_politely(pollable: Sandbox, client: runcaptain.Captain, job_id: str) -> list[str]:
    """Poll until terminal, moving the clock by each answer's Retry-After; then read every
    page of files. Answers the files' URIs."""
    while True:
        answer = client.jobs.with_raw_response.get_job_status_v2(job_id, request_options=options())
        job = answer.data
        if job.status in ("completed", "completed_with_failures", "failed", "cancelled"):
            break
        pollable.clock.advance(seconds=retry_after(answer.headers))
    uris = [f.uri for f in job.files or ()]
    cursor = job.files_page.next_cursor if job.files_page else None
    while cursor:
        page = client.jobs.get_job_status_v2(job_id, request_options=options(files_cursor=cursor))
        uris += [f.uri for f in page.files or ()]
        cursor = page.files_page.next_cursor if page.files_page else None
    return uris


def test_a_polite_captain_poller_gets_no_finding(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=120, **{"Idempotency-Key": str(uuid.uuid4())})
    assert len(set(poll_politely(pollable, client, job_id))) == 120
    report = pollable.assert_polite_polling()
    (seen,) = report["clients"]
    assert seen["client"].startswith("captain-sdk/") and seen["polls"] >= 2


def test_a_polite_crosmos_poller_gets_no_finding(pollable: Sandbox) -> None:
    client = pollable.crosmos(max_retries=0)
    job_id = client.sources.ingest(space_id=SPACE_ID, sources=[{"content": "Ada."}]).job_id
    while True:
        answer = client.jobs.with_raw_response.get_status(job_id)
        if answer.parse().status in ("completed", "partial", "failed", "cancelled"):
            break
        pollable.clock.advance(seconds=retry_after(answer.headers))
    report = pollable.assert_polite_polling()
    assert report["clients"][0]["client"].endswith("(stainless, python)")


def test_an_impolite_poller_is_flagged(pollable: Sandbox) -> None:
    client = pollable.captain()
    abandoned, finished = index_bucket(client, files=3), index_bucket(client, files=120)
    client.jobs.get_job_status_v2(abandoned, request_options=options())  # and never again
    pollable.clock.advance(until=(finished, "completed"))
    ended = client.jobs.with_raw_response.get_job_status_v2(finished, request_options=options())
    assert ended.data.status == "completed" and ended.data.files_page.next_cursor
    for _ in range(3):  # after it ended, and never reading its files' next page
        client.jobs.get_job_status_v2(finished, request_options=options())
    # A create that says it is a retry, without the Idempotency-Key the contract offers.
    retried = httpx.post(
        f"{pollable.base_url}/v2/collections/report/index/url",
        json={"url": "https://example.com/a.pdf", "processing_type": "basic"},
        headers={
            "Authorization": f"Bearer {pollable.captain_key}",
            "X-Organization-ID": pollable.organization_id,
            "User-Agent": "hand-rolled/1.0",
            "X-Stainless-Retry-Count": "1",
        },
    )
    assert retried.status_code == 202

    with pytest.raises(AssertionError) as failed:
        pollable.assert_polite_polling()
    message = str(failed.value)
    for kind in ("poll_after_terminal", "cursor_not_followed", "gave_up"):
        assert kind in message
    assert retried.headers["request-id"] in message
    assert "retry_without_idempotency_key" in message
    report = pollable.polling_report()
    assert report["findings"] == {
        "early_poll": 0,  # its polls were of a job that had ended: no Retry-After
        "poll_after_terminal": 3,
        "no_backoff": 0,
        "retry_without_idempotency_key": 1,
        "cursor_not_followed": 1,  # the abandoned job's 3 files fit on one page
        "gave_up": 1,
    }
    sdk = next(c for c in report["clients"] if c["client"].startswith("captain-sdk/"))
    flagged = {(e["kind"], e["job_id"]) for e in sdk["examples"]}
    assert ("gave_up", abandoned) in flagged and ("cursor_not_followed", finished) in flagged
    # Narrowed to one client, and to one job.
    assert (
        pollable.polling_report(client="hand-rolled/1.0")["findings"][
            "retry_without_idempotency_key"
        ]
        == 1
    )
    assert pollable.polling_report(job_id=abandoned)["findings"]["gave_up"] == 1


def test_the_assertion_names_the_clients_and_request_ids(pollable: Sandbox) -> None:
    client = pollable.crosmos(max_retries=0)
    job_id = client.sources.ingest(space_id=SPACE_ID, sources=[{"content": "Ada."}]).job_id
    answer = client.jobs.with_raw_response.get_status(job_id)
    with pytest.raises(AssertionError) as failed:
        pollable.assert_polite_polling()
    message = str(failed.value)
    assert "(stainless, python)" in message and answer.headers["request-id"] in message
    assert isinstance(client, crosmos.Crosmos)
