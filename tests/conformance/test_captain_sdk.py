"""The official Captain SDK (``captain-sdk==0.1.1``, module ``runcaptain``) against a live
server on a real socket: index URLs and a bucket, poll every job to its end, magic values
that fail files and buckets, cancellation, and the SDK's errors.

The SDK's models accept unknown fields and any enum value, so on top of "every response
parses", each parsed response is checked to carry no field the SDK does not know and only
the status, stage and file-status values it lists."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pydantic
import pytest
import runcaptain
from runcaptain.core.api_error import ApiError
from runcaptain.types import (
    FileStatus,
    IndexJobResponseV2,
    JobCancelResponseV2,
    JobStatusResponseV2,
)
from runcaptain.types.file_status_status import FileStatusStatus
from runcaptain.types.job_progress_current_stage import JobProgressCurrentStage
from runcaptain.types.job_status import JobStatus

from tests.conformance.live import LiveServer, Servers, Tenant, poll, provision

TERMINAL = {"completed", "completed_with_failures", "failed", "cancelled"}
JOB_STATUSES = set(typing.get_args(typing.get_args(JobStatus)[0]))
FILE_STATUSES = set(typing.get_args(typing.get_args(FileStatusStatus)[0]))
STAGES = set(typing.get_args(typing.get_args(JobProgressCurrentStage)[0]))
#: Shape-valid, obviously fake AWS credentials.
AWS_KEY_ID = "AKIA" + "FAKEPOLLABLE0001"
AWS_SECRET = "pollable/FAKE/secret/" + "x" * 19


@dataclass(frozen=True)
class Live:
    server: LiveServer
    acme: Tenant

    def client(self, *, key: str | None = None, organization: str | None = None) -> Any:
        return runcaptain.Captain(
            base_url=self.server.url,
            organization_id=organization or self.acme.organization_id,
            key=key or self.acme.captain_key,
            timeout=10.0,
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("captain-sdk")
    db_url = f"sqlite:///{directory}/live.db"
    acme = provision(db_url, "acme")["acme"]
    servers = Servers(directory)
    try:
        yield Live(servers.start(db_url), acme)
    finally:
        servers.stop_all()


def options(scenario: str | None = None) -> Any:
    """Request options: no retries (a 5xx must surface), and a scenario if asked for."""
    headers = {"Prefer": f"scenario={scenario}"} if scenario else {}
    return {"max_retries": 0, "additional_headers": headers}


# -- strict parsing -------------------------------------------------------------------------


def strictly(model: pydantic.BaseModel) -> None:
    """No field the SDK does not declare, at any depth."""
    extra = model.model_extra or {}
    assert not extra, f"{type(model).__name__} has fields the SDK does not know: {sorted(extra)}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, pydantic.BaseModel):
                strictly(item)


def check_status(job: JobStatusResponseV2) -> None:
    strictly(job)
    assert job.status in JOB_STATUSES
    assert job.progress is not None and job.files is not None and job.files_page is not None
    stage = job.progress.current_stage
    assert stage is None or stage in STAGES
    assert all(f.status in FILE_STATUSES for f in job.files)
    assert len(job.files) <= job.files_page.limit
    if job.status in TERMINAL:
        assert job.completed_at is not None
        assert job.estimated_time_remaining_seconds in (None, 0)
    if job.status in ("completed", "completed_with_failures"):
        assert job.billing is not None
    else:
        assert job.billing is None


def wait_for_end(client: Any, job_id: str, *, timeout: float = 30.0) -> JobStatusResponseV2:
    """Poll ``get_job_status_v2`` to a terminal status; every reply parses, strictly."""
    seen: list[str] = []

    def read() -> JobStatusResponseV2:
        job = client.jobs.get_job_status_v2(job_id, request_options=options())
        check_status(job)
        seen.append(job.status)
        return job

    job = poll(read, lambda j: j.status in TERMINAL, timeout=timeout)
    ranks = [{"pending": 0, "running": 1}.get(status, 2) for status in seen]
    assert ranks == sorted(ranks), seen
    return job


def index_urls(client: Any, collection: str, urls: list[str], scenario: str | None) -> str:
    raw = client.indexing.with_raw_response.index_url_v2(
        collection, processing_type="basic", urls=urls, request_options=options(scenario)
    )
    assert raw.status_code == 202
    accepted: IndexJobResponseV2 = raw.data
    strictly(accepted)
    assert accepted.status == "pending"
    applied = raw.headers.get("preference-applied")
    assert applied == (f"scenario={scenario}" if scenario else None)
    return accepted.job_id


def all_files(client: Any, job_id: str) -> list[FileStatus]:
    job = client.jobs.get_job_status_v2(job_id, request_options=options())
    return list(job.files or [])


# -- the tests --------------------------------------------------------------------------------


def test_index_urls_happy(live: Live) -> None:
    client = live.client()
    urls = ["https://example.com/annual-report.pdf", "https://example.com/board/minutes.docx"]
    job_id = index_urls(client, "sdk-urls", urls, "happy")
    job = wait_for_end(client, job_id)
    assert job.status == "completed"
    assert job.job_id == job_id and job.collection_name == "sdk-urls"
    assert job.job_type == "index_url"
    assert job.progress is not None and job.progress.files_total == 2
    assert job.error_code is None and job.error_message is None
    assert sorted(f.uri for f in job.files or []) == sorted(urls)
    assert {f.status for f in job.files or []} == {"completed"}
    assert job.result is not None and job.result.files_indexed == 2
    assert job.billing is not None and job.billing.pages_processed >= 2
    assert job.billing.processing_type == "basic"


def test_corrupt_file_completes_with_failures(live: Live) -> None:
    client = live.client()
    urls = [
        "https://example.com/a.pdf",
        "https://example.com/scans/corrupt-contract.pdf",
        "https://example.com/b.md",
    ]
    job = wait_for_end(client, index_urls(client, "sdk-corrupt", urls, None))
    assert job.status == "completed_with_failures"
    files = {f.uri: f for f in job.files or []}
    corrupt = files["https://example.com/scans/corrupt-contract.pdf"]
    assert corrupt.status == "failed"
    assert corrupt.error_code == "file_corrupt" and corrupt.error_message
    assert {files[u].status for u in urls if "corrupt" not in u} == {"completed"}
    assert job.result is not None
    assert (job.result.files_indexed, job.result.files_failed) == (2, 1)
    assert job.billing is not None


def test_index_s3_bucket(live: Live) -> None:
    client = live.client()
    raw = client.indexing.with_raw_response.index_s3bucket_v2(
        "sdk-s3",
        bucket_name="acme-archive",
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        bucket_region="eu-west-1",
        processing_type="advanced",
        max_files=12,
        request_options=options("happy"),
    )
    assert raw.status_code == 202
    assert raw.headers["preference-applied"] == "scenario=happy"
    job = wait_for_end(client, raw.data.job_id)
    assert job.status == "completed"
    assert job.job_type == "index_s3"
    assert job.progress is not None and job.progress.files_total == 12
    assert job.files is not None and len(job.files) == 12
    assert all(f.uri.startswith("s3://acme-archive/") for f in job.files)
    assert {f.status for f in job.files} <= {"completed", "skipped"}
    assert job.billing is not None and job.billing.processing_type == "advanced"
    # No credential comes back, in any form.
    for shown in (raw.data.model_dump_json(), job.model_dump_json(), str(raw.headers)):
        assert AWS_SECRET not in shown and AWS_KEY_ID not in shown


def test_denied_bucket_fails_at_scanning(live: Live) -> None:
    client = live.client()
    accepted = client.indexing.index_s3bucket_v2(
        "sdk-denied",
        bucket_name="acme-private-denied",
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        processing_type="basic",
        max_files=5,
        request_options=options(),
    )
    job = wait_for_end(client, accepted.job_id)
    assert job.status == "failed"
    assert job.error_code == "bucket_access_denied"
    assert job.error_message and "acme-private-denied" in job.error_message
    assert job.progress is not None and job.progress.current_stage == "scanning"
    assert job.billing is None


def test_cancel_a_running_job(live: Live) -> None:
    client = live.client()
    accepted = client.indexing.index_s3bucket_v2(
        "sdk-cancel",
        bucket_name="acme-big",
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        processing_type="basic",
        max_files=200,
        request_options=options("slow"),
    )
    job_id = accepted.job_id

    def read() -> JobStatusResponseV2:
        job = client.jobs.get_job_status_v2(job_id, request_options=options())
        check_status(job)
        return job

    running = poll(read, lambda j: j.status != "pending", timeout=10.0)
    assert running.status == "running", "a slow 200-file job is still running"

    first = client.jobs.cancel_job_v2(job_id, request_options=options())
    strictly(first)
    assert isinstance(first, JobCancelResponseV2)
    assert (first.job_id, first.status) == (job_id, "cancelled")
    assert first.cancelled_at is not None

    again = client.jobs.cancel_job_v2(job_id, request_options=options())
    strictly(again)
    assert (again.job_id, again.status, again.cancelled_at) == (
        job_id,
        "cancelled",
        first.cancelled_at,
    )

    job = read()
    assert job.status == "cancelled"
    assert job.cancelled_by and job.cancelled_at is not None
    assert job.progress is not None and job.progress.current_stage == "cancelled"
    statuses = {f.status for f in job.files or []}
    assert "cancelled" in statuses
    assert statuses.isdisjoint({"queued", "processing"}), statuses
    assert job.billing is None


def test_cancel_a_finished_job_changes_nothing(live: Live) -> None:
    client = live.client()
    job = wait_for_end(
        client, index_urls(client, "sdk-done", ["https://example.com/x.pdf"], "instant")
    )
    assert job.status == "completed"
    answer = client.jobs.cancel_job_v2(job.job_id, request_options=options())
    strictly(answer)
    assert (answer.status, answer.cancelled_at) == ("completed", None)
    assert wait_for_end(client, job.job_id).status == "completed"


def test_unknown_job_is_not_found(live: Live) -> None:
    client = live.client()
    for job_id in (str(uuid.uuid4()), "job_s3_abc123"):
        with pytest.raises(runcaptain.NotFoundError) as caught:
            client.jobs.get_job_status_v2(job_id, request_options=options())
        assert caught.value.body == {"detail": "Job not found"}
        # The SDK maps 404 to NotFoundError for GET only; cancel raises its generic error.
        with pytest.raises(ApiError) as cancel:
            client.jobs.cancel_job_v2(job_id, request_options=options())
        assert (cancel.value.status_code, cancel.value.body) == (404, {"detail": "Job not found"})


def test_bad_key_and_wrong_organization(live: Live) -> None:
    job_id = index_urls(live.client(), "sdk-auth", ["https://example.com/y.pdf"], None)
    with pytest.raises(ApiError) as caught:
        live.client(key="cap_dev_" + "x" * 43).jobs.get_job_status_v2(
            job_id, request_options=options()
        )
    assert caught.value.status_code == 401
    with pytest.raises(ApiError) as caught:
        live.client(key=live.acme.crosmos_key).jobs.get_job_status_v2(
            job_id, request_options=options()
        )
    assert caught.value.status_code == 401
    with pytest.raises(ApiError) as caught:
        live.client(organization=str(uuid.uuid4())).jobs.get_job_status_v2(
            job_id, request_options=options()
        )
    assert caught.value.status_code == 403
