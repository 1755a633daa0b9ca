"""``lifecycle.timeline``: the picture of a job agrees with what a poll of it shows."""

from __future__ import annotations

import math

from hypothesis import given

from pollable.lifecycle.engine import in_stage, state_at
from pollable.lifecycle.model import Event, EventKind, Status
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.lifecycle.timeline import SAMPLES, timeline
from tests.lifecycle.test_engine import PROPERTY, scenes

T0 = 1_700_000_000.0


def job(scenario: str, n: int = 10):
    work = [Work(f"doc-{i}.pdf", 1) for i in range(n)]
    return plan_job(
        job_id="job-1", created_at=T0, scenario=CATALOGUE[scenario], work=work, seed="s"
    )


@PROPERTY
@given(scenes())
def test_the_timeline_agrees_with_state_at(scene):
    plan, _items, events, _times = scene
    line = timeline(plan, events)
    end = math.inf if line.ends_at is None else line.ends_at
    if line.ends_at is not None:
        assert state_at(plan, events, end).status is line.final_status
    for stage, moment in line.stages:
        assert in_stage(state_at(plan, events, moment), stage)
    moments = [t for t, _ in line.settling]
    assert moments == sorted(moments) and len(moments) <= SAMPLES
    for t, settled in line.settling:
        assert state_at(plan, events, t).settled == settled
    for phase in line.phases:
        assert phase.start <= (math.inf if phase.end is None else phase.end) <= end
    # A failure or cancel planned for never (after an endless queue) is not marked.
    ends = line.ends_at is not None
    assert (line.cancelled_at is not None) == (ends and line.final_status is Status.CANCELLED)
    assert (line.failed_at is not None) == (ends and line.final_status is Status.FAILED)


def test_a_happy_job_goes_through_every_phase_and_settles_every_item():
    plan, _ = job("happy")
    line = timeline(plan)
    assert [phase.name for phase in line.phases] == [
        "queue", "scanning", "processing", "finalizing",
    ]  # fmt: skip
    assert line.final_status is Status.COMPLETED and line.ends_at is not None
    assert line.settling[0][1] <= 1 and line.settling[-1] == (line.settling[-1][0], 10)
    assert [stage.value for stage, _ in line.stages] == [
        "scanning", "extracting", "chunking", "tagging", "embedding", "finalizing",
    ]  # fmt: skip


def test_a_cancel_cuts_the_timeline_and_says_who():
    plan, _ = job("slow")
    at = T0 + plan.timing.queue + plan.timing.scan + plan.timing.item_gap * 8
    line = timeline(plan, [Event(EventKind.CANCEL, at, "user-ada")])
    assert (line.final_status, line.cancelled_at, line.cancelled_by) == (
        Status.CANCELLED, at, "user-ada",
    )  # fmt: skip
    assert line.ends_at == at and line.phases[-1].end == at
    assert 0 < line.settling[-1][1] < 10


def test_a_failure_is_marked_at_its_stage():
    plan, _ = job("fails_at_tagging")
    line = timeline(plan)
    assert line.final_status is Status.FAILED
    assert line.failed_stage is not None and line.failed_stage.value == "tagging"
    assert line.failed_at == line.ends_at


def test_a_job_stuck_in_the_queue_never_ends():
    plan, _ = job("stuck_pending")
    line = timeline(plan)
    assert line.ends_at is None and line.settling == () and line.stages == ()
    assert [(p.name, p.end) for p in line.phases] == [("queue", None)]
