"""``state_at(plan, events, now)``: what a job is at any moment, computed, never stored.

The timeline of a plan::

    created ──queue──> started ──scan──> p0 ──items──> pe ──finalize──> natural end

Item ``i`` is in flight during ``[p0 + i*gap, p0 + i*gap + duration)``; items finish in
ordinal order, so "how many items are done at time t" is arithmetic, whatever the
number of items. A failure or a cancel stops the timeline early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from .model import (
    ITEM_STAGES,
    Event,
    EventKind,
    Failure,
    Item,
    ItemState,
    ItemStatus,
    JobState,
    Outcome,
    Plan,
    Progress,
    Stage,
    Status,
    Tally,
)

SYSTEM_ACTOR = "system"

#: How a job ends when items failed and none completed: ``failed``, at the end of
#: finalizing, with an error, as the upstream reports a job that indexed nothing.
#: (Completed with failures always means some items completed and some failed.)
ALL_ITEMS_FAILED = Failure(
    Stage.FINALIZING,
    "all_items_failed",
    "Every item failed: nothing was processed (each item has its own error)",
    at=1.0,
)


def started_at(plan: Plan) -> float:
    return plan.created_at + plan.timing.queue


def processing_start(plan: Plan) -> float:
    return started_at(plan) + plan.timing.scan


def item_window(plan: Plan, ordinal: int) -> tuple[float, float]:
    start = processing_start(plan) + ordinal * plan.timing.item_gap
    return start, start + plan.timing.item_duration


def completes_at(plan: Plan, item: Item) -> float | None:
    """When ``item`` is done and its content indexed, if the job runs that far: the end of
    its processing window for an item planned to complete, else None (it never is).

    The job shows the item completed from that instant unless it stopped (cancel or
    failure) strictly before: the item is indexed iff
    ``completes_at(plan, item) <= min(now, outcome(plan, events)[0])``.
    """
    if item.outcome is not Outcome.COMPLETED:
        return None
    return item_window(plan, item.ordinal)[1]


def processing_end(plan: Plan) -> float:
    if plan.n_items == 0:
        return processing_start(plan)
    return item_window(plan, plan.n_items - 1)[1]


def natural_end(plan: Plan) -> float:
    return processing_end(plan) + plan.timing.finalize


def _point(start: float, length: float, fraction: float) -> float:
    """``start + length * fraction``, without the NaN that infinite durations would give."""
    if math.isinf(start):
        return start
    if math.isinf(length):
        return start if fraction == 0 else math.inf
    return start + length * fraction


def job_failure(plan: Plan) -> Failure | None:
    """What makes the job fail, if anything: the plan's failure, or ``ALL_ITEMS_FAILED``
    when items failed and none completed (skipped items are not completed)."""
    if plan.failure is not None:
        return plan.failure
    totals = plan.totals
    if totals.failed and totals.failed + totals.skipped == plan.n_items:
        return ALL_ITEMS_FAILED
    return None


def failure_time(plan: Plan) -> float | None:
    failure = job_failure(plan)
    if failure is None:
        return None
    if failure.stage is Stage.SCANNING:
        return _point(started_at(plan), plan.timing.scan, failure.at)
    pe = processing_end(plan)
    if failure.stage is Stage.FINALIZING:
        return _point(pe, plan.timing.finalize, failure.at)
    p0 = processing_start(plan)
    return _point(p0, math.inf if math.isinf(pe) else pe - p0, failure.at)


def _count_reached(plan: Plan, t: float, moment: Callable[[int], float], lag: float) -> int:
    """How many items' ``moment(i)`` (non-decreasing in i) is at or before ``t``.

    Arithmetic gives the answer up to float rounding; it is then settled against the very
    expression ``moment`` uses, so counts and per-item windows always agree.
    """
    n = plan.n_items
    first = moment(0)
    if n == 0 or t < first or math.isinf(first):
        return 0
    gap = plan.timing.item_gap
    if gap == 0:
        return n
    estimate = (t - processing_start(plan) - lag) / gap
    k = n if not estimate < n else max(0, math.floor(estimate) + 1)
    while k > 0 and moment(k - 1) > t:
        k -= 1
    while k < n and moment(k) <= t:
        k += 1
    return k


def settled_by(plan: Plan, t: float) -> int:
    """How many items have finished processing by time ``t``."""
    return _count_reached(plan, t, lambda i: item_window(plan, i)[1], plan.timing.item_duration)


def started_by(plan: Plan, t: float) -> int:
    return _count_reached(plan, t, lambda i: item_window(plan, i)[0], 0.0)


def _first_cancel(plan: Plan, events: Iterable[Event]) -> tuple[float, str] | None:
    """The earliest cancel; at the same instant, the planned (system) one came first."""
    cancels = []
    if plan.cancel_after is not None:
        cancels.append((plan.created_at + plan.cancel_after, SYSTEM_ACTOR))
    cancels += [(e.at, e.actor) for e in events if e.kind is EventKind.CANCEL]
    return min(cancels, key=lambda cancel: cancel[0], default=None)


def outcome(plan: Plan, events: Iterable[Event] = ()) -> tuple[float, Status]:
    """When the job ends and in which terminal status, given the events so far."""
    fail_at = failure_time(plan)
    planned_end = fail_at if fail_at is not None else natural_end(plan)
    cancel = _first_cancel(plan, events)
    if cancel is not None and cancel[0] < planned_end:
        return cancel[0], Status.CANCELLED
    if fail_at is not None:
        return fail_at, Status.FAILED
    if plan.totals.failed:
        return planned_end, Status.COMPLETED_WITH_FAILURES
    return planned_end, Status.COMPLETED


def applies(plan: Plan, events: Iterable[Event], event: Event) -> bool:
    """Whether appending ``event`` to ``events`` changes the job: what a store keeps.

    A cancel applies when the job is not over at the cancel's instant and no cancel has
    been kept before it. The first cancel kept wins, even against one stamped a moment
    earlier by a clock slightly behind: a job is cancelled once, by one request.
    """
    events = tuple(events)
    if any(e.kind is EventKind.CANCEL for e in events):
        return False
    end, _ = outcome(plan, events)
    return event.at < end


def _running_stage(plan: Plan, t: float, settled: int) -> Stage:
    if t < processing_start(plan):
        return Stage.SCANNING
    if t >= processing_end(plan):
        return Stage.FINALIZING
    start, _ = item_window(plan, settled)
    return _item_stage(plan, t - start)


def _item_stage(plan: Plan, elapsed: float) -> Stage:
    duration = plan.timing.item_duration
    if duration <= 0:
        return ITEM_STAGES[-1]
    return ITEM_STAGES[stage_index(elapsed, duration)]


def stage_index(elapsed: float, duration: float) -> int:
    """Which of ``ITEM_STAGES`` an item is in, ``elapsed`` seconds into its processing
    (``duration`` > 0): the one expression, shared with ``changes.next_change``."""
    index = int(elapsed / duration * len(ITEM_STAGES))
    return max(0, min(len(ITEM_STAGES) - 1, index))


def _last_change(plan: Plan, t: float, settled: int, started: int) -> float:
    moments = [plan.created_at]
    for moment in (started_at(plan), processing_start(plan), processing_end(plan)):
        if moment <= t:
            moments.append(moment)
    if settled:
        moments.append(item_window(plan, settled - 1)[1])
    if started:
        moments.append(item_window(plan, started - 1)[0])
    return max(moments)


def status_from(start: float, end: float, final: Status, now: float) -> Status:
    """The status at ``now`` of a job that leaves the queue at ``start`` and ends at ``end``
    in ``final``. The one rule in Python; each SQL backend mirrors it (``STATUS_SQL``) and
    the shared store suite checks they agree. A job that never starts (``start`` infinite)
    is pending even "at" infinity."""
    if now >= end and not math.isinf(end):
        return final
    return Status.RUNNING if now >= start and not math.isinf(start) else Status.PENDING


def state_at(plan: Plan, events: Iterable[Event], now: float) -> JobState:
    """The job's state at ``now``. Pure: the same plan, events and time give the same state."""
    events = tuple(events)
    end, final = outcome(plan, events)
    terminal = now >= end and not math.isinf(end)
    as_of = end if terminal else now
    start = started_at(plan)
    settled = settled_by(plan, as_of)
    started = started_by(plan, as_of)
    stopped = final in (Status.CANCELLED, Status.FAILED)
    cancel = _first_cancel(plan, events) if final is Status.CANCELLED else None

    status = status_from(start, end, final, now)

    failure = job_failure(plan) if status is Status.FAILED else None
    if status is Status.PENDING or (status is Status.CANCELLED and as_of < start):
        stage = None
    elif failure is not None:
        stage = failure.stage
    else:
        stage = _running_stage(plan, as_of, settled)

    return JobState(
        as_of=as_of,
        status=status,
        stage=stage,
        started_at=start if as_of >= start and not math.isinf(start) else None,
        ended_at=end if terminal else None,
        cancelled_at=cancel[0] if terminal and cancel else None,
        cancelled_by=cancel[1] if terminal and cancel else None,
        settled=settled,
        started=started,
        updated_at=end if terminal else _last_change(plan, as_of, settled, started),
        stopped_at=end if terminal and stopped else None,
        error_code=failure.code if failure else None,
        error_message=failure.message if failure else None,
        expected_end=None if terminal or math.isinf(natural_end(plan)) else natural_end(plan),
    )


