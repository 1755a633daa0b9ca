"""Test clocks, in the manner of Stripe's: frozen time a tenant moves forward by hand.

A job bound to a clock (``Pollable-Clock`` header, or a key bound to the clock) is computed
at the clock's time. Clock time lives in the store, so every process agrees. The admin names
the tenant (``tenant_id``); a tenant key manages its own tenant's clocks, and another
tenant's clock is 404, like one that does not exist.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pollable.lifecycle.engine import outcome, reached_at
from pollable.lifecycle.errors import Conflict, InvalidInput, NotFound
from pollable.lifecycle.model import Stage, Status
from pollable.store.base import Clock, ClockWouldGoBack, JobRecord, StorageFull

from ..api import Call, Reply
from ..common import iso, refused
from ..descriptor import ApiDescriptor
from .tenants import own_tenant

CLOCK_NOT_FOUND = "Clock not found"
JOB_NOT_FOUND = "Job not found"
#: The instants a clock may show: what RFC 3339 (four-digit years) and Python can write.
#: The contract admits dates from 0001-01-02 to 9999-12-30, inside these in any offset.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)


def clock_body(clock: Clock) -> dict[str, Any]:
    return {
        "id": clock.id,
        "name": clock.name,
        "now": iso(clock.now),
        "created_at": iso(clock.created_at),
    }


def instant(text: str, loc: tuple[str | int, ...]) -> float:
    """POSIX seconds of an RFC 3339 date-time a clock may show (leap seconds included)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidInput(loc, "Expected an RFC 3339 date-time such as 2024-05-01T12:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10)
    try:
        offset = timedelta(hours=int(offset_hours or 0), minutes=int(offset_minutes or 0))
        zone = timezone(-offset if sign == "-" else offset)
        # 23:59:60 is a leap second: one second after 23:59:59.
        moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=zone)
        seconds = moment.timestamp() + (second - min(second, 59)) + float(fraction or 0)
    except (ValueError, OverflowError):
        raise InvalidInput(loc, f"{text!r} is not a date-time") from None
    if not EARLIEST <= seconds <= LATEST:
        raise InvalidInput(loc, f"A clock's time is between {iso(EARLIEST)} and {iso(LATEST)}")
    return seconds


async def tenant_named(call: Call) -> str:
    """The tenant a call is about: the one it names (the admin must), else the caller's."""
    named = call.params.get("tenant_id")
    if named is None:
        if call.principal.admin:
            raise InvalidInput(("query", "tenant_id"), "The admin names the tenant: tenant_id")
        return call.principal.tenant_id
    return (await own_tenant(call, named)).id


async def _clock(call: Call, tenant_id: str) -> Clock:
    try:
        return await call.services.store.get_clock(tenant_id, call.params["clock_id"])
    except NotFound:
        raise NotFound(CLOCK_NOT_FOUND) from None


async def create_clock(call: Call) -> Reply:
    tenant_id = await tenant_named(call)
    body = call.body or {}
    real = call.services.now()
    now = instant(body["now"], ("body", "now")) if "now" in body else real
    try:
        clock = await call.services.store.create_clock(
            tenant_id, now=now, name=body.get("name"), created_at=real,
            cap=call.services.settings.max_stored_items,
        )  # fmt: skip
    except StorageFull as exc:
        raise refused(exc) from None
    return Reply(201, clock_body(clock))


async def list_clocks(call: Call) -> Reply:
    tenant_id = await tenant_named(call)
    limit = call.params["limit"]
    found = await call.services.store.list_clocks(
        tenant_id, after=call.params.get("cursor"), limit=limit + 1
    )
    page = found[:limit]
    next_cursor = page[-1].id if len(found) > limit else None
    return Reply(200, {"data": [clock_body(c) for c in page], "next_cursor": next_cursor})


async def get_clock(call: Call) -> Reply:
    return Reply(200, clock_body(await _clock(call, await tenant_named(call))))


