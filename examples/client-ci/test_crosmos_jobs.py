"""Our Crosmos integration: ingest sources or a conversation, then follow the job through
every status it can reach (pending, processing, completed, partial, failed, cancelled)."""

from __future__ import annotations

import crosmos
import pytest
from crosmos.types.source_ingest_params import Source

from pollable.testing import Sandbox

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
SOURCES: list[Source] = [
    {"content": "Ada Lovelace wrote the first published computer program.", "content_type": "text"},
    {"content": "# Notes\n\nBabbage designed the Analytical Engine.", "content_type": "markdown"},
    {"content": "Grace Hopper popularised machine-independent languages."},
]


def ingest(client: crosmos.Crosmos, scenario: str | None = None) -> str:
    headers = {"Prefer": f"scenario={scenario}"} if scenario else None
    return client.sources.ingest(space_id=SPACE_ID, sources=SOURCES, extra_headers=headers).job_id


def test_a_job_walks_pending_processing_completed(pollable: Sandbox) -> None:
    client = pollable.crosmos()
    job_id = ingest(client)

    job = client.jobs.get_status(job_id)
    assert job.status == "pending" and job.started_at is None

    pollable.clock.advance(until=(job_id, "processing"))
    job = client.jobs.get_status(job_id)
    assert job.status == "processing"
    assert job.started_at is not None and job.completed_at is None

    pollable.clock.advance(until=(job_id, "completed"))
    job = client.jobs.get_status(job_id)
    assert job.status == "completed"
    assert job.completed_at is not None and job.result is not None
    assert sorted(job.result.source_ids) == sorted(job.source_ids)
    assert job.result.failed_source_ids == []


def test_a_frozen_clock_keeps_a_job_where_it_is(pollable: Sandbox) -> None:
    client = pollable.crosmos()
    job_id = ingest(client)
    for _ in range(3):
        assert client.jobs.get_status(job_id).status == "pending"
    # Nothing moves unless the test moves it; a job stuck in the queue stays there.
    stuck = ingest(client, "stuck_pending")
    pollable.clock.advance(seconds=24 * 3600)
    assert client.jobs.get_status(stuck).status == "pending"
    assert client.jobs.get_status(job_id).status == "completed"


@pytest.mark.parametrize(
    ("scenario", "status"),
    [("partial", "partial"), ("failed", "failed"), ("cancelled", "cancelled")],
)
def test_every_other_ending(pollable: Sandbox, scenario: str, status: str) -> None:
    client = pollable.crosmos()
    job_id = ingest(client, scenario)
    pollable.clock.advance(until=(job_id, status))
    job = client.jobs.get_status(job_id)
    assert job.status == status
    if status == "partial":
        assert job.result is not None and job.result.failed_source_ids
    if status == "failed":
        assert job.error_message


def test_a_conversation_is_one_source(pollable: Sandbox) -> None:
    client = pollable.crosmos()
    accepted = client.conversations.ingest(
        space_id=SPACE_ID,
        messages=[
            {"role": "user", "content": "I moved to Lisbon last spring."},
            {"role": "assistant", "content": "Noted: you live in Lisbon."},
        ],
        session_id="onboarding",
        session_date="2024-05-01",
    )
    pollable.clock.advance(until=(accepted.job_id, "completed"))
    job = client.jobs.get_status(accepted.job_id)
    # The job names its one source by the integer id Crosmos jobs use; the ingest reply
    # gave the source's UUID.
    assert job.status == "completed" and len(job.source_ids) == 1


def test_job_times_are_the_clocks(pollable: Sandbox) -> None:
    # A day ahead of real time, so that a job stamped with real time would show.
    tomorrow = pollable.clock.advance(seconds=24 * 3600)
    client = pollable.crosmos()
    job_id = ingest(client, "instant")
    job = client.jobs.get_status(job_id)
    assert job.status == "completed"
    assert abs((job.created_at - tomorrow).total_seconds()) < 1
    assert job.completed_at is not None and job.completed_at >= job.created_at


def test_an_unknown_job_is_not_found(pollable: Sandbox) -> None:
    with pytest.raises(crosmos.NotFoundError):
        pollable.crosmos().jobs.get_status("3b9d6d0e-0000-4000-8000-000000000000")
