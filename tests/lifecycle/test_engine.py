"""Properties of ``lifecycle.engine`` over random plans, events and times, plus worked examples."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pollable.lifecycle import engine
from pollable.lifecycle.engine import (
    SYSTEM_ACTOR,
    failure_time,
    item_state,
    known_tally,
    natural_end,
    outcome,
    prefix_needed,
    progress,
    state_at,
)
from pollable.lifecycle.model import (
    ITEM_STAGES,
    STAGES,
    Event,
    EventKind,
    Failure,
    Item,
    ItemStatus,
    JobState,
    Outcome,
    Plan,
    Progress,
    Stage,
    Status,
    Tally,
    Timing,
)
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FAILING_SCENARIOS = sorted(name for name, s in CATALOGUE.items() if s.failure is not None)
COMPLETING_SCENARIOS = sorted(
    name
    for name, s in CATALOGUE.items()
    if s.failure is None and s.cancel_at is None and not math.isinf(s.timing.queue)
)
ACTORS = ("user-ada", "user-bob", "ops")

Job = tuple[Plan, tuple[Item, ...]]


# -- strategies ---------------------------------------------------------------------------


def durations(max_value: float) -> st.SearchStrategy[float]:
    """Durations that favour the round numbers where boundaries coincide."""
    return st.one_of(
        st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]),
        # Microsecond resolution: no subnormal gaps (see test_a_tiny_item_gap_does_not_crash).
        st.floats(0, max_value, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 6)),
    )


creation_times = st.one_of(
    st.sampled_from([0.0, 100.0, 1_700_000_000.0]),
    st.floats(0, 2e9, allow_nan=False, allow_infinity=False),
)


@st.composite
def works(draw: st.DrawFn) -> list[Work]:
    """0-40 requested items, some with forced outcomes. The details come from a drawn seed:
    far cheaper than drawing every field, and the count still shrinks."""
    n = draw(st.integers(0, 40))
    rng = random.Random(draw(st.integers(0, 2**32)))
    result = []
    for i in range(n):
        forced = rng.choice([None, None, None, *Outcome])
        fail_stage = rng.choice([None, *ITEM_STAGES]) if forced else None
        code = f"forced_{forced.value}" if forced else None
        result.append(
            Work(
                key=f"s3://bucket/file-{i:03d}.pdf",
                units=rng.randint(0, 50),
                forced=forced,
                fail_stage=fail_stage,
                error_code=code,
                error_message=f"{code} message" if code else None,
            )
        )
    return result


@st.composite
def catalogue_jobs(draw: st.DrawFn, names: list[str] | None = None) -> Job:
    name = draw(st.sampled_from(names or sorted(CATALOGUE)))
    return plan_job(
        job_id="job-1",
        created_at=draw(creation_times),
        scenario=CATALOGUE[name],
        work=draw(works()),
        seed=draw(st.text(max_size=8)),
        time_scale=draw(st.sampled_from([0.0, 0.001, 1.0])),
        listed=draw(st.booleans()),
    )


@st.composite
def planned_items(draw: st.DrawFn) -> tuple[Item, ...]:
    n = draw(st.integers(0, 40))
    rng = random.Random(draw(st.integers(0, 2**32)))
    items = []
    for i in range(n):
        result = rng.choice(list(Outcome))
        failed = result is Outcome.FAILED
        items.append(
            Item(
                ordinal=i,
                key=f"key-{i}",
                outcome=result,
                units=rng.randint(0, 30),
                fail_stage=rng.choice(ITEM_STAGES) if failed else None,
                error_code="item_failed" if failed else None,
                error_message="the item failed" if failed else None,
            )
        )
    return tuple(items)


@st.composite
def direct_jobs(
    draw: st.DrawFn,
    *,
    stuck: bool | None = None,
    failure: bool | None = None,
    cancel_after: bool | None = None,
) -> Job:
    """Plans built by hand: any valid Timing (including a queue that never ends)."""
    if stuck is None:
        stuck = draw(st.integers(0, 3)) == 0
    gap = draw(durations(10))
    timing = Timing(
        queue=math.inf if stuck else draw(durations(100)),
        scan=draw(durations(100)),
        item_gap=gap,
        item_duration=gap + draw(durations(10)),
        finalize=draw(st.just(0.0) | durations(10)),
    )
    items = draw(planned_items())
    if failure is None:
        failure = draw(st.booleans())
    job_failure = None
    if failure:
        stage = draw(st.sampled_from(STAGES))
        job_failure = Failure(
            stage, f"{stage.value}_failed", f"failed in {stage.value}", draw(st.floats(0, 1))
        )
    if cancel_after is None:
        cancel_after = draw(st.integers(0, 3)) == 0
    plan = Plan(
        job_id="job-1",
        created_at=draw(creation_times),
        scenario="custom",
        timing=timing,
        n_items=len(items),
        totals=Tally.of(items),
        failure=job_failure,
        cancel_after=draw(durations(500)) if cancel_after else None,
    )
    return plan, items


jobs = st.one_of(catalogue_jobs(), direct_jobs())


def horizon(plan: Plan) -> float:
    """A span after creation long enough to see the whole job (or a while, if it never ends)."""
    span = natural_end(plan) - plan.created_at
    return span if math.isfinite(span) and span > 0 else 100.0


def milestones_of(plan: Plan, events: tuple[Event, ...]) -> list[float]:
    moments = [
        plan.created_at,
        engine.started_at(plan),
        engine.processing_start(plan),
        engine.processing_end(plan),
        natural_end(plan),
        failure_time(plan) or plan.created_at,
        *(e.at for e in events),
    ]
    for ordinal in {0, plan.n_items // 2, plan.n_items - 1}:
        if 0 <= ordinal < plan.n_items:
            moments.extend(engine.item_window(plan, ordinal))
    if plan.cancel_after is not None:
        moments.append(plan.created_at + plan.cancel_after)
    return [m for m in moments if math.isfinite(m) and m >= plan.created_at]


def instants(plan: Plan, events: tuple[Event, ...] = ()) -> st.SearchStrategy[float]:
    """Moments at or after creation, often exactly on a boundary of the timeline."""
    span = horizon(plan) * 1.5
    boundaries = st.sampled_from(milestones_of(plan, events))
    anywhere = st.floats(0, span, allow_nan=False).map(lambda d: plan.created_at + d)
    return st.one_of(boundaries, boundaries, anywhere)


def cancels(plan: Plan, max_size: int = 3) -> st.SearchStrategy[tuple[Event, ...]]:
    event = st.builds(
        Event,
        st.just(EventKind.CANCEL),
        st.one_of(
            st.sampled_from(milestones_of(plan, ())),
            st.floats(0, horizon(plan) * 1.2, allow_nan=False).map(lambda d: plan.created_at + d),
        ),
        st.sampled_from(ACTORS),
    )
    return st.lists(event, max_size=max_size).map(tuple)


@st.composite
def scenes(
    draw: st.DrawFn, job_strategy: st.SearchStrategy[Job] = jobs, n_times: int = 4
) -> tuple[Plan, tuple[Item, ...], tuple[Event, ...], list[float]]:
    plan, items = draw(job_strategy)
    events = draw(cancels(plan))
    times = sorted(draw(st.lists(instants(plan, events), min_size=1, max_size=n_times)))
    return plan, items, events, times


# -- helpers ------------------------------------------------------------------------------

RANK = {Status.PENDING: 0, Status.RUNNING: 1}


def rank(status: Status) -> int:
    return RANK.get(status, 2)


def item_counts(plan: Plan, state: JobState, items: tuple[Item, ...]) -> Counter[ItemStatus]:
    return Counter(item_state(plan, state, item).status for item in items)


def planned_end(plan: Plan) -> float:
    """When the plan ends without user events: failure, system cancel or natural end."""
    if math.isinf(plan.timing.queue):
        end = math.inf  # never starts, so never fails and never finishes
    else:
        ft = failure_time(plan)
        end = natural_end(plan) if ft is None else ft
    if plan.cancel_after is not None:
        end = min(end, plan.created_at + plan.cancel_after)
    return end


# -- edge cases every run checks (explicit examples) ----------------------------------------

#: Finalize 0: the job ends the instant its last item ends (0.5 = 0.1 + 0.1 + 0.3).
EDGE_ITEMS = (Item(0, "a", Outcome.COMPLETED, 1), Item(1, "b", Outcome.COMPLETED, 1))
NO_FINALIZE = Plan("job-f", 0.0, "custom", Timing(0.0, 0.1, 0.1, 0.3, 0.0), 2, Tally.of(EDGE_ITEMS))
#: Item 3 starts at 0.1 + 3 * 0.7 == 2.1999999999999997, item 2 ends at 0.1 + 2 * 0.7 + 0.7 == 2.2.
ROUNDING_ITEMS = tuple(Item(i, f"k{i}", Outcome.COMPLETED, 1) for i in range(5))
ROUNDING = Plan(
    "job-r", 0.0, "custom", Timing(0.0, 0.1, 0.7, 0.7, 1.0), 5, Tally.of(ROUNDING_ITEMS)
)
#: Never leaves the queue, yet plans a failure in an item stage.
STUCK_FAILING = replace(
    NO_FINALIZE,
    timing=replace(NO_FINALIZE.timing, queue=math.inf),
    failure=Failure(Stage.EXTRACTING, "extraction_failed", "down"),
)
USER_CANCEL = Event(EventKind.CANCEL, 7.0, "user-ada")
#: The issue's case: a job whose only item (a corrupt file) failed.
ONLY_ITEM_FAILED = (
    Item(0, "corrupt.txt", Outcome.FAILED, 1, Stage.EXTRACTING, "file_corrupt", "x"),
)
ALL_FAILED = replace(NO_FINALIZE, n_items=1, totals=Tally.of(ONLY_ITEM_FAILED))


# -- properties ---------------------------------------------------------------------------


@PROPERTY
@given(scenes())
def test_state_is_deterministic(scene):
    plan, _, events, times = scene
    twin = replace(plan)
    for t in times:
        first = state_at(plan, events, t)
        assert state_at(twin, list(events), t) == first
        assert state_at(plan, iter(events), t) == first


@PROPERTY
@given(scenes())
def test_terminal_states_stay_terminal(scene):
    plan, _, events, times = scene
    states = [state_at(plan, events, t) for t in times]
    for i, earlier in enumerate(states):
        if earlier.status.terminal:
            for later in states[i:]:
                assert later == earlier


@PROPERTY
@given(scenes(n_times=8))
def test_status_never_goes_backwards(scene):
    plan, _, events, times = scene
    ranks = [rank(state_at(plan, events, t).status) for t in times]
    assert ranks == sorted(ranks)


@PROPERTY
@given(scenes(n_times=6))
@example((ROUNDING, ROUNDING_ITEMS, (), [2.1999999999999997]))
def test_timestamps_are_monotonic_and_consistent(scene):
    plan, _, events, times = scene
    previous_update = -math.inf
    for t in times:
        state = state_at(plan, events, t)
        assert state.as_of <= t
        assert plan.created_at <= state.updated_at <= state.as_of
        assert state.updated_at >= previous_update
        previous_update = state.updated_at
        has_started = state.as_of >= engine.started_at(plan)
        assert (state.started_at is not None) == has_started
        if state.started_at is not None:
            assert state.started_at == engine.started_at(plan)
        assert (state.ended_at is not None) == state.status.terminal
        if state.ended_at is not None:
            assert state.ended_at == state.as_of
            assert state.updated_at == state.ended_at
            if state.started_at is not None:
                assert state.started_at <= state.ended_at
        else:
            assert state.as_of == t
        if state.status is Status.PENDING:
            assert state.started_at is None
        if state.status is Status.RUNNING:
            assert state.started_at is not None


@PROPERTY
@given(scenes())
@example((NO_FINALIZE, EDGE_ITEMS, (), [0.5]))
def test_counts_add_up(scene):
    plan, items, events, times = scene
    assert plan.n_items == len(items)
    for t in times:
        state = state_at(plan, events, t)
        assert 0 <= state.settled <= state.started <= plan.n_items
        prefix = Tally.of(items[: state.settled])
        p = progress(plan, state, prefix)
        counts = item_counts(plan, state, items)
        in_flight = counts[ItemStatus.QUEUED] + counts[ItemStatus.PROCESSING]
        assert p.total == plan.n_items
        assert p.processed == state.settled
        assert p.units == prefix.units
        assert min(p.completed, p.failed, p.skipped, p.cancelled) >= 0
        assert p.completed + p.failed + p.skipped + p.cancelled + in_flight == p.total
        assert (p.completed, p.failed, p.skipped, p.cancelled) == (
            counts[ItemStatus.COMPLETED],
            counts[ItemStatus.FAILED],
            counts[ItemStatus.SKIPPED],
            counts[ItemStatus.CANCELLED],
        )
        if state.status.terminal:
            assert in_flight == 0, f"{state.status.value} job with items still in flight"
        if state.status is not Status.CANCELLED:
            assert p.cancelled == 0


@PROPERTY
@given(scenes())
def test_known_tally_and_prefix_needed_agree_with_tally_of(scene):
    plan, items, events, times = scene
    for k in {0, plan.n_items, plan.n_items // 2}:
        known = known_tally(plan, k)
        if k in (0, plan.n_items):
            assert known == Tally.of(items[:k])
        else:
            assert known is None
    for t in times:
        state = state_at(plan, events, t)
        needed = prefix_needed(plan, state)
        if needed is None:
            assert known_tally(plan, state.settled) == Tally.of(items[: state.settled])
        else:
            assert needed == state.settled
            assert known_tally(plan, needed) is None


@st.composite
def cancelled_scenes(draw: st.DrawFn):
    plan, items = draw(jobs)
    end = planned_end(plan)
    span = min(end - plan.created_at, horizon(plan))
    offset = draw(st.floats(0, 1, exclude_max=True)) * span
    at = plan.created_at + offset
    if not at < end:
        at = plan.created_at
    event = Event(EventKind.CANCEL, at, draw(st.sampled_from(ACTORS)))
    times = sorted(draw(st.lists(instants(plan, (event,)), min_size=1, max_size=4)))
    return plan, items, event, times


@PROPERTY
@given(cancelled_scenes())
@example((STUCK_FAILING, EDGE_ITEMS, USER_CANCEL, [10.0]))
def test_cancel_before_the_end_cancels_at_exactly_that_time(scene):
    plan, items, event, times = scene
    if not event.at < planned_end(plan):
        return  # a zero-length job cannot be cancelled; nothing to check
    for t in [*times, event.at, event.at + horizon(plan) * 10]:
        state = state_at(plan, [event], t)
        if t < event.at:
            assert state == state_at(plan, [], t), "a cancel changed the past"
            continue
        assert state.status is Status.CANCELLED
        assert state.ended_at == state.cancelled_at == state.stopped_at == event.at
        assert state.as_of == event.at
        assert state.cancelled_by == event.actor
        counts = item_counts(plan, state, items)
        assert counts[ItemStatus.CANCELLED] == plan.n_items - state.settled


@PROPERTY
@given(cancelled_scenes(), st.floats(0.001, 1000), st.sampled_from(ACTORS))
def test_a_second_later_cancel_changes_nothing(scene, delay, actor):
    plan, _, event, times = scene
    later = Event(EventKind.CANCEL, event.at + delay, actor)
    for t in [*times, later.at]:
        once = state_at(plan, [event], t)
        assert state_at(plan, [event, later], t) == once
        assert state_at(plan, [later, event], t) == once


@PROPERTY
@given(jobs, st.data())
def test_a_cancel_at_or_after_the_end_changes_nothing(job, data):
    plan, _ = job
    end = planned_end(plan)
    if math.isinf(end):
        return  # the job never ends; covered by the stuck_pending test
    at = end + data.draw(st.sampled_from([0.0, 0.001, 1.0, 1e6]))
    event = Event(EventKind.CANCEL, at, data.draw(st.sampled_from(ACTORS)))
    for t in data.draw(st.lists(instants(plan, (event,)), min_size=1, max_size=4)):
        assert state_at(plan, [event], t) == state_at(plan, [], t)


@PROPERTY
@given(scenes())
@example((ALL_FAILED, ONLY_ITEM_FAILED, (), [0.0, 0.3, 10.0]))
def test_completed_with_failures_means_some_completed_and_some_failed(scene):
    plan, items, events, times = scene
    for t in times:
        state = state_at(plan, events, t)
        counts = item_counts(plan, state, items)
        if state.status is Status.COMPLETED_WITH_FAILURES:
            assert counts[ItemStatus.COMPLETED] >= 1 and counts[ItemStatus.FAILED] >= 1
        if state.status is Status.FAILED:
            assert state.error_code and state.error_message
        if state.status.terminal and state.status is not Status.CANCELLED:
            processed_nothing = counts[ItemStatus.FAILED] and not counts[ItemStatus.COMPLETED]
            assert state.status is Status.FAILED or not processed_nothing, (
                f"{state.status.value} with every processed item failed"
            )


@PROPERTY
@given(scenes())
def test_an_item_shows_completed_exactly_from_completes_at_until_the_job_stops(scene):
    plan, items, events, times = scene
    end, _ = outcome(plan, events)
    for t in times:
        state = state_at(plan, events, t)
        for item in items:
            done = engine.completes_at(plan, item)
            indexed = done is not None and done <= min(t, end)
            shown = item_state(plan, state, item).status is ItemStatus.COMPLETED
            assert shown == indexed, (item, t)


@PROPERTY
@given(scenes())
def test_exactly_one_cancel_applies_and_it_changes_how_the_job_ends(scene):
    plan, _, events, _ = scene
    kept: list[Event] = []
    for event in events:
        before = outcome(plan, kept)
        if engine.applies(plan, kept, event):
            kept.append(event)
            assert outcome(plan, kept) == (event.at, Status.CANCELLED) != before
        else:
            assert kept or event.at >= before[0], "a cancel before the end was refused"
    # The first cancel before the planned end is the one kept, whatever came before it.
    first = next((e for e in events if e.at < planned_end(plan)), None)
    assert kept == ([] if first is None else [first])
    if kept:
        later = Event(EventKind.CANCEL, kept[0].at - 1, "user-bob")
        assert not engine.applies(plan, kept, later), "a second cancel applied"


failing_jobs = st.one_of(
    catalogue_jobs(FAILING_SCENARIOS), direct_jobs(stuck=False, failure=True, cancel_after=False)
)


@PROPERTY
@given(failing_jobs, st.data())
def test_failure_plans_end_failed_at_failure_time(job, data):
    plan, items = job
    failure = plan.failure
    assert failure is not None
    ft = failure_time(plan)
    assert ft is not None and math.isfinite(ft)
    start, p0 = engine.started_at(plan), engine.processing_start(plan)
    pe, end = engine.processing_end(plan), natural_end(plan)
    low, high = {Stage.SCANNING: (start, p0), Stage.FINALIZING: (pe, end)}.get(
        failure.stage, (p0, pe)
    )
    slack = 1e-9 * max(1.0, abs(ft))  # the failure point is computed, not summed
    assert low - slack <= ft <= high + slack
    for t in [*data.draw(st.lists(instants(plan), min_size=1, max_size=4)), ft, ft + 1e6]:
        state = state_at(plan, [], t)
        if t < ft:
            assert not state.status.terminal
            continue
        assert state.status is Status.FAILED
        assert state.ended_at == state.stopped_at == state.as_of == ft
        assert state.stage is failure.stage
        assert (state.error_code, state.error_message) == (failure.code, failure.message)
        assert state.cancelled_at is None and state.cancelled_by is None
        for item in items[state.settled :]:
            assert item_state(plan, state, item).status is ItemStatus.FAILED
    assert outcome(plan) == (ft, Status.FAILED)


completing_jobs = st.one_of(
    catalogue_jobs(COMPLETING_SCENARIOS),
    direct_jobs(stuck=False, failure=False, cancel_after=False),
)


@PROPERTY
@given(completing_jobs, st.data())
def test_completed_plans_end_at_natural_end(job, data):
    plan, _ = job
    end = natural_end(plan)
    totals = plan.totals
    if not totals.failed:
        expected = Status.COMPLETED
    elif totals.failed + totals.skipped < plan.n_items:
        expected = Status.COMPLETED_WITH_FAILURES
    else:  # items failed and none completed: nothing was processed
        expected = Status.FAILED
    for t in [*data.draw(st.lists(instants(plan), min_size=1, max_size=4)), end, end + 1e6]:
        state = state_at(plan, [], t)
        if t < end:
            assert not state.status.terminal
            assert state.expected_end == end
            continue
        assert state.status is expected
        assert state.ended_at == state.as_of == end
        if expected is Status.FAILED:
            assert state.stopped_at == end
            assert (state.error_code, state.error_message) == (
                engine.ALL_ITEMS_FAILED.code, engine.ALL_ITEMS_FAILED.message,
            )  # fmt: skip
        else:
            assert state.stopped_at is None and state.error_code is None
        assert state.expected_end is None
        assert state.stage is Stage.FINALIZING
        assert state.settled == state.started == plan.n_items
    assert outcome(plan) == (end, expected)


@PROPERTY
@given(scenes())
@example((STUCK_FAILING, EDGE_ITEMS, (USER_CANCEL,), [10.0]))
def test_outcome_agrees_with_state_at_far_in_the_future(scene):
    plan, _, events, _ = scene
    end, final = outcome(plan, events)
    if math.isinf(planned_end(plan)) and not any(e.at >= plan.created_at for e in events):
        return  # never ends
    if not math.isfinite(end):
        pytest.fail(f"outcome() says the job ends at {end!r}, yet it can be cancelled")
    for later in (end, end + 1.0, end + 1e9):
        state = state_at(plan, events, later)
        assert state.status is final
        assert state.ended_at == end


stuck_jobs = st.one_of(
    catalogue_jobs(["stuck_pending"]), direct_jobs(stuck=True, cancel_after=False)
)


@PROPERTY
@given(stuck_jobs, st.floats(0, 1e12, allow_nan=False), st.floats(0, 1, exclude_max=True))
@example((STUCK_FAILING, EDGE_ITEMS), 10.0, 0.5)
def test_stuck_pending_stays_pending_until_cancelled(job, later, fraction):
    plan, items = job
    assert math.isinf(plan.timing.queue)
    t = plan.created_at + later
    state = state_at(plan, [], t)
    assert state.status is Status.PENDING
    assert state.started_at is None and state.stage is None and state.expected_end is None
    assert state.settled == state.started == 0
    assert set(item_counts(plan, state, items)) <= {ItemStatus.QUEUED}

    cancel = Event(EventKind.CANCEL, plan.created_at + later * fraction, "user-ada")
    state = state_at(plan, [cancel], t)
    assert state.status is Status.CANCELLED, f"stuck job ({plan.failure}) ignored a cancel"
    assert state.ended_at == state.cancelled_at == cancel.at
    assert state.cancelled_by == "user-ada"
    assert state.started_at is None and state.stage is None
    assert item_counts(plan, state, items)[ItemStatus.CANCELLED] == plan.n_items


@PROPERTY
@given(direct_jobs(stuck=False, failure=False, cancel_after=True), st.data())
def test_system_cancel_comes_from_the_plan(job, data):
    plan, _ = job
    assert plan.cancel_after is not None
    at = plan.created_at + plan.cancel_after
    state = state_at(plan, [], at + data.draw(st.floats(0, 1e6, allow_nan=False)))
    if at < natural_end(plan):
        assert state.status is Status.CANCELLED
        assert state.cancelled_at == at and state.cancelled_by == SYSTEM_ACTOR
    else:
        # Too late: the job ended as its items say (every item failed: failed).
        ended = Status.FAILED if engine.job_failure(plan) else None
        assert state.status in (
            (ended,) if ended else (Status.COMPLETED, Status.COMPLETED_WITH_FAILURES)
        )
        assert state.cancelled_at is None


# -- worked examples ----------------------------------------------------------------------

CREATED = 100.0
#: created 100, starts 101, items from 103: [103,105) [104,106) [105,107) [106,108),
#: processing ends 108, finalizing until 109.
TIMING = Timing(queue=1.0, scan=2.0, item_gap=1.0, item_duration=2.0, finalize=1.0)
ITEMS = (
    Item(0, "a.pdf", Outcome.COMPLETED, units=2),
    Item(1, "b.pdf", Outcome.FAILED, 5, Stage.TAGGING, "tagging_failed", "no tags"),
    Item(2, "c.zip", Outcome.SKIPPED, 7, None, "unsupported_file_type", "no zips"),
    Item(3, "d.pdf", Outcome.COMPLETED, units=3),
)


def four_item_plan(**changes) -> Plan:
    plan = Plan("job-4", CREATED, "custom", TIMING, 4, Tally.of(ITEMS))
    return replace(plan, **changes)


def test_timeline_arithmetic_of_the_four_item_plan():
    plan = four_item_plan()
    assert engine.started_at(plan) == 101
    assert engine.processing_start(plan) == 103
    assert [engine.item_window(plan, i) for i in range(4)] == [
        (103, 105), (104, 106), (105, 107), (106, 108),
    ]  # fmt: skip
    assert engine.processing_end(plan) == 108
    assert natural_end(plan) == 109
    assert plan.totals == Tally(failed=1, skipped=1, units=5)


@pytest.mark.parametrize(
    ("t", "status", "stage", "started", "settled", "updated_at"),
    [
        (100.0, Status.PENDING, None, 0, 0, 100),
        (100.9, Status.PENDING, None, 0, 0, 100),
        (101.0, Status.RUNNING, Stage.SCANNING, 0, 0, 101),
        (102.5, Status.RUNNING, Stage.SCANNING, 0, 0, 101),
        (103.0, Status.RUNNING, Stage.EXTRACTING, 1, 0, 103),
        (104.5, Status.RUNNING, Stage.EMBEDDING, 2, 0, 104),
        (105.0, Status.RUNNING, Stage.TAGGING, 3, 1, 105),
        (107.5, Status.RUNNING, Stage.EMBEDDING, 4, 3, 107),
        (108.0, Status.RUNNING, Stage.FINALIZING, 4, 4, 108),
        (108.9, Status.RUNNING, Stage.FINALIZING, 4, 4, 108),
        (109.0, Status.COMPLETED_WITH_FAILURES, Stage.FINALIZING, 4, 4, 109),
        (500.0, Status.COMPLETED_WITH_FAILURES, Stage.FINALIZING, 4, 4, 109),
    ],
)
def test_four_item_plan_at_chosen_instants(t, status, stage, started, settled, updated_at):
    state = state_at(four_item_plan(), [], t)
    assert (state.status, state.stage, state.started, state.settled) == (
        status, stage, started, settled,
    )  # fmt: skip
    assert state.updated_at == updated_at
    assert state.as_of == min(t, 109)
    assert state.started_at == (None if t < 101 else 101)
    assert state.ended_at == (109 if t >= 109 else None)
    assert state.expected_end == (None if t >= 109 else 109)


def test_four_item_plan_items_mid_flight():
    plan = four_item_plan()
    state = state_at(plan, [], 104.5)
    views = [item_state(plan, state, item) for item in ITEMS]
    assert [(v.status, v.stage, v.updated_at) for v in views] == [
        (ItemStatus.PROCESSING, Stage.EMBEDDING, 104.5),  # 1.5 of 2 s in: fourth quarter
        (ItemStatus.PROCESSING, Stage.CHUNKING, 104.5),  # 0.5 of 2 s in: second quarter
        (ItemStatus.QUEUED, None, CREATED),
        (ItemStatus.QUEUED, None, CREATED),
    ]
    assert progress(plan, state, Tally()) == Progress(4, 0, 0, 0, 0, 0, 0)


def test_four_item_plan_items_at_the_end():
    plan = four_item_plan()
    state = state_at(plan, [], 109)
    views = [item_state(plan, state, item) for item in ITEMS]
    assert [(v.status, v.stage, v.updated_at, v.error_code) for v in views] == [
        (ItemStatus.COMPLETED, Stage.EMBEDDING, 105, None),
        (ItemStatus.FAILED, Stage.TAGGING, 106, "tagging_failed"),
        (ItemStatus.SKIPPED, None, 107, "unsupported_file_type"),
        (ItemStatus.COMPLETED, Stage.EMBEDDING, 108, None),
    ]
    assert prefix_needed(plan, state) is None
    p = progress(plan, state, plan.totals)
    assert (p.total, p.processed, p.completed, p.failed, p.skipped, p.cancelled, p.units) == (
        4, 4, 2, 1, 1, 0, 5,
    )  # fmt: skip


def test_four_item_plan_cancelled_mid_flight():
    plan = four_item_plan()
    cancel = Event(EventKind.CANCEL, 105.5, "user-ada")
    state = state_at(plan, [cancel], 1000)
    assert state.status is Status.CANCELLED
    assert (state.as_of, state.ended_at, state.cancelled_at, state.stopped_at) == (105.5,) * 4
    assert state.cancelled_by == "user-ada"
    assert (state.settled, state.started, state.stage) == (1, 3, Stage.EMBEDDING)
    assert prefix_needed(plan, state) == 1
    statuses = [item_state(plan, state, item).status for item in ITEMS]
    assert statuses == [ItemStatus.COMPLETED] + [ItemStatus.CANCELLED] * 3
    p = progress(plan, state, Tally.of(ITEMS[:1]))
    assert (p.processed, p.completed, p.failed, p.skipped, p.cancelled, p.units) == (
        1, 1, 0, 0, 3, 2,
    )  # fmt: skip


def test_four_item_plan_cancelled_before_it_starts():
    plan = four_item_plan()
    state = state_at(plan, [Event(EventKind.CANCEL, 100.5, "ops")], 1000)
    assert (state.status, state.stage, state.started_at, state.settled) == (
        Status.CANCELLED, None, None, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "at", "fails_at", "settled"),
    [
        (Stage.SCANNING, 0.25, 101.5, 0),
        (Stage.EMBEDDING, 0.5, 105.5, 1),
        (Stage.EXTRACTING, 0.0, 103.0, 0),
        (Stage.FINALIZING, 0.5, 108.5, 4),
    ],
)
def test_four_item_plan_failing(stage, at, fails_at, settled):
    failure = Failure(stage, "boom", "it broke", at)
    plan = four_item_plan(failure=failure)
    assert failure_time(plan) == fails_at
    assert not state_at(plan, [], fails_at - 0.01).status.terminal
    state = state_at(plan, [], fails_at + 50)
    assert (state.status, state.stage, state.ended_at, state.settled) == (
        Status.FAILED, stage, fails_at, settled,
    )  # fmt: skip
    assert (state.error_code, state.error_message) == ("boom", "it broke")
    unsettled = [item_state(plan, state, item) for item in ITEMS[settled:]]
    assert all(v.status is ItemStatus.FAILED and v.error_code == "boom" for v in unsettled)
    p = progress(plan, state, Tally.of(ITEMS[:settled]))
    assert p.failed == Tally.of(ITEMS[:settled]).failed + 4 - settled


def test_instant_plan_is_complete_when_created():
    items = tuple(Item(i, f"k{i}", Outcome.COMPLETED, units=1) for i in range(3))
    plan = Plan("job-0", 50.0, "instant", Timing(0, 0, 0, 0, 0), 3, Tally.of(items))
    state = state_at(plan, [], 50.0)
    assert state.status is Status.COMPLETED
    assert (state.settled, state.started, state.ended_at, state.started_at) == (3, 3, 50.0, 50.0)
    assert state_at(plan, [], 49.0).status is Status.PENDING


def test_empty_plan_completes_after_scan_and_finalize():
    plan = Plan("job-e", 0.0, "custom", TIMING, 0, Tally())
    assert natural_end(plan) == 4.0
    state = state_at(plan, [], 4.0)
    assert (state.status, state.settled, state.stage) == (Status.COMPLETED, 0, Stage.FINALIZING)
    assert progress(plan, state, Tally()) == Progress(0, 0, 0, 0, 0, 0, 0)


def test_completed_job_has_settled_every_item_when_finalize_is_zero():
    # created 0, starts 0, items [0.1, 0.4) and [0.2, 0.5); the job ends at 0.5.
    plan = NO_FINALIZE
    assert natural_end(plan) == 0.5
    state = state_at(plan, [], 0.5)
    assert state.status is Status.COMPLETED
    assert state.settled == 2, "a completed job reports an item as not yet processed"
    assert item_state(plan, state, EDGE_ITEMS[1]).status is ItemStatus.COMPLETED


def test_an_item_ending_after_now_is_not_settled_yet():
    plan = ROUNDING
    t = engine.item_window(plan, 3)[0]
    end_of_item_2 = engine.item_window(plan, 2)[1]
    assert t < end_of_item_2  # 2.1999999999999997 < 2.2
    state = state_at(plan, [], t)
    assert state.settled == 2, "an item whose window ends after now is counted as done"
    assert state.updated_at <= state.as_of


def test_stuck_job_with_a_planned_item_stage_failure_can_be_cancelled():
    plan = STUCK_FAILING
    fails_at = failure_time(plan)
    assert fails_at is not None
    assert not math.isnan(fails_at), "failure_time is NaN for a job that never starts"
    state = state_at(plan, [USER_CANCEL], 10.0)
    assert state.status is Status.CANCELLED
    assert state.cancelled_at == 7.0


def test_a_cancel_at_the_instant_of_the_system_cancel_does_not_take_it_over():
    plan = four_item_plan(cancel_after=5.0)
    system_only = state_at(plan, [], 200.0)
    assert (system_only.cancelled_at, system_only.cancelled_by) == (105.0, SYSTEM_ACTOR)
    # The job is already cancelled at 105 by the system; a user cancel at that same instant
    # is not earlier, so it must change nothing (whatever the user's name sorts as).
    for actor in ("admin", "user-ada"):
        late = Event(EventKind.CANCEL, 105.0, actor)
        assert state_at(plan, [late], 200.0) == system_only, actor


def test_a_tiny_item_gap_does_not_crash():
    # A valid Timing (gap > 0, duration >= gap); e.g. a huge speed-up of a scenario.
    plan = Plan("job-t", 0.0, "custom", Timing(0.0, 0.0, 5e-324, 1.0, 0.0), 3, Tally())
    state = state_at(plan, [], 0.5)
    assert (state.status, state.started, state.settled) == (Status.RUNNING, 3, 0)


def test_a_stuck_job_is_still_pending_at_the_end_of_time():
    plan, _ = plan_job(
        job_id="stuck",
        created_at=0.0,
        scenario=CATALOGUE["stuck_pending"],
        work=[Work(f"k{i}") for i in range(3)],
        seed="s",
    )
    state = state_at(plan, (), math.inf)
    assert (state.status, state.started_at, state.settled, state.started) == (
        Status.PENDING,
        None,
        0,
        0,
    )


# -- reached_at: when a job first gets somewhere --------------------------------------------

TARGETS = [("status", status) for status in Status] + [("stage", stage) for stage in STAGES]


def there(plan: Plan, events: tuple[Event, ...], target, t: float) -> bool:
    kind, value = target
    state = state_at(plan, events, t)
    return state.status is value if kind == "status" else engine.in_stage(state, value)


@PROPERTY
@given(scenes(n_times=6), st.sampled_from(TARGETS))
def test_reached_at_is_the_first_instant_the_job_is_there(scene, target):
    plan, _, events, times = scene
    kind, value = target
    found = engine.reached_at(plan, events, **{kind: value})
    checked = sorted(set(times) | set(milestones_of(plan, events)))
    if found is None:
        assert not [t for t in checked if there(plan, events, target, t)]
        return
    assert found >= plan.created_at
    assert there(plan, events, target, found)
    if found > plan.created_at:
        assert not there(plan, events, target, math.nextafter(found, -math.inf))
    assert not [
        t for t in checked if plan.created_at <= t < found and there(plan, events, target, t)
    ]


@PROPERTY
@given(scenes(n_times=2))
def test_a_job_reaches_the_status_it_ends_in_when_it_ends(scene):
    plan, _, events, _ = scene
    end, final = outcome(plan, events)
    found = engine.reached_at(plan, events, status=final)
    assert found == (None if math.isinf(end) else max(end, plan.created_at))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"status": Status.PENDING}, 100.0),
        ({"status": Status.RUNNING}, 101.0),
        ({"status": Status.COMPLETED_WITH_FAILURES}, 109.0),
        ({"status": Status.COMPLETED}, None),
        ({"status": Status.FAILED}, None),
        ({"stage": Stage.SCANNING}, 101.0),
        ({"stage": Stage.EXTRACTING}, 103.0),
        ({"stage": Stage.CHUNKING}, 103.5),
        ({"stage": Stage.TAGGING}, 104.0),
        ({"stage": Stage.EMBEDDING}, 104.5),
        ({"stage": Stage.FINALIZING}, 108.0),
    ],
)
def test_four_item_plan_reaches(target, expected):
    assert engine.reached_at(four_item_plan(), (), **target) == expected


def test_a_failed_job_is_in_the_stage_it_failed_in():
    # Fails as it starts extracting: never runs in it, but fails in it.
    failing = four_item_plan(failure=Failure(Stage.EXTRACTING, "boom", "it broke", 0.0))
    assert engine.reached_at(failing, (), stage=Stage.EXTRACTING) == 103.0
    assert state_at(failing, (), 103.0).status is Status.FAILED
    assert engine.reached_at(failing, (), stage=Stage.CHUNKING) is None
    assert engine.reached_at(failing, (), status=Status.FAILED) == 103.0
    # Runs in embedding before failing there: the first time counts.
    late = four_item_plan(failure=Failure(Stage.EMBEDDING, "boom", "it broke", 0.5))
    assert engine.reached_at(late, (), stage=Stage.EMBEDDING) == 104.5
    assert engine.reached_at(late, (), stage=Stage.FINALIZING) is None


def test_a_cancel_ends_the_journey():
    cancel = (Event(EventKind.CANCEL, 105.5, "user-ada"),)
    plan = four_item_plan()
    assert engine.reached_at(plan, cancel, stage=Stage.EMBEDDING) == 104.5
    assert engine.reached_at(plan, cancel, stage=Stage.FINALIZING) is None
    assert engine.reached_at(plan, cancel, status=Status.CANCELLED) == 105.5
    assert engine.reached_at(plan, cancel, status=Status.COMPLETED_WITH_FAILURES) is None
    stuck = four_item_plan(timing=replace(TIMING, queue=math.inf))
    assert engine.reached_at(stuck, (), status=Status.RUNNING) is None
    assert engine.reached_at(stuck, (), status=Status.PENDING) == CREATED


def test_reached_at_takes_exactly_one_target():
    with pytest.raises(ValueError):
        engine.reached_at(four_item_plan(), ())
    with pytest.raises(ValueError):
        engine.reached_at(four_item_plan(), (), status=Status.RUNNING, stage=Stage.TAGGING)
