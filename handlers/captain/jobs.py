"""Captain API v2: index from URLs, text or (synthetic) cloud storage; poll, list, cancel.

The fourteen index operations are one handler, driven by ``INDEX_KINDS``. No network and
no cloud is touched: listings are synthesised (``lifecycle.listing``), and credentials
are checked for shape by the contract and here, then dropped; they are never stored,
logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from typing import Any

import orjson

from pollable.lifecycle.engine import known_tally, outcome, prefix_needed, progress, state_at
from pollable.lifecycle.errors import InvalidInput
from pollable.lifecycle.model import Event, EventKind, Failure, Stage, Status
from pollable.lifecycle.planner import Work, plan_job
from pollable.store.base import Idempotency, IdempotencyMismatch, NewJob

from ..api import Call, Handler, Reply
from ..common import (
    choose_scenario,
    creation_clock,
    fingerprint,
    job_now,
    jobs_now,
    load_job,
    new_id,
    plan_seed,
    store_job,
)
from . import listing
from . import presenter as present

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

_SERVICE_ACCOUNT_FIELDS = ("type", "client_email", "private_key")


# -- reading jobs ---------------------------------------------------------------------------


def _encode_cursor(job_id: str, ordinal: int) -> str:
    raw = orjson.dumps([job_id, ordinal])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(job_id: str, cursor: str | None) -> int:
    """The ordinal a cursor points after (-1 for the first page)."""
    if cursor is None:
        return -1
    try:
        owner, ordinal = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        owner, ordinal = None, None
    if owner != job_id or not isinstance(ordinal, int) or ordinal < 0:
        raise InvalidInput(
            ("query", "files_cursor"), "Invalid cursor: use files_page.next_cursor of this job"
        )
    return ordinal


def _pricing(call: Call) -> present.Pricing:
    return present.Pricing(call.services.settings.credit_rate, call.services.settings.currency)


async def get_job(call: Call) -> Reply:
    store, tenant = call.services.store, call.principal.tenant_id
    job_id = call.params["job_id"]
    record = await load_job(call, job_id)
    plan = record.plan
    after = _decode_cursor(job_id, call.params.get("files_cursor"))
    limit = call.params["files_limit"]
    now = await job_now(call, record)
    state = state_at(plan, record.events, now)
    files = await store.items(tenant, job_id, after=after, limit=limit)
    last = files[-1].ordinal if files else plan.n_items
    next_cursor = _encode_cursor(job_id, last) if last < plan.n_items - 1 else None
    k = prefix_needed(plan, state)
    tally = known_tally(plan, state.settled) if k is None else await store.tally(tenant, job_id, k)
    assert tally is not None
    counts = progress(plan, state, tally)
    page = present.FilesPage(files, limit, next_cursor)
    return Reply(200, present.job(record, state, counts, page, _pricing(call), now))


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
    changed = not state.status.terminal
    if changed:
        event = Event(EventKind.CANCEL, now, "user")
        record = await call.services.store.append_event(
            call.principal.tenant_id, job_id, event, refund=record.attrs.get("credits", 0.0)
        )
        state = state_at(record.plan, record.events, now)
    return Reply(200, present.cancelled(record, state, changed=changed))


# -- indexing -----------------------------------------------------------------------------


def _credentials_failure(body: dict[str, Any]) -> Failure | None:
    """A GCS key that is no service-account key cannot list anything: the job fails while
    scanning, as it would upstream. (The contract only bounds the string's length.)"""
    raw = body.get("service_account_json")
    if raw is None:
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if (
        isinstance(parsed, dict)
        and parsed.get("type") == "service_account"
        and all(
            isinstance(parsed.get(name), str) and parsed[name] for name in _SERVICE_ACCOUNT_FIELDS
        )
    ):
        return None
    return Failure(
        Stage.SCANNING,
        "invalid_credentials",
        "The service account key is not usable: expected JSON with type 'service_account', "
        "client_email and private_key",
    )


def _base_uri(kind: IndexKind, body: dict[str, Any]) -> str:
    if kind.provider == "azure":
        return f"https://{body['account_name']}.blob.core.windows.net/{body['container_name']}/"
    scheme = {"s3": "s3", "gcs": "gs", "r2": "r2"}[kind.provider]
    return f"{scheme}://{body['bucket_name']}/"


async def _entries(
    call: Call, kind: IndexKind, body: dict[str, Any], collection: str, seed: str
) -> list[listing.FileEntry]:
    if kind.target == "urls":
        urls = [body["url"]] if body.get("url") else body["urls"]
        return [listing.single_file(url, seed) for url in urls]
    if kind.target == "text":
        name = body.get("filename")
        if not name:
            number = await call.services.store.next_sequence(
                call.principal.tenant_id, f"snippet:{collection}"
            )
            name = f"snippet-{number}.txt"
        return [listing.FileEntry(name, listing.text_pages(body["content"]))]
    base = _base_uri(kind, body)
    if kind.target == "file":
        uri = body["file_uri"]
        return [listing.single_file(uri if "://" in uri else base + uri.lstrip("/"), seed)]
    prefix = (body.get("directory_path") or "") if kind.target == "directory" else ""
    # JSON Schema's integer admits 3.0; the listing needs the int.
    max_files = body.get("max_files")
    return listing.list_location(base, prefix, None if max_files is None else int(max_files), seed)


def _public(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in SECRET_FIELDS}


async def _index(call: Call, operation_id: str, kind: IndexKind) -> Reply:
    store, tenant_id = call.services.store, call.principal.tenant_id
    body = call.body
    collection = call.params["collection_name"]
    public = _public(body)
    request = {"operation": operation_id, "collection": collection, "body": public}
    tenant = await store.get_tenant(tenant_id)
    clock_id, created_at = await creation_clock(call)
    texts = [body["content"]] if kind.target == "text" else []
    scenario, headers = choose_scenario(call, texts, tenant.default_scenario)
    container = body.get("bucket_name") or body.get("container_name")
    failure = (listing.denied(container) if container else None) or _credentials_failure(body)
    if failure is not None:
        scenario = replace(scenario, name=failure.code, failure=failure)
    seed = plan_seed(call, request, scenario)
    entries = await _entries(call, kind, body, collection, f"{call.services.settings.seed}")
    skip = kind.target in ("bucket", "directory") and body.get("skip_existing") is not False
    indexed = (
        await store.indexed_keys(tenant_id, collection, [e.uri for e in entries]) if skip else set()
    )
    work: list[Work] = [listing.work_for(entry, entry.uri in indexed) for entry in entries]
    plan, items = plan_job(
        job_id=new_id(),
        created_at=created_at,
        scenario=scenario,
        work=work,
        seed=seed,
        time_scale=call.services.settings.time_scale,
        listed=kind.target in ("bucket", "directory"),
    )
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
    }
    key = call.params.get("idempotency_key")
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
                idempotency=Idempotency(key, fingerprint(request)) if key else None,
                clock_id=clock_id,
            ),
        )
    except IdempotencyMismatch:
        raise InvalidInput(
            ("header", "idempotency-key"),
            "This Idempotency-Key was already used with a different request",
            "idempotency_key_reused",
        ) from None
    return Reply(202, {"job_id": record.job_id, "status": "pending"}, headers)


def index_handler(operation_id: str) -> Handler:
    """The handler of one index operation: the shared ``_index`` with that operation's kind."""
    kind = INDEX_KINDS[operation_id]

    async def index(call: Call) -> Reply:
        return await _index(call, operation_id, kind)

    index.__name__ = index.__qualname__ = operation_id
    return index
