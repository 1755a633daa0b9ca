"""``lifecycle.changes.next_change``: the state is the same until it, and differs at it."""

from __future__ import annotations

import math
from dataclasses import replace
from timeit import timeit
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pollable.lifecycle.changes import next_change
from pollable.lifecycle.engine import item_state, outcome, state_at
from pollable.lifecycle.model import Event, Item, Plan, Status, Tally, Timing
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from tests.lifecycle.test_engine import PROPERTY, scenes


def view(plan: Plan, items: tuple[Item, ...], events: tuple[Event, ...], t: float) -> Any:
    """Everything a read of the job can show at ``t``: the state but for the instant it
    was asked at, and every item's state."""
    state = state_at(plan, events, t)
    return replace(state, as_of=0.0), tuple(item_state(plan, state, item) for item in items)


def status_view(plan: Plan, events: tuple[Event, ...], t: float) -> Any:
    state = state_at(plan, events, t)
    return state.status, state.started_at, state.ended_at, state.error_message


def before(moment: float) -> float:
    return math.nextafter(moment, -math.inf)


@PROPERTY
@given(scenes(), st.data())
def test_nothing_changes_until_the_next_change_and_something_does_then(scene, data):
    plan, items, events, times = scene
    for t in times:
        then = view(plan, items, events, t)
        following = next_change(plan, events, t)
        assert next_change(plan, events, t, state=state_at(plan, events, t)) == following
        if following is None:
            end, _ = outcome(plan, events)
            assert state_at(plan, events, t).status.terminal or math.isinf(end)
            for later in (t + 1.0, t + 1e6):
                assert view(plan, items, events, later) == then
            continue
        assert following > t
        fraction = data.draw(st.floats(0, 1))
        for s in (t, before(following), t + (following - t) * fraction):
            if t <= s < following:
                assert view(plan, items, events, s) == then, s
        assert view(plan, items, events, following) != then


@PROPERTY
@given(scenes())
def test_a_read_without_progress_changes_only_with_its_status(scene):
    plan, _, events, times = scene
    for t in times:
        then = status_view(plan, events, t)
        following = next_change(plan, events, t, items=False)
        if following is None:
            assert status_view(plan, events, t + 1e6) == then
            continue
        assert status_view(plan, events, before(following)) == then
        assert status_view(plan, events, following) != then


def test_terminal_jobs_never_change():
    plan, _ = plan_job(
        job_id="j", created_at=0.0, scenario=CATALOGUE["instant"], work=[Work("a", 1)], seed="s"
    )
    assert state_at(plan, (), 1.0).status is Status.COMPLETED
    assert next_change(plan, (), 1.0) is None


def test_a_job_stuck_in_the_queue_never_changes():
    plan, _ = plan_job(
        job_id="j", created_at=0.0, scenario=CATALOGUE["stuck_pending"], work=[], seed="s"
    )
    assert next_change(plan, (), 1e9) is None


def test_the_cost_does_not_grow_with_the_items():
    """100,000 items in flight at once: the answer comes from bisections, not a walk."""
    n = 100_000
    timing = Timing(queue=0, scan=0, item_gap=0.001, item_duration=1000.0, finalize=0)
    plan = Plan("j", 0.0, "custom", timing, n, Tally(units=n))
    t = 100.5  # all items in flight, item 0 a tenth of the way through its extracting
    assert next_change(plan, (), t) == 250.0  # item 0 reaches chunking
    small = replace(plan, n_items=10, timing=replace(timing, item_gap=100.0))
    assert next_change(small, (), t) == 200.0  # item 1 starts
    assert timeit(lambda: next_change(plan, (), t), number=200) < 20 * timeit(
        lambda: next_change(small, (), t), number=200
    )
