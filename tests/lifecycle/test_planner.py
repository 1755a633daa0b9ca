"""``lifecycle.planner``: plans are a pure function of request, scenario and seed."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pollable.lifecycle.engine import natural_end, state_at
from pollable.lifecycle.model import ITEM_STAGES, Failure, Outcome, Stage, Status, Tally, Timing
from pollable.lifecycle.planner import Work, plan_job, scaled_timing
from pollable.lifecycle.scenarios import CATALOGUE, Scenario, stage_error

PROPERTY = settings(max_examples=100, deadline=None, database=None)
CREATED = 1_700_000_000.0
TIMING_FIELDS = ("queue", "scan", "item_gap", "item_duration", "finalize")


def plain_work(n: int) -> list[Work]:
    return [Work(f"file-{i:04d}.pdf", units=i % 7 + 1) for i in range(n)]


def plan(name: str, work: list[Work] | None = None, **options):
    options.setdefault("seed", "seed-1")
    return plan_job(
        job_id="job-1",
        created_at=CREATED,
        scenario=CATALOGUE[name],
        work=plain_work(12) if work is None else work,
        **options,
    )


def timing_values(timing: Timing) -> list[float]:
    return [getattr(timing, name) for name in TIMING_FIELDS]


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_same_seed_same_plan(name):
    assert plan(name) == plan(name)


def test_different_seeds_give_different_jitter():
    timings = {plan("happy", seed=f"seed-{i}")[0].timing for i in range(10)}
    assert len(timings) == 10


@PROPERTY
@given(
    st.sampled_from(sorted(CATALOGUE)),
    st.integers(0, 40),
    st.text(max_size=10),
    st.sampled_from([0.0, 0.001, 1.0]),
    st.booleans(),
)
def test_plan_shape(name, n, seed, time_scale, listed):
    scenario = CATALOGUE[name]
    work = plain_work(n)
    job, items = plan(name, work, seed=seed, time_scale=time_scale, listed=listed)
    assert job == plan(name, work, seed=seed, time_scale=time_scale, listed=listed)[0]
    assert job.job_id == "job-1" and job.created_at == CREATED
    assert job.scenario == name
    assert job.failure == scenario.failure
    assert job.n_items == len(items)
    assert [item.ordinal for item in items] == list(range(len(items)))
    assert job.totals == Tally.of(items)
    dropped = listed and scenario.failure is not None and scenario.failure.stage is Stage.SCANNING
    assert len(items) == (0 if dropped else n)
    for item, w in zip(items, work, strict=False):
        assert (item.key, item.units) == (w.key, w.units)
        assert item.outcome in (Outcome.COMPLETED, Outcome.FAILED)
        if item.outcome is Outcome.FAILED:
            assert item.fail_stage in ITEM_STAGES
            assert (item.error_code, item.error_message) == stage_error(item.fail_stage)
        else:
            assert item.fail_stage is None and item.error_code is None
    if scenario.item_failure_rate == 0:
        assert job.totals.failed == 0


@pytest.mark.parametrize("name", sorted(CATALOGUE))
@pytest.mark.parametrize("time_scale", [0.001, 1.0, 10.0])
def test_time_scale_scales_every_duration(name, time_scale):
    base = plan(name)[0].timing
    scaled = plan(name, time_scale=time_scale)[0].timing
    for unscaled, value in zip(timing_values(base), timing_values(scaled), strict=True):
        if math.isinf(unscaled):
            assert math.isinf(value)
        else:
            assert value == pytest.approx(unscaled * time_scale)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_time_scale_zero_makes_everything_instant(name):
    job, _ = plan(name, time_scale=0.0)
    for field, value in zip(TIMING_FIELDS, timing_values(job.timing), strict=True):
        if math.isinf(CATALOGUE[name].timing.queue) and field == "queue":
            assert math.isinf(value), "inf stays inf"
        else:
            assert value == 0.0, field
    if not math.isinf(job.timing.queue):
        assert natural_end(job) == CREATED
        assert state_at(job, [], CREATED).status.terminal


def test_infinite_durations_stay_infinite_at_any_scale():
    timing = Timing(math.inf, 1.0, 0.5, 2.0, 1.0)
    for factor in (0.0, 0.001, 1.0, 1e6):
        scaled = scaled_timing(timing, factor)
        assert math.isinf(scaled.queue)
        assert scaled.scan == factor


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_jitter_stays_within_the_scenario_bounds(name):
    scenario = CATALOGUE[name]
    for i in range(20):
        job, _ = plan(name, seed=f"s{i}")
        for base, value in zip(
            timing_values(scenario.timing), timing_values(job.timing), strict=True
        ):
            if math.isinf(base):
                assert math.isinf(value)
            else:
                low, high = base * (1 - scenario.jitter), base * (1 + scenario.jitter)
                assert low - 1e-9 <= value <= high + 1e-9


def test_no_jitter_keeps_the_scenario_timing_exactly():
    assert plan("instant")[0].timing == CATALOGUE["instant"].timing
    assert plan("stuck_pending")[0].timing == CATALOGUE["stuck_pending"].timing


def test_negative_time_scale_is_rejected():
    with pytest.raises(ValueError, match="time_scale"):
        plan("happy", time_scale=-1.0)


def test_partial_fails_at_least_one_item_even_in_a_small_job():
    for i in range(50):
        _, items = plan("partial", plain_work(2), seed=f"s{i}")
        assert any(item.outcome is Outcome.FAILED for item in items)


def test_partial_fails_roughly_a_third_of_many_items():
    failed = total = 0
    for i in range(10):
        job, items = plan("partial", plain_work(600), seed=f"s{i}")
        assert job.totals.failed == sum(item.outcome is Outcome.FAILED for item in items)
        failed += job.totals.failed
        total += len(items)
    assert 0.29 <= failed / total <= 0.38


def test_partial_job_completes_with_failures():
    job, _ = plan("partial")
    assert state_at(job, [], natural_end(job)).status is Status.COMPLETED_WITH_FAILURES


def test_partial_with_a_single_item_fails_it_and_the_job():
    # One item cannot be partly processed: partial fails it (see the scenario).
    for i in range(20):
        job, items = plan("partial", plain_work(1), seed=f"s{i}")
        assert [item.outcome for item in items] == [Outcome.FAILED]
        state = state_at(job, [], natural_end(job))
        assert (state.status, state.error_code) == (Status.FAILED, "all_items_failed")


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_partial_never_fails_every_item(n):
    for i in range(100):
        job, items = plan("partial", plain_work(n), seed=f"s{i}")
        outcomes = {item.outcome for item in items}
        assert outcomes == {Outcome.COMPLETED, Outcome.FAILED}, f"seed s{i}"
        assert state_at(job, [], natural_end(job)).status is Status.COMPLETED_WITH_FAILURES


def test_partial_beside_a_file_that_fails_anyway_completes_the_other():
    corrupt = Work("corrupt.pdf", 1, Outcome.FAILED, None, "file_corrupt", "corrupt")
    for i in range(20):
        job, items = plan("partial", [corrupt, *plain_work(1)], seed=f"s{i}")
        assert [item.outcome for item in items] == [Outcome.FAILED, Outcome.COMPLETED]
        assert state_at(job, [], natural_end(job)).status is Status.COMPLETED_WITH_FAILURES


forced_outcomes = st.sampled_from([None, None, Outcome.COMPLETED, Outcome.FAILED, Outcome.SKIPPED])


@PROPERTY
@given(st.lists(forced_outcomes, max_size=12), st.text(max_size=6))
def test_partial_ends_partial_whenever_the_request_allows(forced, seed):
    work = [Work(f"f{i}.pdf", 1, outcome) for i, outcome in enumerate(forced)]
    job, items = plan("partial", work, seed=seed)
    free = forced.count(None)
    can_complete = free + forced.count(Outcome.COMPLETED)
    can_fail = free + forced.count(Outcome.FAILED)
    status = state_at(job, [], natural_end(job)).status
    if not free:
        return  # the request decided every item: nothing for the scenario to do
    assert any(item.outcome is Outcome.FAILED for item in items), "partial failed nothing"
    if can_complete >= 2 or can_fail >= 2:
        assert status is Status.COMPLETED_WITH_FAILURES
    else:  # its one free item is the only one that could complete or fail
        assert status is Status.FAILED


def test_a_failure_rate_of_one_fails_every_item_and_the_job():
    scenario = Scenario("all_fail", "every item fails", item_failure_rate=1.0)
    job, items = plan_job(
        job_id="j", created_at=CREATED, scenario=scenario, work=plain_work(3), seed="s"
    )
    assert {item.outcome for item in items} == {Outcome.FAILED}
    state = state_at(job, [], natural_end(job))
    assert (state.status, state.error_code) == (Status.FAILED, "all_items_failed")


FORCED = [
    Work("ok.pdf", 3, Outcome.COMPLETED),
    Work("bad.pdf", 4, Outcome.FAILED, None, "file_corrupt", "corrupt"),
    Work("deep.pdf", 5, Outcome.FAILED, Stage.TAGGING, "tag", "no tags"),
    Work("old.pdf", 6, Outcome.SKIPPED, None, "already_indexed", "skipped", {"pages": 6}),
]


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_forced_outcomes_are_never_overridden(name):
    for i in range(10):
        _, items = plan(name, FORCED * 5, seed=f"s{i}")
        for item, w in zip(items, FORCED * 5, strict=False):
            assert item.outcome is w.forced
            assert (item.key, item.units, item.error_code, item.error_message) == (
                w.key, w.units, w.error_code, w.error_message,
            )  # fmt: skip
            assert item.extra == w.extra
    _, items = plan(name, FORCED)
    if items:
        stages = [item.fail_stage for item in items]
        # A forced failure without a stage fails in extracting; a given stage is kept.
        assert stages == [None, Stage.EXTRACTING, Stage.TAGGING, None]


def test_partial_only_fails_unforced_items():
    work = [*FORCED, *plain_work(30)]
    for i in range(20):
        _, items = plan("partial", work, seed=f"s{i}")
        assert [item.outcome for item in items[:4]] == [w.forced for w in FORCED]
        assert any(item.outcome is Outcome.FAILED for item in items[4:])


def test_partial_with_only_forced_items_adds_no_failure():
    _, items = plan("partial", FORCED[:1] * 5)
    assert all(item.outcome is Outcome.COMPLETED for item in items)


def test_listed_scanning_failure_discovers_no_items():
    job, items = plan("fails_at_scanning", plain_work(20), listed=True)
    assert items == () and job.n_items == 0 and job.totals == Tally()
    assert job.failure is not None and job.failure.stage is Stage.SCANNING


def test_unlisted_scanning_failure_keeps_the_items():
    job, items = plan("fails_at_scanning", plain_work(20), listed=False)
    assert len(items) == job.n_items == 20


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.SCANNING])
def test_listed_failure_after_scanning_keeps_the_items(stage):
    job, items = plan(f"fails_at_{stage.value}", plain_work(20), listed=True)
    assert len(items) == job.n_items == 20


def test_listed_with_a_custom_scanning_failure_drops_items():
    denied = Failure(Stage.SCANNING, "bucket_access_denied", "denied")
    scenario = replace(CATALOGUE["happy"], failure=denied)
    job, items = plan_job(
        job_id="j", created_at=0.0, scenario=scenario, work=plain_work(5), seed="s", listed=True
    )
    assert (job.n_items, items, job.failure) == (0, (), denied)


@pytest.mark.parametrize("time_scale", [0.001, 1.0, 7.5])
def test_cancelled_scenario_cancels_halfway(time_scale):
    for i in range(10):
        job, _ = plan("cancelled", seed=f"s{i}", time_scale=time_scale)
        run = natural_end(job) - job.created_at
        assert job.cancel_after == pytest.approx(run / 2)
        state = state_at(job, [], job.created_at + run)
        assert state.status is Status.CANCELLED
        assert state.ended_at == pytest.approx(job.created_at + run / 2)


def test_other_scenarios_plan_no_system_cancel():
    for name in CATALOGUE:
        if name != "cancelled":
            assert plan(name)[0].cancel_after is None


def test_a_stuck_cancelled_scenario_plans_no_cancel():
    scenario = Scenario(
        "stuck_cancel", "never starts", timing=replace(CATALOGUE["happy"].timing, queue=math.inf),
        cancel_at=0.5, jitter=0.0,
    )  # fmt: skip
    job, _ = plan_job(job_id="j", created_at=0.0, scenario=scenario, work=[], seed="s")
    assert job.cancel_after is None


def test_empty_work_plans_an_empty_job():
    job, items = plan("happy", [])
    assert (job.n_items, items, job.totals) == (0, (), Tally())
