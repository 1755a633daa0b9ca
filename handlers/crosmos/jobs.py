"""Crosmos Memory API: ingest sources or a conversation, poll the job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pollable.lifecycle.engine import state_at
from pollable.lifecycle.model import Item, Outcome, Plan, Stage
from pollable.lifecycle.planner import Work, plan_job
from pollable.store.base import NewJob

from ..api import Call, Reply
from ..common import (
    choose_scenario,
    creation_clock,
    job_now,
    job_read,
    kept_reply,
    load_job,
    new_id,
    plan_seed,
    store_job,
)
from . import content
from . import presenter as present

#: Up to this many characters of content, planning takes tens of microseconds: less than
#: handing it to a thread and back, so it runs on the event loop.
INLINE_TEXT = 8 * 1024


async def get_job(call: Call) -> Reply:
    job_id = str(uuid.UUID(call.params["job_id"]))
    record = await load_job(call, job_id)
    now = await job_now(call, record)
    kept = kept_reply(call, record, now)
    if kept is not None:
        return kept
    state = state_at(record.plan, record.events, now)
    items = None
    if state.status.terminal:
        items = await call.services.store.items(
            call.principal.tenant_id, job_id, limit=record.plan.n_items
        )
    body = present.job(record, state, items)
    return job_read(call, record, state, now, body, items=False)


def _work(source_id: str, text: str, content_type: str = "text") -> Work:
    extra = content.memory_yield(text)
    if content_type not in content.PROCESSABLE_CONTENT_TYPES:
        return Work(
            source_id,
            extra["tokens"],
            Outcome.FAILED,
            Stage.EXTRACTING,
            "unsupported_content_type",
            f"content_type '{content_type}' is not processable yet",
            extra,
        )
    return Work(source_id, extra["tokens"], extra=extra)


def _plan(
    call: Call,
    make_work: Callable[[], Sequence[Work]],
    texts: Sequence[str],
    tenant_default: str | None,
    now: float,
) -> tuple[Plan, tuple[Item, ...], dict[str, str]]:
    """Scenario, work and plan: pure, and run off the event loop above ``INLINE_TEXT``
    (reading a hundred sources of a megabyte each takes seconds of CPU)."""
    scenario, headers = choose_scenario(call, texts, tenant_default)
    plan, items = plan_job(
        job_id=new_id(),
        created_at=now,
        scenario=scenario,
        work=make_work(),
        seed=plan_seed(call, call.body, scenario),
        time_scale=call.services.settings.time_scale,
    )
    return plan, items, headers


async def _create(
    call: Call,
    kind: str,
    make_work: Callable[[], Sequence[Work]],
    texts: Sequence[str],
    attrs: dict[str, Any],
) -> tuple[str, dict[str, str]]:
    store = call.services.store
    clock_id, now = await creation_clock(call)
    tenant = await store.get_tenant(call.principal.tenant_id)
    if sum(map(len, texts)) <= INLINE_TEXT:
        plan, items, headers = _plan(call, make_work, texts, tenant.default_scenario, now)
    else:
        plan, items, headers = await asyncio.to_thread(
            _plan, call, make_work, texts, tenant.default_scenario, now
        )
    job = NewJob(
        api=call.principal.api, kind=kind, plan=plan, items=items, attrs=attrs, clock_id=clock_id
    )
    await store_job(call, job)
    return plan.job_id, headers


async def ingest_sources(call: Call) -> Reply:
    sources = call.body["sources"]
    source_ids = [new_id() for _ in sources]

    def work() -> list[Work]:
        return [
            _work(source_id, source["content"], source.get("content_type", "text"))
            for source_id, source in zip(source_ids, sources, strict=True)
        ]

    attrs = {"space_id": call.body["space_id"]}
    job_id, headers = await _create(call, "sources", work, [s["content"] for s in sources], attrs)
    body = {
        "job_id": job_id,
        "jobs": [{"job_id": job_id, "source_ids": source_ids}],
        "source_ids": source_ids,
        "status": "pending",
    }
    return Reply(202, body, headers)


async def ingest_conversation(call: Call) -> Reply:
    messages = call.body["messages"]
    source_id = new_id()
    transcript = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    attrs = {
        "space_id": call.body["space_id"],
        "session_id": call.body.get("session_id") or new_id(),
        "session_date": call.body.get("session_date"),
        "messages": len(messages),
    }
    texts = [m["content"] for m in messages]
    job_id, headers = await _create(
        call, "conversation", lambda: [_work(source_id, transcript)], texts, attrs
    )
    body = {
        "job_id": job_id,
        "source_id": source_id,
        "source_ids": [source_id],
        "status": "pending",
    }
    return Reply(202, body, headers)
