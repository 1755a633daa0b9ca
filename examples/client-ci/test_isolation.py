"""Nothing leaks between tests: the jobs one test made are 404 in the next, and its clock and
keys are not the next one's. ``reset()`` starts a test over. (The tests run in file order,
as pytest runs them; under pytest-xdist use ``--dist loadfile``.)"""

from __future__ import annotations

from typing import Any

import crosmos
import pytest
import runcaptain

from pollable.testing import Sandbox

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
#: What the first test left behind, for the second to look for.
LEFT: dict[str, Any] = {}


def make_jobs(pollable: Sandbox) -> tuple[str, str]:
    crosmos_job = (
        pollable.crosmos()
        .sources.ingest(space_id=SPACE_ID, sources=[{"content": "left behind"}])
        .job_id
    )
    captain_job = (
        pollable.captain()
        .indexing.index_url_v2(
            "leaks",
            processing_type="basic",
            urls=["https://example.com/left-behind.pdf"],
            request_options={"max_retries": 0},
        )
        .job_id
    )
    return crosmos_job, captain_job


def test_one_leaves_jobs_behind(pollable: Sandbox) -> None:
    LEFT["jobs"] = make_jobs(pollable)
    LEFT["clock"] = pollable.clock.id
    LEFT["keys"] = dict(pollable.keys)
    pollable.clock.advance(until=(LEFT["jobs"][0], "completed"))


def test_the_next_sees_none_of_them(pollable: Sandbox) -> None:
    if "jobs" not in LEFT:
        pytest.skip("runs after test_one_leaves_jobs_behind, in the same process")
    crosmos_job, captain_job = LEFT["jobs"]
    with pytest.raises(crosmos.NotFoundError):
        pollable.crosmos().jobs.get_status(crosmos_job)
    with pytest.raises(runcaptain.NotFoundError):
        pollable.captain().jobs.get_job_status_v2(captain_job, request_options={"max_retries": 0})
    assert pollable.clock.id != LEFT["clock"]
    assert set(pollable.keys.values()).isdisjoint(LEFT["keys"].values())
    # The previous test's keys went with its tenant.
    stale = crosmos.Crosmos(
        api_key=LEFT["keys"]["crosmos"], base_url=pollable.base_url, max_retries=0
    )
    with pytest.raises(crosmos.AuthenticationError):
        stale.jobs.get_status(crosmos_job)


def test_reset_starts_a_test_over(pollable: Sandbox) -> None:
    crosmos_job, captain_job = make_jobs(pollable)
    pollable.reset()
    with pytest.raises(crosmos.NotFoundError):
        pollable.crosmos().jobs.get_status(crosmos_job)
    with pytest.raises(runcaptain.NotFoundError):
        pollable.captain().jobs.get_job_status_v2(captain_job, request_options={"max_retries": 0})
    # New jobs run on the fresh clock.
    fresh = pollable.crosmos().sources.ingest(space_id=SPACE_ID, sources=[{"content": "again"}])
    pollable.clock.advance(until=(fresh.job_id, "completed"))
    assert pollable.crosmos().jobs.get_status(fresh.job_id).status == "completed"
