"""When a job next changes: what a poller may wait for (``Retry-After``).

``next_change(plan, events, t)`` is the first instant after ``t`` at which a read of the
job shows something else: its status, stage, timestamps, counts, or any item's status,
stage or ``updated_at``. Every candidate is computed with the very expression
``state_at`` compares against, so the state is the same on ``[t, next_change)`` and
differs at ``next_change`` (``tests/lifecycle/test_changes.py`` checks both). Its cost
does not grow with the number of items: the next item to start or finish is arithmetic,
and the next item to reach a stage is a bisection over the items in flight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .engine import (
    first_where,
    item_window,
    outcome,
    processing_end,
    processing_start,
    settled_by,
    started_at,
    started_by,
)
from .model import ITEM_STAGES, Event, JobState, Plan

#: How many floats past the planned instant a stage boundary may show up (rounding).
_STEPS = 64


def next_change(
    plan: Plan,
    events: Iterable[Event],
    t: float,
    *,
    items: bool = True,
    state: JobState | None = None,
) -> float | None:
    """The first instant after ``t`` at which the job's state differs from its state at
    ``t``, given ``events``; None if it never does (terminal, or stuck with nothing
    planned). With ``items=False``, only the status and the job's own timestamps count
    (``started_at``, ``ended_at``): what a read that shows no progress sees. ``state``,
    if given, is ``state_at(plan, events, t)``, already computed by the caller.

    A cancel yet to be requested cannot be foreseen: it changes the job earlier.
    """
    end, _ = outcome(plan, tuple(events))
    if t >= end and not math.isinf(end):
        return None
    candidates = [end, started_at(plan)]
    if items:
        p0 = processing_start(plan)
        candidates += [p0, processing_end(plan)]
        if state is not None:
            settled, started = state.settled, state.started
        else:
            settled, started = settled_by(plan, t), started_by(plan, t)
        if started < plan.n_items:
            candidates.append(item_window(plan, started)[0])
        if settled < plan.n_items:
            candidates.append(item_window(plan, settled)[1])
        soonest = min(c for c in candidates if c > t)
        candidates += _stage_steps(plan, p0, t, settled, started, soonest)
    later = [c for c in candidates if c > t and math.isfinite(c)]
    return min(later, default=None)


def _stage_steps(
    plan: Plan, p0: float, t: float, settled: int, started: int, soonest: float
) -> list[float]:
    """For each item stage after the first, when the next item in flight reaches it (if
    not well after ``soonest``, the earliest other change).

    Items in flight are ``[settled, started)``; an older item is never behind a younger
    one, so the first not yet in stage k is found by bisection, and it is the next to get
    there (an item yet to start gets there after it starts, a change of its own).

    Whether item i is in stage k or later at s is ``stage_index(s - start_i, duration) >=
    k``, written out (``int(elapsed / duration * 4) >= k``; the clamp to 0..3 cannot change
    it for k in 1..3) because this runs on every poll. ``test_changes`` holds it to
    ``state_at``."""
    duration, gap = plan.timing.item_duration, plan.timing.item_gap
    if duration <= 0 or settled >= started:
        return []
    n_stages = len(ITEM_STAGES)
    steps = []
    for k in range(1, n_stages):
        low, high = settled, started
        while low < high:
            middle = (low + high) // 2
            if int((t - (p0 + middle * gap)) / duration * n_stages) >= k:
                low = middle + 1
            else:
                high = middle
        if low == started:
            continue
        start = p0 + low * gap
        planned = start + duration * k / n_stages
        if planned > soonest + math.ulp(soonest) * _STEPS:
            continue  # well after another change: it cannot be the next one
        steps.append(_reaches(start, duration, k, planned, t))
    return steps


def _reaches(start: float, duration: float, k: int, planned: float, t: float) -> float:
    """The first float after ``t`` at which an item that started at ``start`` is in stage
    ``k`` or later (it is not at ``t``): the ``planned`` instant, settled against the
    engine's own expression."""
    n_stages = len(ITEM_STAGES)

    def there(s: float) -> bool:
        return int((s - start) / duration * n_stages) >= k

    end = start + duration
    guess = max(planned, math.nextafter(t, end))
    for _ in range(_STEPS):
        if there(guess):
            break
        guess = math.nextafter(guess, math.inf)
    else:
        return first_where(there, t, end)
    for _ in range(_STEPS):
        earlier = math.nextafter(guess, -math.inf)
        if earlier <= t or not there(earlier):
            return guess
        guess = earlier
    return first_where(there, t, guess)
