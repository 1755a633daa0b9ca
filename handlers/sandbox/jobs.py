"""A tenant's jobs of every job API (``/sandbox/v1/jobs``), and one job's timeline.

What the dashboard needs and no job API offers: one listing across the APIs (with a test
clock filter), and a job's life as data (``lifecycle.timeline``). How a job looks in its
own contract stays its API's read. The admin names the tenant; a tenant key reads its own;
another tenant's job is 404, like one that does not exist.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from pollable.lifecycle.engine import item_state, state_at
from pollable.lifecycle.errors import InvalidInput, NotFound
from pollable.lifecycle.model import Status
from pollable.lifecycle.timeline import Timeline, timeline
from pollable.store.base import JobRecord

from ..api import Call, Reply
from ..common import iso, jobs_now
from ..descriptor import ApiDescriptor
from .clocks import tenant_named

JOB_NOT_FOUND = "Job not found"
_CURSOR_LOC = ("query", "cursor")


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"jobs:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    kind, _, offset = text.partition(":")
    if kind != "jobs" or not offset.isascii() or not offset.isdigit() or len(offset) > 12:
        raise InvalidInput(_CURSOR_LOC, "Not a cursor this listing gave out")
    if _encode_cursor(int(offset)) != cursor:
        raise InvalidInput(_CURSOR_LOC, "Not a cursor this listing gave out")
    return int(offset)


def _api(call: Call, name: str) -> ApiDescriptor:
    api = next((a for a in call.services.job_apis if a.name == name), None)
    if api is None:
        known = ", ".join(a.name for a in call.services.job_apis)
        raise InvalidInput(("query", "api"), f"api must be one of {known}")
    return api


def job_body(call: Call, record: JobRecord, now: float) -> dict[str, Any]:
    state = state_at(record.plan, record.events, now)
    api = _api(call, record.api)
    words = {status: word for word, status in api.statuses.items()}
    stages = {stage: word for word, stage in api.stages.items()}
    return {
        "id": record.job_id,
        "tenant_id": record.tenant_id,
        "api": record.api,
        "kind": record.kind,
        "collection": record.collection,
        "clock_id": record.clock_id,
        "scenario": record.plan.scenario,
        "status": state.status.value,
        "api_status": words.get(state.status, state.status.value),
        "stage": state.stage.value if state.stage in stages and not state.status.terminal else None,
        "created_at": iso(record.plan.created_at),
        "now": iso(now),
        "items": record.plan.n_items,
    }


def timeline_body(line: Timeline) -> dict[str, Any]:
    return {
        "ends_at": iso(line.ends_at),
        "final_status": line.final_status.value,
        "phases": [{"name": p.name, "start": iso(p.start), "end": iso(p.end)} for p in line.phases],
        "stages": [{"stage": stage.value, "reached_at": iso(t)} for stage, t in line.stages],
        "settling": [{"at": iso(t), "settled": n} for t, n in line.settling],
        "failed_at": iso(line.failed_at),
        "failed_stage": None if line.failed_stage is None else line.failed_stage.value,
        "cancelled_at": iso(line.cancelled_at),
        "cancelled_by": line.cancelled_by,
    }


async def list_sandbox_jobs(call: Call) -> Reply:
    tenant_id, params = await tenant_named(call), call.params
    api = None if params.get("api") is None else _api(call, params["api"]).name
    offset, limit = _decode_cursor(params.get("cursor")), params["limit"]
    page = await call.services.store.list_jobs(
        tenant_id, api=api, now=call.services.now(),
        status=Status(params["status"]) if params.get("status") else None,
        collection=params.get("collection"), clock_id=params.get("clock_id"),
        limit=limit, offset=offset,
    )  # fmt: skip
    times = await jobs_now(call, page.jobs)
    more = offset + len(page.jobs) < page.total and len(page.jobs) == limit
    return Reply(200, {
        "data": [job_body(call, record, now) for record, now in zip(page.jobs, times, strict=True)],
        "total": page.total,
        "next_cursor": _encode_cursor(offset + limit) if more else None,
    })  # fmt: skip


async def _job(call: Call) -> tuple[JobRecord, float]:
    """The job the call names, of the tenant it is about, and the job's time."""
    tenant_id = await tenant_named(call)
    try:
        record = await call.services.store.get_job(tenant_id, call.params["job_id"])
    except NotFound:
        raise NotFound(JOB_NOT_FOUND) from None
    (now,) = await jobs_now(call, [record])
    return record, now


def _item_cursor(job_id: str, ordinal: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([job_id, ordinal])).decode().rstrip("=")


def _after(job_id: str, cursor: str | None, n_items: int) -> int:
    """The ordinal a page of items starts after: -1, or what a cursor of this job says."""
    if cursor is None:
        return -1
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    match decoded:
        case [str(owner), int(ordinal)] if (
            type(ordinal) is int
            and owner == job_id
            and 0 <= ordinal < n_items - 1
            and _item_cursor(job_id, ordinal) == cursor
        ):
            return ordinal
    raise InvalidInput(_CURSOR_LOC, "Not a cursor of this job's items")


async def list_sandbox_job_items(call: Call) -> Reply:
    record, now = await _job(call)
    plan, limit = record.plan, call.params["limit"]
    after = _after(record.job_id, call.params.get("cursor"), plan.n_items)
    items = await call.services.store.items(
        record.tenant_id, record.job_id, after=after, limit=limit
    )
    state = state_at(plan, record.events, now)
    data = []
    for item in items:
        shown = item_state(plan, state, item)
        data.append({
            "ordinal": item.ordinal, "key": item.key, "status": shown.status.value,
            "stage": None if shown.stage is None else shown.stage.value,
            "error_code": shown.error_code, "error_message": shown.error_message,
            "updated_at": iso(shown.updated_at),
        })  # fmt: skip
    last = items[-1].ordinal if items else plan.n_items
    more = len(items) == limit and last < plan.n_items - 1
    return Reply(
        200, {"data": data, "next_cursor": _item_cursor(record.job_id, last) if more else None}
    )


async def get_sandbox_job(call: Call) -> Reply:
    record, now = await _job(call)
    body = job_body(call, record, now)
    body["settled"] = state_at(record.plan, record.events, now).settled
    body["timeline"] = timeline_body(timeline(record.plan, record.events))
    return Reply(200, body)
