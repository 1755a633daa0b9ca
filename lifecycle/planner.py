"""Make a job's plan from what was requested, a scenario and a seed."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from .engine import natural_end
from .model import ITEM_STAGES, Item, Outcome, Plan, Stage, Tally, Timing
from .scenarios import Scenario, stage_error


@dataclass(frozen=True)
class Work:
    """One requested item before the scenario decides its fate.

    ``forced`` is set when the request itself decides the outcome (a magic file name, an
    unsupported type, a file already indexed); the scenario never overrides it.
    """

    key: str
    units: int = 1
    forced: Outcome | None = None
    fail_stage: Stage | None = None
    error_code: str | None = None
    error_message: str | None = None
    extra: Mapping[str, int] = field(default_factory=dict)


def _scale(value: float, factor: float) -> float:
    return value if math.isinf(value) else value * factor


def scaled_timing(timing: Timing, factor: float) -> Timing:
    return Timing(
        queue=_scale(timing.queue, factor),
        scan=_scale(timing.scan, factor),
        item_gap=_scale(timing.item_gap, factor),
        item_duration=_scale(timing.item_duration, factor),
        finalize=_scale(timing.finalize, factor),
    )


def plan_job(
    *,
    job_id: str,
    created_at: float,
    scenario: Scenario,
    work: Sequence[Work],
    seed: str,
    time_scale: float = 1.0,
    listed: bool = False,
) -> tuple[Plan, tuple[Item, ...]]:
    """Plan a job. ``listed`` means the items come from scanning a source (a bucket): a
    job that fails while scanning then never discovers them."""
    if time_scale < 0:
        raise ValueError("time_scale cannot be negative")
    rng = random.Random(seed)
    factor = time_scale
    if scenario.jitter:
        factor *= 1 + rng.uniform(-scenario.jitter, scenario.jitter)
    timing = scaled_timing(scenario.timing, factor)

    failure = scenario.failure
    if listed and failure is not None and failure.stage is Stage.SCANNING:
        work = ()

    failing = _choose_failing(rng, work, scenario.item_failure_rate)
    items = tuple(_item(rng, ordinal, w, ordinal in failing) for ordinal, w in enumerate(work))
    plan = Plan(
        job_id=job_id,
        created_at=created_at,
        scenario=scenario.name,
        timing=timing,
        n_items=len(items),
        totals=Tally.of(items),
        failure=failure,
    )
    if scenario.cancel_at is not None:
        run = natural_end(plan) - created_at
        if not math.isinf(run):
            plan = replace(plan, cancel_after=run * scenario.cancel_at)
    return plan, items


def _choose_failing(rng: random.Random, work: Sequence[Work], rate: float) -> set[int]:
    """The items the scenario fails, among those the request leaves to it: a share
    ``rate`` of them, at least one. Below a rate of 1, one item is left to complete
    whenever the job then still has a failed item, so it ends with both (see
    ``Scenario.item_failure_rate``)."""
    if rate <= 0:
        return set()
    candidates = [i for i, w in enumerate(work) if w.forced is None]
    failing = {i for i in candidates if rng.random() < rate}
    if not failing and candidates:
        failing.add(candidates[len(candidates) // 2])
    if rate < 1 and candidates and len(failing) == len(candidates):
        completes_anyway = any(w.forced is Outcome.COMPLETED for w in work)
        fails_anyway = any(w.forced is Outcome.FAILED for w in work)
        if not completes_anyway and (len(candidates) > 1 or fails_anyway):
            failing.discard(rng.choice(candidates))
    return failing


def _item(rng: random.Random, ordinal: int, work: Work, fails: bool) -> Item:
    if work.forced is not None:
        stage = work.fail_stage or (Stage.EXTRACTING if work.forced is Outcome.FAILED else None)
        return Item(
            ordinal=ordinal,
            key=work.key,
            outcome=work.forced,
            units=work.units,
            fail_stage=stage,
            error_code=work.error_code,
            error_message=work.error_message,
            extra=work.extra,
        )
    if fails:
        stage = rng.choice(ITEM_STAGES)
        code, message = stage_error(stage)
        return Item(ordinal, work.key, Outcome.FAILED, work.units, stage, code, message, work.extra)
    return Item(ordinal, work.key, Outcome.COMPLETED, work.units, extra=work.extra)
