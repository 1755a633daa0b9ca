"""What the handlers of both APIs share: scenario choice, fingerprints, timestamps."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
import uuid
from collections.abc import Hashable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from pollable.lifecycle import scenarios
from pollable.lifecycle.changes import next_change
from pollable.lifecycle.errors import Forbidden, InvalidInput, NotFound
from pollable.lifecycle.model import JobState
from pollable.lifecycle.scenarios import Scenario
from pollable.store.base import InsufficientCredits, JobRecord, NewJob, StorageFull

from .api import Call, Reply
from .replies import FinalRead

PREFER_LOC = ("header", "prefer")
#: The request header that binds a job being created to a test clock of the tenant.
CLOCK_HEADER = "Pollable-Clock"
CLOCK_LOC = ("header", CLOCK_HEADER.lower())
NO_SUCH_CLOCK = "No such test clock for this tenant"


def preferred_scenario(prefer: str | None) -> str | None:
    """The ``scenario=NAME`` preference of an RFC 7240 ``Prefer`` header, if any."""
    if not prefer:
        return None
    for preference in prefer.split(","):
        token = preference.split(";", 1)[0].strip()
        name, _, value = token.partition("=")
        if name.strip().lower() == "scenario":
            return value.strip().strip('"') or None
    return None


def choose_scenario(
    call: Call, texts: Iterable[str], tenant_default: str | None
) -> tuple[Scenario, dict[str, str]]:
    """The job's scenario and the response headers announcing an applied preference."""
    preferred = preferred_scenario(call.params.get("prefer"))
    if preferred is not None and preferred not in scenarios.CATALOGUE:
        raise InvalidInput(PREFER_LOC, str(scenarios.UnknownScenario(preferred)))
    # A marker naming no scenario is just content: it is ignored, not an error.
    marker = scenarios.find_marker(texts)
    scenario = scenarios.choose(
        preferred=preferred,
        marker=marker if marker in scenarios.CATALOGUE else None,
        tenant_default=tenant_default if tenant_default in scenarios.CATALOGUE else None,
    )
    headers = {"Preference-Applied": f"scenario={scenario.name}"} if preferred else {}
    return scenario, headers


def fingerprint(body: Any) -> str:
    """A stable digest of a JSON body (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def plan_seed(call: Call, body: Any, scenario: Scenario) -> str:
    """The same request in the same scenario plans the same job."""
    return f"{call.services.settings.seed}|{scenario.name}|{fingerprint(body)}"


def new_id() -> str:
    return str(uuid.uuid4())


@functools.lru_cache(maxsize=8192)
def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def iso(moment: float | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``, as FastAPI writes it. Cached: the files of one page
    share many instants (creation for queued files, the stop for cancelled ones)."""
    return None if moment is None else _iso(moment)


async def load_job(call: Call, job_id: str) -> JobRecord:
    """The caller's job of the API it calls, or ``NotFound`` ("Job not found") for anything
    else."""
    try:
        record = await call.services.store.get_job(call.principal.tenant_id, job_id)
    except NotFound:
        raise NotFound("Job not found") from None
    if record.api != call.principal.api:
        raise NotFound("Job not found")
    return record


async def creation_clock(call: Call) -> tuple[str | None, float]:
    """The test clock a job created by this call runs on (the ``Pollable-Clock`` header's,
    else the one the key is bound to; None: real time), and the time it is created at."""
    named = call.params.get(CLOCK_HEADER.lower().replace("-", "_"))
    clock_id = named if named is not None else call.principal.clock_id
    if clock_id is None:
        return None, call.services.now()
    try:
        clock = await call.services.store.get_clock(call.principal.tenant_id, clock_id)
    except NotFound:
        # Only a header can name a missing clock: deleting a clock unbinds its keys.
        raise InvalidInput(CLOCK_LOC, NO_SUCH_CLOCK) from None
    return clock.id, clock.now


def refused(exc: InsufficientCredits | StorageFull) -> Forbidden:
    """The 403 that answers a create the tenant cannot afford or has no room for: a bound
    of the tenant's, which retrying does not lift (both SDKs retry 409, not 403)."""
    if isinstance(exc, InsufficientCredits):
        return Forbidden(
            f"Insufficient credits: this job needs {exc.needed:g} credits and the balance "
            f"is {exc.balance:g}"
        )
    return Forbidden(
        f"Storage limit reached: this tenant may store at most {exc.cap} items "
        "(jobs, files, sources, test clocks, keys); reset the tenant or delete a test clock"
    )


async def next_sequence(call: Call, name: str) -> int:
    """``Store.next_sequence`` for the caller's tenant, within its cap on stored items."""
    try:
        return await call.services.store.next_sequence(
            call.principal.tenant_id, name, cap=call.services.settings.max_stored_items
        )
    except StorageFull as exc:
        raise refused(exc) from None


async def store_job(call: Call, job: NewJob) -> tuple[JobRecord, bool]:
    """``Store.create_job`` for the caller's tenant, within its balance and its cap on
    stored items (403 otherwise, storing nothing). A clock deleted since
    ``creation_clock`` read it is the request's mistake, as if it had been missing then."""
    try:
        return await call.services.store.create_job(
            call.principal.tenant_id, job, cap=call.services.settings.max_stored_items
        )
    except (InsufficientCredits, StorageFull) as exc:
        raise refused(exc) from None
    except NotFound:
        if job.clock_id is None:
            raise
        raise InvalidInput(CLOCK_LOC, NO_SUCH_CLOCK) from None