def item_state(plan: Plan, state: JobState, item: Item) -> ItemState:
    """One item's state, given the job's state at the same moment."""
    start, end = item_window(plan, item.ordinal)
    if item.ordinal < state.settled:
        if item.outcome is Outcome.COMPLETED:
            return ItemState(ItemStatus.COMPLETED, ITEM_STAGES[-1], end, None, None)
        if item.outcome is Outcome.SKIPPED:
            return ItemState(ItemStatus.SKIPPED, None, end, item.error_code, item.error_message)
        return ItemState(
            ItemStatus.FAILED, item.fail_stage, end, item.error_code, item.error_message
        )
    if state.stopped_at is not None:
        if state.status is Status.CANCELLED:
            return ItemState(ItemStatus.CANCELLED, None, state.stopped_at, None, None)
        return ItemState(
            ItemStatus.FAILED, state.stage, state.stopped_at, state.error_code, state.error_message
        )
    if item.ordinal < state.started:
        elapsed = state.as_of - start
        stage = _item_stage(plan, elapsed)
        stage_index = ITEM_STAGES.index(stage)
        stage_started = start + plan.timing.item_duration * stage_index / len(ITEM_STAGES)
        return ItemState(ItemStatus.PROCESSING, stage, stage_started, None, None)
    return ItemState(ItemStatus.QUEUED, None, plan.created_at, None, None)


