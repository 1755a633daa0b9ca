"""The polling report's analysis over constructed log entries: every kind of finding, made
when the log shows it and not otherwise."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import orjson
import pytest

from pollable.handlers.registry import JOB_APIS
from pollable.handlers.sandbox import polling
from pollable.handlers.sandbox.reports import terms_of
from pollable.store.base import LoggedMessage, RequestEntry

APIS = {t.name: t for t in map(terms_of, JOB_APIS) if t is not None}
CAPTAIN_READ, CAPTAIN_CREATE = "get_job_status_v2", "index_url_v2"
CROSMOS_READ = "get_job_status_api_v1_jobs__job_id__get"
FERN = {
    "x-fern-sdk-name": "captain-sdk",
    "x-fern-sdk-version": "0.1.1",
    "x-fern-language": "Python",
}
STAINLESS = {
    "x-stainless-lang": "python",
    "x-stainless-package-version": "0.4.1",
    "user-agent": "Crosmos/Python 0.4.1",
}
T0 = 1_800_000_000.0
_ids = itertools.count()


def entry(
    at: float,
    *,
    api: str = "captain",
    operation: str = CAPTAIN_READ,
    job: str | None = "job-1",
    status: int = 200,
    body: Any = None,
    headers: dict[str, str] | None = None,
    request_headers: dict[str, str] | None = None,
    request_body: str | None = None,
    query: str = "",
    clock: float | None = None,
    truncated: bool = False,
    retry_count: int | None = None,
    method: str = "GET",
) -> RequestEntry:
    text = None if body is None else orjson.dumps(body).decode()
    if truncated and text is not None:
        text = text[: len(text) // 2]
    return RequestEntry(
        id=f"req_{next(_ids):024x}",
        tenant_id="ten",
        at=at,
        method=method,
        path=f"/v2/jobs/{job}" if operation == CAPTAIN_READ else "/v2/collections/c/index/url",
        query=query,
        status=status,
        duration_ms=1.0,
        request=LoggedMessage(
            {**FERN, **(request_headers or {})},
            request_body,
            len(request_body or ""),
            False,
        ),
        response=LoggedMessage(
            {"content-type": "application/json", **(headers or {})},
            text,
            len(text or ""),
            truncated,
        ),
        api=api,
        operation_id=operation,
        job_id=job,
        clock_time=clock,
        retry_count=retry_count,
    )


def job(status: str, next_cursor: str | None = None) -> dict[str, Any]:
    return {"job_id": "job-1", "status": status, "files_page": {"next_cursor": next_cursor}}


def kinds(*entries: RequestEntry) -> list[str]:
    return [f.kind for f in polling.analyse(entries, APIS).findings]


def test_clients_are_named_by_their_sdk_headers() -> None:
    assert polling.client_of(FERN) == "captain-sdk/0.1.1 (fern, Python)"
    assert polling.client_of(STAINLESS) == "Crosmos/0.4.1 (stainless, python)"
    assert polling.client_of({"user-agent": "curl/8.5"}) == "curl/8.5"
    assert polling.client_of({}) == "-"


def test_a_polite_poller_gets_no_finding() -> None:
    """Waits Retry-After on the job's clock, reads every page, stops at terminal."""
    log = [
        entry(T0, clock=100, body=job("running"), headers={"retry-after": "5"}),
        entry(T0 + 0.1, clock=105, body=job("running"), headers={"retry-after": "5"}),
        entry(T0 + 0.2, clock=110, body=job("completed", "c1")),
        entry(T0 + 0.3, clock=110, body=job("completed", None), query="files_cursor=c1"),
    ]
    assert kinds(*log) == []


