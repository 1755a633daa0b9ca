"""The engine's state in the Crosmos Memory API's words (``IngestionJobResponse``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pollable.lifecycle.engine import item_state
from pollable.lifecycle.model import Item, ItemStatus, JobState, Status
from pollable.store.base import JobRecord

from ..common import iso

STATUS = {
    Status.PENDING: "pending",
    Status.RUNNING: "processing",
    Status.COMPLETED: "completed",
    Status.COMPLETED_WITH_FAILURES: "partial",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}


def job(record: JobRecord, state: JobState, items: Sequence[Item] | None) -> dict[str, Any]:
    """``items`` are needed (all of them) only once the job is terminal, for its result."""
    plan = record.plan
    return {
        "job_id": plan.job_id,
        "status": STATUS[state.status],
        "source_ids": [record.serial(i) for i in range(plan.n_items)],
        "result": result(record, state, items)
        if state.status.terminal and items is not None
        else None,
        "error_message": state.error_message,
        "created_at": iso(plan.created_at),
        "started_at": iso(state.started_at),
        "completed_at": iso(state.ended_at),
    }


def result(record: JobRecord, state: JobState, items: Sequence[Item]) -> dict[str, Any]:
    done: list[int] = []
    failed: list[int] = []
    errors: dict[str, str] = {}
    totals = {"memories": 0, "entities": 0, "edges": 0, "tokens": 0}
    for item in items:
        view = item_state(record.plan, state, item)
        serial = record.serial(item.ordinal)
        if view.status is ItemStatus.COMPLETED:
            done.append(serial)
            for name in totals:
                totals[name] += item.extra.get(name, 0)
        elif view.status is ItemStatus.FAILED:
            failed.append(serial)
            errors[str(serial)] = view.error_message or "Processing failed"
    error_message = state.error_message
    if state.status is Status.CANCELLED:
        error_message = f"Job cancelled by {state.cancelled_by}"
    return {
        "source_ids": done,
        "failed_source_ids": failed,
        "memory_count": totals["memories"],
        "entity_count": totals["entities"],
        "edge_count": totals["edges"],
        "tokens_used": totals["tokens"],
        "error_message": error_message,
        "source_errors": errors or None,
    }
