"""The request log's rows in SQLite: columns, conversions, and the ``WHERE`` of a filter.

``store.sqlite`` runs the statements; this module only knows how an entry is laid out.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import LoggedMessage, RequestEntry, RequestFilter

COLUMNS: tuple[tuple[str, type], ...] = (
    ("id", str),
    ("tenant_id", str),
    ("at", float),
    ("method", str),
    ("path", str),
    ("query", str),
    ("status", int),
    ("duration_ms", float),
    ("api", str),
    ("operation_id", str),
    ("job_id", str),
    ("clock_time", float),
    ("key_id", str),
    ("sdk", str),
    ("retry_count", int),
    ("request_headers", str),
    ("request_body", str),
    ("request_size", int),
    ("request_truncated", int),
    ("response_headers", str),
    ("response_body", str),
    ("response_size", int),
    ("response_truncated", int),
)
NAMES = ", ".join(name for name, _ in COLUMNS)
#: Rows per multi-row ``INSERT``, within SQLite's 32,766 parameters.
ROWS_PER_INSERT = 32_766 // len(COLUMNS)


def to_row(entry: RequestEntry) -> tuple[Any, ...]:
    request, response = entry.request, entry.response
    return (
        entry.id,
        entry.tenant_id or "",
        entry.at,
        entry.method,
        entry.path,
        entry.query,
        entry.status,
        entry.duration_ms,
        entry.api,
        entry.operation_id,
        entry.job_id,
        entry.clock_time,
        entry.key_id,
        None if entry.sdk is None else dumps(dict(entry.sdk)),
        entry.retry_count,
        dumps(dict(request.headers)),
        request.body,
        request.size,
        int(request.truncated),
        dumps(dict(response.headers)),
        response.body,
        response.size,
        int(response.truncated),
    )


def from_row(row: tuple[Any, ...]) -> RequestEntry:
    (id_, tenant_id, at, method, path, query, status, duration_ms, api, operation_id, job_id,
     clock_time, key_id, sdk, retry_count, request_headers, request_body, request_size,
     request_truncated, response_headers, response_body, response_size,
     response_truncated) = row  # fmt: skip
    return RequestEntry(
        id=id_,
        tenant_id=tenant_id or None,
        at=at,
        method=method,
        path=path,
        query=query,
        status=status,
        duration_ms=duration_ms,
        request=LoggedMessage(
            orjson.loads(request_headers), request_body, request_size, bool(request_truncated)
        ),
        response=LoggedMessage(
            orjson.loads(response_headers), response_body, response_size, bool(response_truncated)
        ),
        api=api,
        operation_id=operation_id,
        job_id=job_id,
        clock_time=clock_time,
        key_id=key_id,
        sdk=None if sdk is None else orjson.loads(sdk),
        retry_count=retry_count,
    )


def where_sql(tenant_id: str | None, where: RequestFilter) -> tuple[str, dict[str, Any]]:
    """The SQL condition (and its parameters) selecting the entries of one log ``where``
    matches."""
    clauses = ["tenant_id = :tenant"]
    params: dict[str, Any] = {"tenant": tenant_id or ""}
    for column in ("job_id", "path", "method", "status", "api"):
        value = getattr(where, column)
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if where.since is not None:
        clauses.append("at >= :since")
        params["since"] = where.since
    if where.until is not None:
        clauses.append("at < :until")
        params["until"] = where.until
    return " AND ".join(clauses), params


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