def prefix_needed(plan: Plan, state: JobState) -> int | None:
    """The prefix length whose tally ``progress`` needs, or None if the plan already knows it."""
    k = state.settled
    return None if k in (0, plan.n_items) else k


def known_tally(plan: Plan, k: int) -> Tally | None:
    if k == 0:
        return Tally()
    if k == plan.n_items:
        return plan.totals
    return None


def progress(plan: Plan, state: JobState, prefix: Tally) -> Progress:
    """Counts at the state's moment. ``prefix`` tallies the first ``state.settled`` items."""
    unsettled = plan.n_items - state.settled
    failed = prefix.failed
    cancelled = 0
    if state.status is Status.CANCELLED:
        cancelled = unsettled
    elif state.status is Status.FAILED:
        failed += unsettled
    return Progress(
        total=plan.n_items,
        processed=state.settled,
        completed=state.settled - prefix.failed - prefix.skipped,
        failed=failed,
        skipped=prefix.skipped,
        cancelled=cancelled,
        units=prefix.units,
    )


# -- when a job gets somewhere ----------------------------------------------------------------

#: How many ulps past the planned instant a state may show up, float rounding being what it is.
_SETTLE_STEPS = 16


def in_stage(state: JobState, stage: Stage) -> bool:
    """Whether a job is in ``stage``: running in it, or failed in it (the stage a failed job
    reports). A cancelled or finished job is in no stage."""
    return state.stage is stage and state.status in (Status.RUNNING, Status.FAILED)


