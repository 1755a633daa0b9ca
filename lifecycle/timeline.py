"""A job's life as data, for a picture of it: its phases, when each stage is first
reached, how many items have settled over time, and where it failed or was cancelled.

Everything is derived from the plan and the events with the engine's own functions
(``state_at``, ``reached_at``, ``outcome``), so the picture never disagrees with what a
poll shows. Pure: no I/O, and the same plan, events and ``samples`` give the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .engine import (
    SYSTEM_ACTOR,
    job_failure,
    natural_end,
    outcome,
    processing_end,
    processing_start,
    reached_at,
    started_at,
    state_at,
)
from .model import STAGES, Event, EventKind, Plan, Stage, Status

#: How many points of the settling curve a timeline carries, at most: enough for a smooth
#: picture, and the same cost for 10 items as for 100,000.
SAMPLES = 48


@dataclass(frozen=True)
class Phase:
    """A stretch of the job: ``queue``, ``scanning``, ``processing`` (each item walks the
    item stages in its own slot) or ``finalizing``. ``end`` None: it never ends."""

    name: str
    start: float
    end: float | None


@dataclass(frozen=True)
class Timeline:
    created_at: float
    #: When the job ends (None: never, a job stuck in the queue) and how.
    ends_at: float | None
    final_status: Status
    #: The phases the job goes through, cut at its end.
    phases: tuple[Phase, ...]
    #: The first instant the job is in each stage it reaches, in stage order.
    stages: tuple[tuple[Stage, float], ...]
    #: ``(t, settled items)``, increasing in t, from processing's start to the job's end.
    settling: tuple[tuple[float, int], ...]
    n_items: int
    #: Where the job fails (its stage and when), if it does.
    failed_at: float | None
    failed_stage: Stage | None
    #: When and by whom it is cancelled, if it is.
    cancelled_at: float | None
    cancelled_by: str | None


def _finite(moment: float) -> float | None:
    return None if math.isinf(moment) else moment


def _phases(plan: Plan, end: float) -> tuple[Phase, ...]:
    bounds = (
        ("queue", plan.created_at, started_at(plan)),
        ("scanning", started_at(plan), processing_start(plan)),
        ("processing", processing_start(plan), processing_end(plan)),
        ("finalizing", processing_end(plan), natural_end(plan)),
    )
    phases = []
    for name, start, stop in bounds:
        stop = min(stop, end)
        if math.isinf(start) or start > stop or (start == stop and name != "queue"):
            continue
        phases.append(Phase(name, start, _finite(stop)))
    return tuple(phases)


def _settling(
    plan: Plan, events: tuple[Event, ...], end: float, samples: int
) -> tuple[tuple[float, int], ...]:
    first, last = processing_start(plan), min(processing_end(plan), end)
    if plan.n_items == 0 or math.isinf(first) or math.isinf(last) or last < first:
        return ()
    steps = max(1, samples - 1)
    moments = sorted({first + (last - first) * i / steps for i in range(steps)} | {last})
    return tuple((t, state_at(plan, events, t).settled) for t in moments)


def timeline(plan: Plan, events: Iterable[Event] = (), *, samples: int = SAMPLES) -> Timeline:
    """The job's whole life, as far as the plan and the events so far say."""
    events = tuple(events)
    end, final = outcome(plan, events)
    stages = tuple(
        (stage, moment)
        for stage in STAGES
        if (moment := reached_at(plan, events, stage=stage)) is not None
    )
    failure = job_failure(plan) if final is Status.FAILED and not math.isinf(end) else None
    cancel = None
    if final is Status.CANCELLED and not math.isinf(end):
        actors = [(e.at, e.actor) for e in events if e.kind is EventKind.CANCEL]
        if plan.cancel_after is not None:
            actors.append((plan.created_at + plan.cancel_after, SYSTEM_ACTOR))
        cancel = min(actors, key=lambda pair: pair[0])
    return Timeline(
        created_at=plan.created_at,
        ends_at=_finite(end),
        final_status=final,
        phases=_phases(plan, end),
        stages=stages,
        settling=_settling(plan, events, end, samples),
        n_items=plan.n_items,
        failed_at=_finite(end) if failure is not None else None,
        failed_stage=failure.stage if failure is not None else None,
        cancelled_at=cancel[0] if cancel else None,
        cancelled_by=cancel[1] if cancel else None,
    )
