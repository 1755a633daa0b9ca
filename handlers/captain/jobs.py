"""Captain API v2: index from URLs, text or (synthetic) cloud storage; poll, list, cancel.

The fourteen index operations are one handler, driven by ``INDEX_KINDS``. No network and
no cloud is touched: listings are synthesised (``lifecycle.listing``), and credentials
are checked only for what the cloud would refuse (``credentials``), then dropped;
they are never stored, logged or echoed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from collections.abc import Sequence, Set
from dataclasses import dataclass, replace
from typing import Any

import orjson

from pollable.lifecycle.engine import known_tally, outcome, prefix_needed, progress, state_at
from pollable.lifecycle.errors import Conflict, InvalidInput
from pollable.lifecycle.model import Event, EventKind, Item, Plan, Status
from pollable.lifecycle.planner import plan_job
from pollable.store.base import Idempotency, IdempotencyMismatch, JobRecord, NewJob

from ..api import Call, Handler, Reply
from ..common import (
    choose_scenario,
    clock_time,
    creation_clock,
    fingerprint,
    job_now,
    job_read,
    jobs_now,
    kept_reply,
    load_job,
    new_id,
    next_sequence,
    plan_seed,
    store_job,
)
from . import listing
from . import presenter as present
from .credentials import scan_failure

#: Request fields that hold credentials. They never reach a store, a log or a reply.
SECRET_FIELDS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "service_account_json",
        "account_key",
        "access_key_id",
        "secret_access_key",
    }
)


@dataclass(frozen=True)
class IndexKind:
    job_type: str
    #: s3, gcs, azure, r2; or url / text for the sources that are not storage.
    provider: str
    #: What the request points at: bucket, file, directory, urls or text.
    target: str


INDEX_KINDS: dict[str, IndexKind] = {
    "index_url_v2": IndexKind("index_url", "url", "urls"),
    "index_text_v2": IndexKind("index_text", "text", "text"),
    "index_s3bucket_v2": IndexKind("index_s3", "s3", "bucket"),
    "index_s3file_v2": IndexKind("index_s3_file", "s3", "file"),
    "index_s3directory_v2": IndexKind("index_s3_directory", "s3", "directory"),
    "index_gcs_bucket_v2": IndexKind("index_gcs", "gcs", "bucket"),
    "index_gcs_file_v2": IndexKind("index_gcs_file", "gcs", "file"),
    "index_gcs_directory_v2": IndexKind("index_gcs_directory", "gcs", "directory"),
    "index_azure_container_v2": IndexKind("index_azure", "azure", "bucket"),
    "index_azure_file_v2": IndexKind("index_azure_file", "azure", "file"),
    "index_azure_directory_v2": IndexKind("index_azure_directory", "azure", "directory"),
    "index_r2bucket_v2": IndexKind("index_r2", "r2", "bucket"),
    "index_r2file_v2": IndexKind("index_r2_file", "r2", "file"),
    "index_r2directory_v2": IndexKind("index_r2_directory", "r2", "directory"),
}

#: Up to this many files, listing and planning take less than handing the work to a
#: thread and back, so they run on the event loop.
INLINE_FILES = 100

# -- reading jobs ---------------------------------------------------------------------------


def _encode_cursor(job_id: str, ordinal: int) -> str:
    raw = orjson.dumps([job_id, ordinal])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(job_id: str, cursor: str | None, n_items: int) -> int:
    """The ordinal a cursor points after (-1 for the first page). A cursor is one this job
    could have issued, exactly as ``_encode_cursor`` wrote it (no other padding, spacing or
    number spelling), pointing after an item that has a next one; anything else is forged."""
    if cursor is None:
        return -1
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        decoded = None
    match decoded:
        case [str(owner), int(ordinal)] if (
            type(ordinal) is int  # not a bool
            and owner == job_id
            and 0 <= ordinal < n_items - 1
            and _encode_cursor(job_id, ordinal) == cursor
        ):
            return ordinal
    raise InvalidInput(
        ("query", "files_cursor"), "Invalid cursor: use files_page.next_cursor of this job"
    )


def _pricing(call: Call) -> present.Pricing:
    return present.Pricing(call.services.settings.credit_rate, call.services.settings.currency)


async def get_job(call: Call) -> Reply:
    store, tenant = call.services.store, call.principal.tenant_id
    job_id = call.params["job_id"]
    record = await load_job(call, job_id)
    plan = record.plan
    after = _decode_cursor(job_id, call.params.get("files_cursor"), plan.n_items)
    limit = call.params["files_limit"]
    now = await job_now(call, record)
    kept = kept_reply(call, record, now, after, limit)
    if kept is not None:
        return kept
    state = state_at(plan, record.events, now)
    files = await store.items(tenant, job_id, after=after, limit=limit)
    last = files[-1].ordinal if files else plan.n_items
    next_cursor = _encode_cursor(job_id, last) if last < plan.n_items - 1 else None
    k = prefix_needed(plan, state)
    tally = known_tally(plan, state.settled) if k is None else await store.tally(tenant, job_id, k)
    assert tally is not None
    counts = progress(plan, state, tally)
    page = present.FilesPage(files, limit, next_cursor)
    body = present.job(record, state, counts, page, _pricing(call), now)
    return job_read(call, record, state, now, body, items=True, page=(after, limit))


async def list_jobs(call: Call) -> Reply:
    params = call.params
    now = call.services.now()
    status = Status(params["status"]) if params.get("status") else None
    page = await call.services.store.list_jobs(
        call.principal.tenant_id,
        api=call.principal.api,
        now=now,
        status=status,
        collection=params.get("collection"),
        limit=params["limit"],
        offset=params["offset"],
    )
    times = await jobs_now(call, page.jobs)
    jobs = [
        present.summary(r, state_at(r.plan, r.events, t))
        for r, t in zip(page.jobs, times, strict=True)
    ]
    body = {"jobs": jobs, "total": page.total, "limit": params["limit"], "offset": params["offset"]}
    return Reply(200, body)


async def cancel_job(call: Call) -> Reply:
    job_id = call.params["job_id"]
    record = await load_job(call, job_id)
    now = await job_now(call, record)
    state = state_at(record.plan, record.events, now)
    changed = False
    if not state.status.terminal:
        # The store decides: of concurrent cancels, exactly one changes the job.
        event = Event(EventKind.CANCEL, now, "user")
        record, changed = await call.services.store.append_event(
            call.principal.tenant_id, job_id, event, refund=record.attrs.get("credits", 0.0)
        )
        if not changed:
            # A concurrent cancel (any process) won, at an instant after ``now`` perhaps:
            # the job is shown as it is now, cancelled, not as it was before that.
            now = max(now, await job_now(call, record))
        state = state_at(record.plan, record.events, now)
    body = present.cancelled(record, state, changed=changed)
    return Reply(200, body, clock_time=clock_time(record, now))


# -- indexing -----------------------------------------------------------------------------


def _base_uri(kind: IndexKind, body: dict[str, Any]) -> str:
    if kind.provider == "azure":
        return f"https://{body['account_name']}.blob.core.windows.net/{body['container_name']}/"
    scheme = {"s3": "s3", "gcs": "gs", "r2": "r2"}[kind.provider]
    return f"{scheme}://{body['bucket_name']}/"


async def _entries(
    call: Call, kind: IndexKind, body: dict[str, Any], collection: str, seed: str
) -> list[listing.FileEntry]:
    if kind.target == "urls":
        urls = [body["url"]] if body.get("url") is not None else body["urls"]
        return [listing.single_file(url, seed) for url in urls]
    if kind.target == "text":
        name = body.get("filename")
        if not name:
            number = await next_sequence(call, f"snippet:{collection}")
            name = f"snippet-{number}.txt"
        return [listing.FileEntry(name, listing.text_pages(body["content"]))]
    base = _base_uri(kind, body)
    if kind.target == "file":
        uri = body["file_uri"]
        return [listing.single_file(uri if "://" in uri else base + uri.lstrip("/"), seed)]
    prefix = (body.get("directory_path") or "") if kind.target == "directory" else ""
    # JSON Schema's integer admits 3.0; the listing needs the int.
    max_files = body.get("max_files")
    count = None if max_files is None else int(max_files)
    if count is not None and count <= INLINE_FILES:
        return listing.list_location(base, prefix, count, seed)
    # Up to 100,000 files: listed off the event loop, so other requests go on meanwhile.
    return await asyncio.to_thread(listing.list_location, base, prefix, count, seed)


def _public(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in SECRET_FIELDS}


async def _index(call: Call, operation_id: str, kind: IndexKind) -> Reply:
    store, tenant_id = call.services.store, call.principal.tenant_id
    body = call.body
    collection = call.params["collection_name"]
    public = _public(body)
    request = {"operation": operation_id, "collection": collection, "body": public}
    key = call.params.get("idempotency_key")
    idempotency = Idempotency(key, fingerprint(request)) if key else None
    if idempotency is not None:
        # A replay is answered before anything is planned, numbered or stored.
        try:
            earlier = await store.idempotent_job(tenant_id, idempotency)
        except IdempotencyMismatch:
            raise _key_reused() from None
        if earlier is not None:
            return _accepted(earlier)
    tenant = await store.get_tenant(tenant_id)
    clock_id, created_at = await creation_clock(call)
    texts = [body["content"]] if kind.target == "text" else []
    scenario, headers = choose_scenario(call, texts, tenant.default_scenario)
    container = body.get("bucket_name") or body.get("container_name")
    failure = scan_failure(kind.provider, body) or (
        listing.denied(container) if container else None
    )
    if failure is not None:
        scenario = replace(scenario, name=failure.code, failure=failure)
    seed = plan_seed(call, request, scenario)
    entries = await _entries(call, kind, body, collection, f"{call.services.settings.seed}")
    skip = kind.target in ("bucket", "directory") and body.get("skip_existing") is not False
    uris = [e.uri for e in entries]
    # Files earlier jobs had indexed by the moment this job is made (on its clock).
    indexed = (
        await store.indexed_keys(tenant_id, collection, uris, at=created_at) if skip else set()
    )
    planned = functools.partial(
        _plan,
        entries,
        indexed,
        job_id=new_id(),
        created_at=created_at,
        scenario=scenario,
        seed=seed,
        time_scale=call.services.settings.time_scale,
        listed=kind.target in ("bucket", "directory"),
    )
    small = len(entries) <= INLINE_FILES
    plan, items = planned() if small else await asyncio.to_thread(planned)
    processing_type = body.get("processing_type") or "basic"
    billed = outcome(plan)[1] in (Status.COMPLETED, Status.COMPLETED_WITH_FAILURES)
    credits = plan.totals.units * present.CREDITS_PER_PAGE[processing_type] if billed else 0.0
    attrs = {
        "job_type": kind.job_type,
        "processing_type": processing_type,
        "source": _base_uri(kind, body)
        if kind.target in ("bucket", "directory", "file")
        else kind.provider,
        "credits": credits,
        "preference_applied": headers.get("Preference-Applied"),
    }
    try:
        record, _ = await store_job(
            call,
            NewJob(
                api=call.principal.api,
                kind=kind.job_type,
                plan=plan,
                items=items,
                collection=collection,
                attrs=attrs,
                credits=credits,
                idempotency=idempotency,
                clock_id=clock_id,
            ),
        )
    except IdempotencyMismatch:  # a concurrent first request with another body won
        raise _key_reused() from None
    # A concurrent identical first request may have won: answer what it got.
    return _accepted(record)


def _plan(
    entries: Sequence[listing.FileEntry], indexed: Set[str], **plan: Any
) -> tuple[Plan, tuple[Item, ...]]:
    """The job's plan and items: pure, and run off the event loop above ``INLINE_FILES``
    (100,000 files take seconds of CPU)."""
    work = [listing.work_for(entry, entry.uri in indexed) for entry in entries]
    return plan_job(work=work, **plan)


def _key_reused() -> Conflict:
    return Conflict("This Idempotency-Key was already used with a different request")


def _accepted(record: JobRecord) -> Reply:
    """The answer to an index request and, word for word, to each of its replays."""
    applied = record.attrs.get("preference_applied")
    headers = {"Preference-Applied": applied} if applied else {}
    return Reply(202, {"job_id": record.job_id, "status": "pending"}, headers)


def index_handler(operation_id: str) -> Handler:
    """The handler of one index operation: the shared ``_index`` with that operation's kind."""
    kind = INDEX_KINDS[operation_id]

    async def index(call: Call) -> Reply:
        return await _index(call, operation_id, kind)

    index.__name__ = index.__qualname__ = operation_id
    return index
