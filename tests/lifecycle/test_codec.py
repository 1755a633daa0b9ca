"""``lifecycle.codec``: plans and events survive the trip to JSON and back."""

from __future__ import annotations

import json
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pollable.lifecycle.codec import (
    FORMAT,
    event_from_data,
    event_to_data,
    plan_from_data,
    plan_to_data,
)
from pollable.lifecycle.model import STAGES, Event, EventKind, Failure, Plan, Stage, Tally, Timing
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE

PROPERTY = settings(max_examples=200, deadline=None, database=None)

finite = st.floats(0, 1e4, allow_nan=False, allow_infinity=False)
times = st.floats(0, 4e9, allow_nan=False, allow_infinity=False)


@st.composite
def timings(draw: st.DrawFn) -> Timing:
    gap = draw(finite)
    return Timing(
        queue=draw(st.just(math.inf) | finite),
        scan=draw(finite),
        item_gap=gap,
        item_duration=gap + draw(finite),
        finalize=draw(finite),
    )


failures = st.builds(
    Failure, st.sampled_from(STAGES), st.text(max_size=20), st.text(max_size=80), st.floats(0, 1)
)
plans = st.builds(
    Plan,
    job_id=st.text(min_size=1, max_size=40),
    created_at=times,
    scenario=st.sampled_from(sorted(CATALOGUE)) | st.text(max_size=20),
    timing=timings(),
    n_items=st.integers(0, 100_000),
    totals=st.builds(Tally, st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 10**9)),
    failure=st.none() | failures,
    cancel_after=st.none() | finite,
)
events = st.builds(Event, st.sampled_from(EventKind), times, st.text(max_size=40))


def through_json(data):
    """The trip a store makes: strict JSON text (no Infinity, no NaN) and back."""
    return json.loads(json.dumps(data, allow_nan=False))


@PROPERTY
@given(plans)
def test_plans_round_trip(plan):
    data = plan_to_data(plan)
    assert data["format"] == FORMAT
    assert plan_from_data(data) == plan
    assert plan_from_data(through_json(data)) == plan
    assert plan_from_data(orjson.loads(orjson.dumps(data))) == plan


@PROPERTY
@given(events)
def test_events_round_trip(event):
    data = event_to_data(event)
    assert event_from_data(data) == event
    assert event_from_data(through_json(data)) == event
    assert event_from_data(orjson.loads(orjson.dumps(data))) == event


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_planned_jobs_round_trip(name):
    plan, _ = plan_job(
        job_id="job-1",
        created_at=1_700_000_000.123456,
        scenario=CATALOGUE[name],
        work=[Work(f"k{i}", units=i) for i in range(7)],
        seed="seed",
    )
    assert plan_from_data(through_json(plan_to_data(plan))) == plan


def test_infinite_queue_travels_as_none():
    plan = plan_job(
        job_id="j", created_at=0.0, scenario=CATALOGUE["stuck_pending"], work=[], seed="s"
    )[0]
    data = plan_to_data(plan)
    assert data["timing"][0] is None
    restored = plan_from_data(through_json(data))
    assert math.isinf(restored.timing.queue) and restored.timing.queue > 0


def test_failure_and_cancel_after_survive():
    failure = Failure(Stage.TAGGING, "tagging_failed", "no tags", at=0.25)
    plan = Plan("j", 12.5, "custom", Timing(1, 2, 0.5, 2, 1), 3, Tally(1, 1, 7), failure, 3.75)
    restored = plan_from_data(through_json(plan_to_data(plan)))
    assert restored.failure == failure and restored.failure.stage is Stage.TAGGING
    assert restored.cancel_after == 3.75
    assert restored.totals == Tally(1, 1, 7)


def test_cancel_event_data_shape():
    event = Event(EventKind.CANCEL, 1_700_000_000.5, "user-ada")
    assert event_to_data(event) == {"kind": "cancel", "at": 1_700_000_000.5, "actor": "user-ada"}
    assert event_from_data(event_to_data(event)).kind is EventKind.CANCEL


@pytest.mark.parametrize("fmt", [None, 0, 2, "1"])
def test_unknown_plan_format_is_rejected(fmt):
    data = plan_to_data(Plan("j", 0.0, "happy", Timing(1, 2, 0.5, 2, 1), 0, Tally()))
    if fmt is None:
        del data["format"]
    else:
        data["format"] = fmt
    with pytest.raises(ValueError, match="format"):
        plan_from_data(data)


def test_any_infinite_duration_travels_as_none():
    # The module promises that math.inf travels as None; a timing may hold inf in any field.
    for field in ("queue", "scan", "finalize"):
        values = {"queue": 1.0, "scan": 2.0, "item_gap": 0.5, "item_duration": 2.0,
                  "finalize": 1.0, field: math.inf}  # fmt: skip
        plan = Plan("j", 0.0, "custom", Timing(**values), 2, Tally())
        timing = plan_to_data(plan)["timing"]
        assert all(v is None or math.isfinite(v) for v in timing), f"{field}: {timing}"
        assert plan_from_data(through_json(plan_to_data(plan))) == plan, field