def test_early_poll_is_judged_on_the_jobs_clock() -> None:
    same_time = [
        entry(T0 + i, clock=100, body=job("running"), headers={"retry-after": "5"})
        for i in range(8)
    ]
    assert kinds(*same_time).count("early_poll") == 7
    report = polling.analyse(same_time, APIS)
    first = report.findings[0]
    assert first.related_request_id == same_time[0].id and first.seconds_early == 5
    # Real time moved 60 s, but the job's clock 3 s: still early.
    late_real = [
        entry(T0, clock=100, body=job("running"), headers={"retry-after": "5"}),
        entry(T0 + 60, clock=103, body=job("completed")),
    ]
    assert kinds(*late_real) == ["early_poll"]


def test_early_poll_without_a_clock_is_judged_in_real_time() -> None:
    log = [
        entry(T0, body=job("running"), headers={"retry-after": "2"}),
        entry(T0 + 1, body=job("running"), headers={"retry-after": "2"}),
        entry(T0 + 4, body=job("completed")),
    ]
    assert kinds(*log) == ["early_poll"]


def test_no_retry_after_no_early_poll() -> None:
    log = [entry(T0 + i, clock=100, body=job("running")) for i in range(3)]
    log.append(entry(T0 + 9, clock=100, body=job("completed")))
    assert kinds(*log) == []


def test_following_a_cursor_is_paging_not_polling() -> None:
    log = [
        entry(T0, clock=100, body=job("running", "c1"), headers={"retry-after": "5"}),
        entry(T0, clock=100, body=job("running", None), query="files_cursor=c1"),
        entry(T0 + 1, clock=105, body=job("completed")),
    ]
    assert kinds(*log) == []


def test_poll_after_terminal() -> None:
    log = [
        entry(T0, body=job("completed")),
        entry(T0 + 1, body=job("completed")),
        entry(T0 + 2, body=job("completed")),
    ]
    report = polling.analyse(log, APIS)
    assert [f.kind for f in report.findings] == ["poll_after_terminal"] * 2
    assert {f.related_request_id for f in report.findings} == {log[0].id}


def test_a_terminal_status_in_a_cut_body_is_not_seen() -> None:
    log = [entry(T0, body=job("completed"), truncated=True), entry(T0 + 1, body=job("completed"))]
    assert kinds(*log) == []


def test_poll_after_terminal_is_per_client() -> None:
    curl = {"user-agent": "curl/8.5", "x-fern-sdk-name": ""}
    log = [
        entry(T0, body=job("completed")),
        entry(T0 + 1, body=job("completed"), request_headers=curl),
    ]
    # The second client's first poll of the job: nothing told it the job had ended.
    assert "poll_after_terminal" not in kinds(*log)


@pytest.mark.parametrize("status", [429, 503])
def test_no_backoff_after_429_and_503(status: int) -> None:
    refused = entry(T0, status=status, body={"detail": "slow down"}, headers={"retry-after": "3"})
    assert kinds(refused, entry(T0 + 1, body=job("completed"))) == ["no_backoff"]
    assert kinds(refused, entry(T0 + 3.5, body=job("completed"))) == []


def test_no_backoff_without_retry_after_waits_one_second() -> None:
    refused = entry(T0, status=503, body={"detail": "down"})
    assert kinds(refused, entry(T0 + 0.2, body=job("completed"))) == ["no_backoff"]
    assert kinds(refused, entry(T0 + 1.2, body=job("completed"))) == []


def test_no_backoff_is_per_operation() -> None:
    refused = entry(T0, status=429, headers={"retry-after": "3"}, body={"detail": "x"})
    other = entry(T0 + 0.1, operation=CAPTAIN_CREATE, job="job-2", status=202, body={})
    assert "no_backoff" not in kinds(refused, other, entry(T0 + 4, body=job("completed")))


def create(at: float, status: int, **options: Any) -> RequestEntry:
    options.setdefault("request_body", '{"url": "https://x/a.pdf"}')
    return entry(
        at, operation=CAPTAIN_CREATE, method="POST", status=status,
        job="job-1" if status == 202 else None,
        body={"job_id": "job-1", "status": "pending"} if status == 202 else {"detail": "x"},
        **options,
    )  # fmt: skip


