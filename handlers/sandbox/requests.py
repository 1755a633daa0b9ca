"""The request log (``/sandbox/v1/requests``): list, count, get and delete entries.

A tenant key reads its own tenant's log; the admin reads a tenant's log by naming it
(``tenant_id``), or without one the log of requests no tenant was found for. A log entry
of another tenant is answered 404, like one that does not exist. Every read first writes
what this process has queued, so it sees every request this process has answered.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from pollable.lifecycle.errors import InvalidInput, NotFound
from pollable.store.base import LoggedMessage, RequestCursor, RequestEntry, RequestFilter

from ..api import Call, Reply
from ..common import iso
from .tenants import own_tenant

REQUEST_NOT_FOUND = "Request not found"


async def _log_of(call: Call) -> str | None:
    """Whose log the call reads: a tenant's id, or None for requests of no tenant."""
    named = call.params.get("tenant_id")
    if named is None:
        return None if call.principal.admin else call.principal.tenant_id
    return (await own_tenant(call, named)).id


def _instant(call: Call, name: str) -> float | None:
    value = call.params.get(name)
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _filter(call: Call) -> RequestFilter:
    method = call.params.get("method")
    return RequestFilter(
        job_id=call.params.get("job_id"),
        path=call.params.get("path"),
        method=None if method is None else method.upper(),
        status=call.params.get("status"),
        api=call.params.get("api"),
        since=_instant(call, "since"),
        until=_instant(call, "until"),
    )


def _encode_cursor(entry: RequestEntry) -> str:
    raw = orjson.dumps([entry.at, entry.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> RequestCursor | None:
    if cursor is None:
        return None
    try:
        at, request_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(at, int | float) and isinstance(request_id, str):
            return float(at), request_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidInput(("query", "cursor"), "Not a cursor this log gave out")


def _body(message: LoggedMessage) -> Any:
    if message.body is None or message.truncated:
        return message.body
    media = message.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return orjson.loads(message.body)
        except orjson.JSONDecodeError:
            pass
    return message.body


def _message_body(message: LoggedMessage) -> dict[str, Any]:
    return {
        "headers": dict(message.headers),
        "body": _body(message),
        "body_bytes": message.size,
        "body_truncated": message.truncated,
    }


def entry_body(entry: RequestEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "tenant_id": entry.tenant_id,
        "api": entry.api,
        "operation_id": entry.operation_id,
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "status": entry.status,
        "created_at": iso(entry.at),
        "clock_time": iso(entry.clock_time),
        "duration_ms": entry.duration_ms,
        "job_id": entry.job_id,
        "key_id": entry.key_id,
        "sdk": None if entry.sdk is None else dict(entry.sdk),
        "retry_count": entry.retry_count,
        "request": _message_body(entry.request),
        "response": _message_body(entry.response),
    }


async def list_requests(call: Call) -> Reply:
    owner, where = await _log_of(call), _filter(call)
    limit, before = call.params["limit"], _decode_cursor(call.params.get("cursor"))
    await call.services.request_log.flush()
    found = await call.services.store.list_requests(owner, where, before=before, limit=limit + 1)
    page = found[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(found) > limit else None
    return Reply(200, {"data": [entry_body(e) for e in page], "next_cursor": next_cursor})


async def count_requests(call: Call) -> Reply:
    owner, where = await _log_of(call), _filter(call)
    await call.services.request_log.flush()
    return Reply(200, {"count": await call.services.store.count_requests(owner, where)})


async def get_request(call: Call) -> Reply:
    owner = await _log_of(call)
    await call.services.request_log.flush()
    try:
        entry = await call.services.store.get_request(owner, call.params["request_id"])
    except NotFound:
        raise NotFound(REQUEST_NOT_FOUND) from None
    return Reply(200, entry_body(entry))


async def delete_requests(call: Call) -> Reply:
    owner, where = await _log_of(call), _filter(call)
    await call.services.request_log.flush()
    return Reply(200, {"deleted": await call.services.store.delete_requests(owner, where)})
