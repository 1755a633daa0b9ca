"""Our Captain integration: index URLs and an S3 bucket, follow each job through its statuses
(pending, running, completed, completed_with_failures, failed, cancelled) and its stages
(scanning, extracting, chunking, tagging, embedding, finalizing), and read its files page by
page."""

from __future__ import annotations

from typing import Any

import pytest
import runcaptain
from runcaptain.core.request_options import RequestOptions

from pollable.testing import Sandbox

#: Shape-valid, obviously fake credentials.
AWS = {
    "aws_access_key_id": "AKIA" + "FAKECLIENTCI0001",
    "aws_secret_access_key": "fake/" + "x" * 35,
}
STAGES = ("scanning", "extracting", "chunking", "tagging", "embedding", "finalizing")


def options(scenario: str | None = None, **query: Any) -> RequestOptions:
    """No retries (a retry would sleep), a scenario if asked for, extra query parameters."""
    headers = {"Prefer": f"scenario={scenario}"} if scenario else {}
    return {"max_retries": 0, "additional_headers": headers, "additional_query_parameters": query}


def index_bucket(client: runcaptain.Captain, files: int, scenario: str | None = None) -> str:
    accepted = client.indexing.index_s3bucket_v2(
        "client-ci", bucket_name="acme-archive", bucket_region="eu-west-1",
        processing_type="basic", max_files=files, request_options=options(scenario), **AWS,
    )  # fmt: skip
    return str(accepted.job_id)


def status(client: runcaptain.Captain, job_id: str, **query: Any) -> Any:
    return client.jobs.get_job_status_v2(job_id, request_options=options(**query))


def test_a_bucket_job_walks_every_status_and_stage(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=3)
    job = status(client, job_id)
    assert job.status == "pending" and job.progress.current_stage is None

    pollable.clock.advance(until=(job_id, "running"))
    assert status(client, job_id).status == "running"

    seen = []
    for stage in STAGES:
        pollable.clock.advance(until=(job_id, stage))
        job = status(client, job_id)
        assert job.status == "running"
        seen.append(job.progress.current_stage)
    assert seen == list(STAGES)

    pollable.clock.advance(until=(job_id, "completed"))
    job = status(client, job_id)
    assert job.status == "completed" and job.completed_at is not None
    assert job.progress.files_total == 3 and job.billing is not None
    assert {f.status for f in job.files} <= {"completed", "skipped"}


def test_a_url_job_completes(pollable: Sandbox) -> None:
    client = pollable.captain()
    urls = ["https://example.com/annual-report.pdf", "https://example.com/minutes.docx"]
    accepted = client.indexing.index_url_v2(
        "client-ci", processing_type="basic", urls=urls, request_options=options()
    )
    pollable.clock.advance(until=(accepted.job_id, "completed"))
    job = status(client, accepted.job_id)
    assert job.status == "completed" and sorted(f.uri for f in job.files) == sorted(urls)
    assert job.result is not None and job.result.files_indexed == 2


def test_a_corrupt_file_completes_with_failures(pollable: Sandbox) -> None:
    client = pollable.captain()
    urls = ["https://example.com/a.pdf", "https://example.com/scans/corrupt-contract.pdf"]
    accepted = client.indexing.index_url_v2(
        "client-ci", processing_type="basic", urls=urls, request_options=options()
    )
    pollable.clock.advance(until=(accepted.job_id, "completed_with_failures"))
    job = status(client, accepted.job_id)
    assert job.status == "completed_with_failures"
    failed = [f for f in job.files if f.status == "failed"]
    assert [f.uri for f in failed] == [urls[1]] and failed[0].error_code == "file_corrupt"


@pytest.mark.parametrize("stage", ["scanning", "embedding"])
def test_a_job_that_fails_at_a_stage(pollable: Sandbox, stage: str) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=2, scenario=f"fails_at_{stage}")
    pollable.clock.advance(until=(job_id, "failed"))
    job = status(client, job_id)
    assert job.status == "failed" and job.error_code == f"{stage}_failed"
    assert job.progress.current_stage == stage and job.billing is None


def test_we_cancel_a_running_job(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=20, scenario="slow")
    pollable.clock.advance(until=(job_id, "embedding"))
    cancelled = client.jobs.cancel_job_v2(job_id, request_options=options())
    assert cancelled.status == "cancelled"
    pollable.clock.advance(seconds=3600)  # nothing moves a cancelled job
    job = status(client, job_id)
    assert job.status == "cancelled" and job.progress.current_stage == "cancelled"
    assert "cancelled" in {f.status for f in job.files}


def test_the_system_cancels_a_job(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=4, scenario="cancelled")
    pollable.clock.advance(until=(job_id, "cancelled"))
    assert status(client, job_id).status == "cancelled"


def test_files_come_page_by_page(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=12)
    pollable.clock.advance(until=(job_id, "completed"))

    uris: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"files_limit": 5} | ({"files_cursor": cursor} if cursor else {})
        job = status(client, job_id, **query)
        assert len(job.files) <= 5 and job.files_page.limit == 5
        uris += [f.uri for f in job.files]
        pages += 1
        cursor = job.files_page.next_cursor
        if cursor is None:
            break
    assert pages == 3 and len(uris) == len(set(uris)) == 12


def test_an_unknown_job_is_not_found(pollable: Sandbox) -> None:
    with pytest.raises(runcaptain.NotFoundError):
        status(pollable.captain(), "0d3c2b1a-0000-4000-8000-000000000000")
