"""The engine's state in the Captain API v2's words (``JobStatusResponseV2`` and friends)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pollable.lifecycle.engine import item_state
from pollable.lifecycle.model import Item, ItemStatus, JobState, Progress, Stage, Status
from pollable.store.base import JobRecord

from ..common import iso

#: From the seed page's "Processing Stages".
STAGE_DESCRIPTIONS = {
    Stage.SCANNING: "Scanning bucket for files",
    Stage.EXTRACTING: "Extracting text content from documents",
    Stage.CHUNKING: "Splitting documents into semantic chunks",
    Stage.TAGGING: "AI tagging and summarization",
    Stage.EMBEDDING: "Generating vector embeddings",
    Stage.FINALIZING: "Aggregating results and recording billing",
}
#: The job statuses in Captain's words: the engine's own.
STATUS = {status: status.value for status in Status}
#: The stages a job reports in ``progress.current_stage`` (besides ``cancelled``).
STAGE = {stage: stage.value for stage in STAGE_DESCRIPTIONS}
CANCELLED_STAGE = "cancelled"
#: Credits per page, by processing type.
CREDITS_PER_PAGE = {"basic": 1.0, "advanced": 2.5}


@dataclass(frozen=True)
class FilesPage:
    files: Sequence[Item]
    limit: int
    next_cursor: str | None


@dataclass(frozen=True)
class Pricing:
    rate: float
    currency: str


def _current_stage(state: JobState) -> str | None:
    if state.status is Status.CANCELLED:
        return CANCELLED_STAGE
    if state.status in (Status.RUNNING, Status.FAILED) and state.stage is not None:
        return STAGE[state.stage]
    return None


def _progress_message(record: JobRecord, state: JobState, progress: Progress) -> str:
    done = f"{progress.processed} of {progress.total} files"
    outcomes = f"{progress.failed} failed, {progress.skipped} skipped"
    match state.status:
        case Status.PENDING:
            return "Queued: waiting for an indexing worker"
        case Status.RUNNING if state.stage is Stage.SCANNING:
            return f"Scanning {record.attrs.get('source', 'the source')} for files"
        case Status.RUNNING if state.stage is Stage.FINALIZING:
            return f"Finalizing: {done} processed"
        case Status.RUNNING:
            return f"Processing files: {done} done ({outcomes})"
        case Status.COMPLETED | Status.COMPLETED_WITH_FAILURES:
            return f"Indexed {progress.completed} of {progress.total} files ({outcomes})"
        case Status.FAILED:
            return f"Failed: {state.error_message}"
    return f"Cancelled by {state.cancelled_by} after {done}"


_FILE_MESSAGES = {
    ItemStatus.QUEUED: "Waiting to be processed",
    ItemStatus.CANCELLED: "Processing was cancelled",
}


def _file(record: JobRecord, state: JobState, item: Item) -> dict[str, Any]:
    view = item_state(record.plan, state, item)
    status = view.status
    message: str | None
    if status is ItemStatus.PROCESSING:
        message = STAGE_DESCRIPTIONS[view.stage] if view.stage else "Processing"
    elif status is ItemStatus.COMPLETED:
        message = f"Indexed ({item.units} pages)"
    else:
        message = _FILE_MESSAGES.get(status) or view.error_message
    return {
        "uri": item.key,
        "status": status.value,
        "stage": view.stage.value if view.stage else None,
        "progress_message": message,
        "error_code": view.error_code,
        "error_message": view.error_message,
        "updated_at": iso(view.updated_at),
    }


def _result(state: JobState, progress: Progress) -> dict[str, Any] | None:
    if state.status not in (Status.COMPLETED, Status.COMPLETED_WITH_FAILURES, Status.FAILED):
        return None
    started = state.started_at if state.started_at is not None else state.as_of
    warnings = []
    if progress.skipped:
        warnings.append(f"{progress.skipped} file(s) skipped (already indexed or unsupported type)")
    if progress.failed:
        warnings.append(f"{progress.failed} file(s) failed; see files[].error_code")
    return {
        "files_indexed": progress.completed,
        "files_failed": progress.failed,
        "files_skipped": progress.skipped,
        "duration_seconds": round(state.as_of - started),
        "warnings": warnings,
    }


def _billing(
    record: JobRecord, state: JobState, progress: Progress, pricing: Pricing
) -> dict[str, Any] | None:
    if state.status not in (Status.COMPLETED, Status.COMPLETED_WITH_FAILURES):
        return None
    processing_type = record.attrs.get("processing_type", "basic")
    credits = progress.units * CREDITS_PER_PAGE[processing_type]
    return {
        "cost": {"amount": round(credits * pricing.rate, 6), "currency": pricing.currency},
        "credits": {"used": credits, "remaining": record.credits_remaining},
        "rate": {"per_credit": pricing.rate, "currency": pricing.currency},
        "processing_type": processing_type,
        "pages_processed": progress.units,
    }


def job(
    record: JobRecord,
    state: JobState,
    progress: Progress,
    page: FilesPage,
    pricing: Pricing,
    now: float,
) -> dict[str, Any]:
    started = state.started_at
    stage = _current_stage(state)
    description = (
        "Job was cancelled"
        if stage == CANCELLED_STAGE
        else (STAGE_DESCRIPTIONS[Stage(stage)] if stage else None)
    )
    remaining = None
    if state.expected_end is not None:
        remaining = max(0, math.ceil(state.expected_end - now))
    return {
        "job_id": record.job_id,
        "status": STATUS[state.status],
        "collection_name": record.collection,
        "job_type": record.attrs.get("job_type"),
        "progress_message": _progress_message(record, state, progress),
        "progress": {
            "current_stage": stage,
            "stage_description": description,
            "files_total": progress.total,
            "files_processed": progress.processed,
            "files_failed": progress.failed,
            "files_skipped": progress.skipped,
            "elapsed_seconds": None if started is None else round(state.as_of - started),
        },
        "files": [_file(record, state, item) for item in page.files],
        "files_page": {
            "limit": page.limit,
            "next_cursor": page.next_cursor,
            "total_estimated": progress.total,
        },
        "result": _result(state, progress),
        "billing": _billing(record, state, progress, pricing),
        "error_code": state.error_code,
        "error_message": state.error_message,
        "cancelled_by": state.cancelled_by,
        "cancelled_at": iso(state.cancelled_at),
        "created_at": iso(record.plan.created_at),
        "updated_at": iso(state.updated_at),
        "started_at": iso(started),
        "completed_at": iso(state.ended_at),
        "estimated_time_remaining_seconds": remaining,
    }


def summary(record: JobRecord, state: JobState) -> dict[str, Any]:
    return {
        "job_id": record.job_id,
        "status": STATUS[state.status],
        "collection_name": record.collection,
        "job_type": record.attrs.get("job_type"),
        "files_total": record.plan.n_items,
        "created_at": iso(record.plan.created_at),
        "updated_at": iso(state.updated_at),
        "started_at": iso(state.started_at),
        "completed_at": iso(state.ended_at),
    }


def cancelled(record: JobRecord, state: JobState, *, changed: bool) -> dict[str, Any]:
    if changed:
        message = "Job cancelled"
    elif state.status is Status.CANCELLED:
        message = "Job was already cancelled"
    else:
        message = f"Job already {STATUS[state.status]}; nothing to cancel"
    return {
        "job_id": record.job_id,
        "status": STATUS[state.status],
        "message": message,
        "cancelled_at": iso(state.cancelled_at),
    }