async def job_now(call: Call, record: JobRecord) -> float:
    """The time a job is computed at: its test clock's, or the real time."""
    if record.clock_id is None:
        return call.services.now()
    try:
        return (await call.services.store.get_clock(record.tenant_id, record.clock_id)).now
    except NotFound:
        raise NotFound("Job not found") from None  # the clock went, and its jobs with it


def clock_time(record: JobRecord, now: float) -> float | None:
    """What the request log keeps as the clock time of a reply about ``record``: ``now``
    if the job runs on a test clock."""
    return now if record.clock_id is not None else None


async def jobs_now(call: Call, records: Sequence[JobRecord]) -> list[float]:
    """``job_now`` of each record, reading each clock once. A clock deleted meanwhile took
    its jobs with it; until they are gone from the next page, they show at real time."""
    times: dict[str | None, float] = {None: call.services.now()}
    for record in records:
        if record.clock_id not in times:
            try:
                times[record.clock_id] = await job_now(call, record)
            except NotFound:
                times[record.clock_id] = times[None]
    return [times[record.clock_id] for record in records]


# -- polling headers ------------------------------------------------------------------------

#: ``Retry-After`` bounds, in whole seconds: both official SDKs honour at most 60.
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 1, 60
#: The entity tags of an ``If-None-Match`` field (RFC 9110 8.8.3): ``W/`` is dropped, as
#: the weak comparison that ``If-None-Match`` uses ignores it.
_ENTITY_TAG = re.compile(r'(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")')


def retry_after(now: float, following: float | None) -> int:
    """Whole seconds, on the job's own clock, until the job next changes, in 1..60 (60 when
    nothing is planned to change)."""
    if following is None:
        return RETRY_AFTER_MAX
    return max(RETRY_AFTER_MIN, min(RETRY_AFTER_MAX, math.ceil(following - now)))


def entity_tag(payload: bytes) -> str:
    """A strong entity tag of a body: the same bytes, the same tag."""
    return f'"{hashlib.sha256(payload).hexdigest()[:32]}"'


def none_match(field: str | None, tag: str) -> bool:
    """Whether ``If-None-Match: field`` matches the current ``tag`` (so the answer is 304):
    ``*``, or any listed tag equal to it by weak comparison."""
    if field is None:
        return False
    if field.strip() == "*":
        return True
    return tag in _ENTITY_TAG.findall(field)


def kept_reply(call: Call, record: JobRecord, now: float, *page: Hashable) -> Reply | None:
    """The reply kept for this read of a job that was over by ``now``, made from the job as
    it is (``handlers.replies``); ``page``: what selects what the read shows. Asked before
    the job's state is computed: a kept reply needs none of it."""
    kept = call.services.final_replies.get(read_key(record, *page), record, now)
    return None if kept is None else _answer(call, record, now, kept)


def read_key(record: JobRecord, *page: Hashable) -> Hashable:
    return (record.api, record.tenant_id, record.job_id, *page)


def job_read(
    call: Call,
    record: JobRecord,
    state: JobState,
    now: float,
    body: Any,
    *,
    items: bool,
    page: tuple[Hashable, ...] = (),
) -> Reply:
    """The reply to a read of one job: ``body`` with its ``ETag``, and while the job is
    not over a ``Retry-After`` until it next changes (``items``: whether the read shows
    progress, or only its status); 304 with the same headers and no body when the request's
    ``If-None-Match`` matches. A finished job's reply is kept once it is checked, for the
    reads of the same ``page`` (``kept_reply``)."""
    payload = orjson.dumps(body)
    headers = {"ETag": entity_tag(payload)}
    if not state.status.terminal:
        following = next_change(record.plan, record.events, now, items=items, state=state)
        headers["Retry-After"] = str(retry_after(now, following))
    return read_reply(call, record, state, now, body, payload, headers, page)


def read_reply(
    call: Call,
    record: JobRecord,
    state: JobState,
    now: float,
    body: Any,
    payload: bytes,
    headers: dict[str, str],
    page: tuple[Hashable, ...],
) -> Reply:
    """``job_read``'s reply once its headers are known: kept if the job is over."""
    final = None
    if state.status.terminal:
        final = FinalRead(read_key(record, *page), record.plan, record.events, state.as_of)
    reply = Reply(200, body, headers, payload=payload, final=final)
    return _answer(call, record, now, reply)


def _answer(call: Call, record: JobRecord, now: float, reply: Reply) -> Reply:
    """``reply`` (a 200 of a job read) as this request gets it: 304 when its
    ``If-None-Match`` matches the tag, and at this request's clock time."""
    moment = clock_time(record, now)
    tag = reply.headers.get("ETag")
    if tag is not None and none_match(call.params.get("if_none_match"), tag):
        return Reply(304, None, reply.headers, clock_time=moment)
    if moment is None:
        return reply
    return dataclasses.replace(reply, clock_time=moment)