def test_a_create_retried_without_an_idempotency_key() -> None:
    assert kinds(create(T0, 503), create(T0 + 2, 202)) == ["retry_without_idempotency_key"]
    keyed = {"idempotency-key": "k-1"}
    assert kinds(create(T0, 503), create(T0 + 2, 202, request_headers=keyed)) == []
    # Not a retry: the first one was answered.
    assert kinds(create(T0, 202), create(T0 + 2, 202)) == []
    # A retry by the client's own count (its failed attempt got no answer, so no entry).
    assert kinds(create(T0, 202, retry_count=1)) == ["retry_without_idempotency_key"]
    # Another body is another request.
    other = create(T0 + 2, 202, request_body='{"url": "https://x/b.pdf"}')
    assert kinds(create(T0, 503), other) == []


def test_a_cut_create_body_proves_no_retry() -> None:
    first = create(T0, 503)
    # Log records are slotted (no __dict__): replaced, not rebuilt from their fields.
    cut = dataclasses.replace(first, request=LoggedMessage(first.request.headers, "{", 99, True))
    assert kinds(cut, create(T0 + 2, 202)) == []


def test_no_idempotency_finding_where_the_contract_offers_no_key() -> None:
    crosmos = {
        "api": "crosmos", "operation": "ingest_sources_api_v1_sources_post", "method": "POST",
        "request_body": "{}", "request_headers": STAINLESS,
    }  # fmt: skip
    log = [entry(T0, status=503, job=None, body={"detail": "x"}, **crosmos)]
    log.append(entry(T0 + 2, status=202, body={"job_id": "job-1"}, retry_count=1, **crosmos))
    assert kinds(*log) == []


def test_cursor_not_followed() -> None:
    offered = entry(T0, body=job("completed", "c1"))
    assert kinds(offered) == ["cursor_not_followed"]
    followed = entry(T0 + 1, body=job("completed", None), query="files_cursor=c1")
    assert kinds(offered, followed) == []
    # Following the first page's cursor, but not the second's.
    second = entry(T0 + 1, body=job("completed", "c2"), query="files_cursor=c1")
    assert kinds(offered, second) == ["cursor_not_followed"]
    assert kinds(entry(T0, body=job("completed", "c1"), truncated=True)) == []


def test_gave_up() -> None:
    running = entry(T0, body=job("running"))
    assert kinds(running) == ["gave_up"]
    assert kinds(running, entry(T0 + 1, body=job("failed"))) == []
    # A read whose body the log cut shows nothing.
    assert kinds(entry(T0, body=job("running"), truncated=True)) == []
    # Another client saw the job end: it ended.
    curl = {"user-agent": "curl/8.5"}
    other = entry(T0 + 1, body=job("completed"), request_headers=curl)
    assert kinds(running, other) == []


def test_crosmos_words() -> None:
    read = {"api": "crosmos", "operation": CROSMOS_READ, "request_headers": STAINLESS}
    log = [
        entry(T0, body={"job_id": "j", "status": "processing"}, **read),
        entry(T0 + 1, body={"job_id": "j", "status": "partial"}, **read),
        entry(T0 + 2, body={"job_id": "j", "status": "partial"}, **read),
    ]
    report = polling.analyse(log, APIS)
    assert [f.kind for f in report.findings] == ["poll_after_terminal"]
    assert list(report.clients) == ["Crosmos/0.4.1 (stainless, python)"]


def test_worst_examples_rank_by_seconds_early() -> None:
    log = [entry(T0, clock=100, body=job("running"), headers={"retry-after": "10"})]
    log += [
        entry(T0 + 1, clock=109, body=job("running"), headers={"retry-after": "10"}),
        entry(T0 + 2, clock=109, body=job("completed")),
    ]
    early = [f for f in polling.analyse(log, APIS).findings if f.kind == "early_poll"]
    assert [f.seconds_early for f in polling.worst(early)] == [10, 1]