async def delete_clock(call: Call) -> Reply:
    clock = await _clock(call, await tenant_named(call))
    try:
        await call.services.store.delete_clock(clock.tenant_id, clock.id)
    except NotFound:
        raise NotFound(CLOCK_NOT_FOUND) from None
    return Reply(204, None)


async def advance_clock(call: Call) -> Reply:
    clock = await _clock(call, await tenant_named(call))
    body = call.body
    if "to" in body:
        to = instant(body["to"], ("body", "to"))
        if to < clock.now and iso(to) != iso(clock.now):
            raise Conflict(_backwards(clock, to))
        clock = await _move(call, clock, to, strict=True)
    elif "seconds" in body:
        if clock.now + body["seconds"] > LATEST:
            raise InvalidInput(("body", "seconds"), f"A clock's time ends at {iso(LATEST)}")
        clock = await _move(call, clock, None, by=body["seconds"])
    else:
        clock = await _move(call, clock, await _arrival(call, clock, body["until"]), strict=False)
    return Reply(200, clock_body(clock))


def _backwards(clock: Clock, to: float) -> str:
    return f"Clocks only move forward: {clock.id} is at {iso(clock.now)}, after {iso(to)}"


async def _move(
    call: Call, clock: Clock, to: float | None, *, strict: bool = True, by: float | None = None
) -> Clock:
    """Advance ``clock`` to ``to`` (or by ``by``). Not ``strict``: to at least ``to``, and a
    clock already there stays."""
    if to is not None and to <= clock.now:
        return clock
    try:
        return await call.services.store.advance_clock(clock.tenant_id, clock.id, to=to, by=by)
    except NotFound:
        raise NotFound(CLOCK_NOT_FOUND) from None
    except ClockWouldGoBack as passed:  # another request moved it past ``to`` meanwhile
        if strict:
            assert to is not None
            raise Conflict(_backwards(passed.clock, to)) from None
        return passed.clock


async def _arrival(call: Call, clock: Clock, until: dict[str, str]) -> float:
    """When the job ``until`` names first is in the status or stage it names."""
    job_id = until["job_id"]
    # The body names the job: a job the tenant does not have is a 422 on that field (the
    # operation's 404 means the clock in its path).
    unknown = InvalidInput(("body", "until", "job_id"), JOB_NOT_FOUND)
    try:
        record = await call.services.store.get_job(clock.tenant_id, job_id)
    except NotFound:
        raise unknown from None
    api = next((a for a in call.services.job_apis if a.name == record.api), None)
    if api is None:
        raise unknown
    if record.clock_id != clock.id:
        runs_on = f"clock {record.clock_id}" if record.clock_id else "real time"
        raise Conflict(f"Job {job_id} is not bound to clock {clock.id}: it runs on {runs_on}")
    kind = "status" if "status" in until else "stage"
    word = until[kind]
    words = api.statuses if kind == "status" else api.stages
    vocabulary: Mapping[str, Status | Stage] = dict(words)
    target = vocabulary.get(word)
    if target is None:
        known = ", ".join(vocabulary)
        also = f": one of {known}" if known else f"; {api.title} jobs report no {kind}s"
        raise InvalidInput(("body", "until", kind), f"Not a {api.title} job {kind}{also}")
    plan, events = record.plan, record.events
    if isinstance(target, Status):
        at = reached_at(plan, events, status=target)
    else:
        at = reached_at(plan, events, stage=target)
    if at is None or at > LATEST:
        raise Conflict(f"Job {job_id} never reaches {kind} {word!r}: {_fate(api, record)}")
    return at


def _fate(api: ApiDescriptor, record: JobRecord) -> str:
    end, final = outcome(record.plan, record.events)
    if math.isinf(end):
        return "it never leaves the queue"
    word = next((w for w, status in api.statuses.items() if status is final), final.value)
    return f"it ends {word}"
