"""Plans and events as plain JSON-ready data, for the stores. ``math.inf`` travels as None."""

from __future__ import annotations

import math
from typing import Any

from .model import Event, EventKind, Failure, Plan, Stage, Tally, Timing

FORMAT = 1


def _time_out(value: float) -> float | None:
    return None if math.isinf(value) else value


def _time_in(value: float | None) -> float:
    return math.inf if value is None else float(value)


def plan_to_data(plan: Plan) -> dict[str, Any]:
    t = plan.timing
    failure = plan.failure
    return {
        "format": FORMAT,
        "job_id": plan.job_id,
        "created_at": plan.created_at,
        "scenario": plan.scenario,
        "timing": [
            _time_out(value) for value in (t.queue, t.scan, t.item_gap, t.item_duration, t.finalize)
        ],
        "n_items": plan.n_items,
        "totals": [plan.totals.failed, plan.totals.skipped, plan.totals.units],
        "failure": None
        if failure is None
        else [failure.stage.value, failure.code, failure.message, failure.at],
        "cancel_after": plan.cancel_after,
    }


def plan_from_data(data: dict[str, Any]) -> Plan:
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported plan format {data.get('format')!r}")
    queue, scan, gap, duration, finalize = (_time_in(value) for value in data["timing"])
    failure = data["failure"]
    return Plan(
        job_id=data["job_id"],
        created_at=data["created_at"],
        scenario=data["scenario"],
        timing=Timing(queue, scan, gap, duration, finalize),
        n_items=data["n_items"],
        totals=Tally(*data["totals"]),
        failure=None
        if failure is None
        else Failure(Stage(failure[0]), failure[1], failure[2], failure[3]),
        cancel_after=data["cancel_after"],
    )


def event_to_data(event: Event) -> dict[str, Any]:
    return {"kind": event.kind.value, "at": event.at, "actor": event.actor}


def event_from_data(data: dict[str, Any]) -> Event:
    return Event(EventKind(data["kind"]), data["at"], data["actor"])