def reached_at(
    plan: Plan, events: Iterable[Event], *, status: Status | None = None, stage: Stage | None = None
) -> float | None:
    """The first instant (at or after creation) at which the job is in ``status``, or in
    ``stage`` (``in_stage``); None if it never is. Exactly one of the two is given.

    The plan says when, as exact arithmetic; the answer is then settled against
    ``state_at`` itself, so that at the instant returned the job is there and at the float
    just before it is not. A stage shorter than the resolution of a float at that time (a
    sub-microsecond plan late in the epoch) may show at no float instant at all: None.
    """
    if (status is None) == (stage is None):
        raise ValueError("name exactly one of status and stage")
    events = tuple(events)
    if status is not None:
        wanted = status

        def holds(t: float) -> bool:
            return state_at(plan, events, t).status is wanted

        windows = _status_windows(plan, events, status)
    else:
        assert stage is not None
        place = stage

        def holds(t: float) -> bool:
            return in_stage(state_at(plan, events, t), place)

        windows = _stage_windows(plan, events, stage)
    for start, stop in windows:
        found = _settle(plan.created_at, holds, start, stop)
        if found is not None:
            return found
    return None


def _status_windows(
    plan: Plan, events: tuple[Event, ...], status: Status
) -> list[tuple[float, float]]:
    """Where, in exact arithmetic, the job is first in ``status``: ``[start, stop)``."""
    start = started_at(plan)
    end, final = outcome(plan, events)
    if status is Status.PENDING:
        stop = min(start, end)
        return [(plan.created_at, stop)] if plan.created_at < stop else []
    if status is Status.RUNNING:
        return [(start, end)] if not math.isinf(start) and start < end else []
    if status is final and not math.isinf(end):
        return [(max(end, plan.created_at), math.inf)]
    return []


def _stage_windows(
    plan: Plan, events: tuple[Event, ...], stage: Stage
) -> list[tuple[float, float]]:
    """Where, in exact arithmetic, the job is first in ``stage``: running in it (the first
    item walks every item stage), then failed in it."""
    end, final = outcome(plan, events)
    start, p0, pe = started_at(plan), processing_start(plan), processing_end(plan)
    windows = []
    if stage is Stage.SCANNING:
        running = (start, p0)
    elif stage is Stage.FINALIZING:
        running = (pe, natural_end(plan))
    elif plan.n_items:
        duration, index = plan.timing.item_duration, ITEM_STAGES.index(stage)
        quarter = duration / len(ITEM_STAGES)
        running = (p0 + quarter * index, p0 + quarter * (index + 1))
    else:
        running = (math.inf, math.inf)
    first, stop = running[0], min(running[1], end)
    if not math.isinf(first) and first < stop:
        windows.append((first, stop))
    failed_here = plan.failure is not None and plan.failure.stage is stage
    if final is Status.FAILED and failed_here and not math.isinf(end):
        windows.append((max(end, plan.created_at), math.inf))
    return windows


def _settle(
    created: float, holds: Callable[[float], bool], start: float, stop: float
) -> float | None:
    """The first float ``t >= created`` where ``holds(t)``, given that in exact arithmetic
    ``holds`` is false from ``created`` until ``start`` and true on ``[start, stop)``."""
    probes = [start]
    for _ in range(_SETTLE_STEPS):
        probes.append(math.nextafter(probes[-1], math.inf))
    if math.isfinite(stop):
        probes.append(start + (stop - start) / 2)
    hit = next((t for t in probes if t < stop and holds(t)), None)
    if hit is None:
        return None
    if holds(created):
        return created
    # Gallop back to an instant where it does not hold yet, then bisect down to the edge.
    late, early, step = hit, created, math.ulp(hit)
    while late - step > created:
        if not holds(late - step):
            early = late - step
            break
        late, step = late - step, step * 2
    return first_where(holds, early, late)


def first_where(holds: Callable[[float], bool], early: float, late: float) -> float:
    """The first float in ``(early, late]`` where ``holds``, given it does not at ``early``
    and does at ``late`` (and, between them, changes once): a bisection down to adjacent
    floats."""
    while True:
        middle = early + (late - early) / 2
        if not early < middle < late:
            return late
        if holds(middle):
            late = middle
        else:
            early = middle
