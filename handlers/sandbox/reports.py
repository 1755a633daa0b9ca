"""The polling report (``GET /sandbox/v1/reports/polling``): ``polling.analyse`` over the
newest entries of one tenant's request log, at most ``max_entries`` of them, read page by
page. What each finding means is in ``polling``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from pollable.lifecycle.errors import InvalidInput
from pollable.store.base import RequestEntry, RequestFilter

from ..api import Call, Reply
from ..common import iso
from ..descriptor import ApiDescriptor
from . import polling
from .requests import _instant
from .tenants import own_tenant

#: Entries read from the store at a time.
PAGE = 500
IDEMPOTENCY_HEADER = "idempotency-key"
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


async def _tenant_id(call: Call) -> str:
    named = call.params.get("tenant_id")
    if named is None:
        if call.principal.admin:
            raise InvalidInput(("query", "tenant_id"), "The admin names the tenant: tenant_id")
        return call.principal.tenant_id
    return (await own_tenant(call, named)).id


def _operations(documents: Iterable[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (path, method): its operationId and the lower-case names of its header
    parameters, over every document of an API (additions add parameters to operations of
    the base)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for document in documents:
        shared = document.get("components", {}).get("parameters", {})
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                if method not in _METHODS or not isinstance(operation, dict):
                    continue
                known = found.setdefault((path, method), {"id": None, "headers": set()})
                known["id"] = operation.get("operationId") or known["id"]
                for parameter in operation.get("parameters", ()):
                    ref = parameter.get("$ref", "")
                    if ref.startswith("#/components/parameters/"):
                        parameter = shared.get(ref.rsplit("/", 1)[1], {})
                    if parameter.get("in") == "header" and "name" in parameter:
                        known["headers"].add(parameter["name"].lower())
                    if parameter.get("in") == "query" and "name" in parameter:
                        known.setdefault("query", set()).add(parameter["name"])
    return found


@functools.cache
def terms_of(api: ApiDescriptor) -> polling.ApiTerms | None:
    """What the report needs of a job API, from its descriptor and its documents: its
    status operation, terminal words, the operations that declare ``Idempotency-Key``,
    and its status operation's page cursor (a query parameter ``<items>_cursor``, whose
    next value the answer holds at ``<items>_page.next_cursor``)."""
    if api.status_operation is None:
        return None
    operations = _operations(orjson.loads(doc.read_bytes()) for doc in api.documents)
    idempotent = frozenset(
        op["id"] for op in operations.values() if op["id"] and IDEMPOTENCY_HEADER in op["headers"]
    )
    status_query: set[str] = next(
        (op.get("query", set()) for op in operations.values() if op["id"] == api.status_operation),
        set(),
    )
    cursor = next((name for name in sorted(status_query) if name.endswith("_cursor")), None)
    return polling.ApiTerms(
        name=api.name,
        status_operation=api.status_operation,
        terminal=frozenset(word for word, status in api.statuses.items() if status.terminal),
        statuses=frozenset(api.statuses),
        idempotent_operations=idempotent,
        cursor_parameter=cursor,
        cursor_field=(cursor.removesuffix("_cursor") + "_page", "next_cursor") if cursor else (),
    )


async def _newest(
    call: Call, tenant_id: str, where: RequestFilter, most: int
) -> tuple[list[RequestEntry], bool]:
    """Up to ``most`` newest entries, and whether older ones were left out."""
    store, kept, before = call.services.store, list[RequestEntry](), None
    while len(kept) < most:
        want = min(PAGE, most - len(kept))
        page = await store.list_requests(tenant_id, where, before=before, limit=want + 1)
        kept += page[:want]
        if len(page) <= want:
            return kept, False
        last = page[want - 1]
        before = (last.at, last.id)
    return kept, True


def _finding(finding: polling.Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "client": finding.client,
        "job_id": finding.job_id,
        "request_id": finding.request_id,
        "related_request_id": finding.related_request_id,
        "at": iso(finding.at),
        "seconds_early": finding.seconds_early,
        "detail": finding.detail,
    }


def report_body(
    report: polling.Report, tenant_id: str, considered: Sequence[RequestEntry], cut: bool,
    most: int, client: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    clients = [c for c in report.clients.values() if client is None or c.client == client]
    jobs = [j for j in report.jobs.values() if client is None or client in j.clients]
    findings = [f for c in clients for f in c.findings]
    return {
        "tenant_id": tenant_id,
        "entries_considered": len(considered),
        "max_entries": most,
        "truncated": cut,
        "oldest_considered": iso(min((e.at for e in considered), default=None)),
        "findings": polling.counts(findings),
        "clients": [
            {
                "client": c.client,
                "sdk": None if c.sdk is None else dict(c.sdk),
                "user_agent": c.user_agent,
                "requests": c.requests,
                "polls": c.polls,
                "jobs": len(c.jobs),
                "findings": polling.counts(c.findings),
                "examples": [_finding(f) for f in polling.worst(c.findings)],
            }
            for c in clients
        ],
        "jobs": [
            {
                "job_id": j.job_id,
                "api": j.api,
                "polls": j.polls,
                "last_status": j.last_status,
                "terminal": j.terminal,
                "clients": sorted(j.clients),
                "findings": polling.counts(
                    f for f in j.findings if client is None or f.client == client
                ),
                "examples": [
                    _finding(f)
                    for f in polling.worst(
                        (f for f in j.findings if client is None or f.client == client), 1
                    )
                ],
            }
            for j in jobs
        ],
    }


async def polling_report(call: Call) -> Reply:
    tenant_id = await _tenant_id(call)
    most = call.params["max_entries"]
    where = RequestFilter(
        job_id=call.params.get("job_id"),
        since=_instant(call, "since"),
        until=_instant(call, "until"),
    )
    apis = {t.name: t for t in map(terms_of, call.services.job_apis) if t is not None}
    await call.services.request_log.flush()
    entries, cut = await _newest(call, tenant_id, where, most)
    # Tens of µs an entry (5,000 in about 0.3 s): off the event loop, so other requests are
    # answered meanwhile.
    body = await asyncio.to_thread(
        lambda: report_body(
            polling.analyse(entries, apis), tenant_id, entries, cut, most, call.params.get("client")
        )
    )
    return Reply(200, body)
