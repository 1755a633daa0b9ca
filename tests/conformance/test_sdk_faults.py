"""Both official SDKs driven through every fault, on a job's status read and on a create,
against the plugin's in-process server: each recovers or fails exactly as its retry rules
say, and the request log shows every attempt that was answered.

The SDKs' rules (read in ``crosmos/_base_client.py`` and ``runcaptain/core/http_client.py``):

- Crosmos (Stainless) retries 408/409/429/5xx, timeouts and connection errors
  ``max_retries`` (2) times. It waits ``retry-after-ms``, else ``Retry-After`` (seconds,
  when 0 < s <= 60), else 0.5 s * 2^n less up to 25 % jitter. It numbers its attempts
  (``X-Stainless-Retry-Count``), and gives up with ``RateLimitError`` (429),
  ``InternalServerError`` (5xx), ``APITimeoutError`` or ``APIConnectionError``.
- Captain (Fern) retries 408/409/429/5xx twice, waiting a whole-second ``Retry-After``
  (``retry-after-ms`` is never read: its parser compares a string with 0 and drops it),
  else ``X-RateLimit-Reset``, else 1 s * 2^n +- 10 %. It sends no retry count, and it
  never retries a timeout or a closed connection: httpx's exception reaches the caller.
  It gives up with ``ApiError`` carrying the status.

The SDKs' sleeps are recorded instead of slept (their modules' ``time`` is swapped for one
whose ``sleep`` only records), so each test asserts the waits the SDK chose and still runs
in well under a second. The server's latency is real.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import crosmos
import crosmos._base_client
import httpx
import pytest
import runcaptain
import runcaptain.core.http_client
from runcaptain.core.api_error import ApiError

from pollable.testing import Sandbox

SPACE_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
SOURCES: Any = [{"content": "Ada met Alan."}]
OPERATIONS = {
    ("crosmos", "read"): "get_job_status_api_v1_jobs__job_id__get",
    ("crosmos", "create"): "ingest_sources_api_v1_sources_post",
    ("captain", "read"): "get_job_status_v2",
    ("captain", "create"): "index_url_v2",
}
SUCCESS = {"read": 200, "create": 202}
#: The rule of each fault kind; 429 and 503 ask for one second (recorded, not slept).
FAULTS: dict[str, dict[str, Any]] = {
    "429": {"status": 429, "retry_after": 1},
    "503": {"status": 503, "retry_after": 1},
    "500": {"status": 500},
    "close": {"close": True},
}
CROSMOS_ERRORS: dict[str, type[Exception]] = {
    "429": crosmos.RateLimitError,
    "503": crosmos.InternalServerError,
    "500": crosmos.InternalServerError,
    "close": crosmos.APIConnectionError,
}
#: Seconds a test may take, its sandbox included (the SDKs' waits are not slept).
BUDGET = 2.0


class Sleeps:
    """Stands for the ``time`` module in an SDK's retry code: records each wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    recorder = Sleeps()
    stand_in = types.SimpleNamespace(sleep=recorder.sleep, time=time.time)
    monkeypatch.setattr(crosmos._base_client, "time", stand_in)
    monkeypatch.setattr(runcaptain.core.http_client, "time", stand_in)
    return recorder


@pytest.fixture(autouse=True)
def in_budget() -> Iterator[None]:
    started = time.monotonic()
    yield
    assert time.monotonic() - started < BUDGET


def backoff(api: str, retries: int) -> list[tuple[float, float]]:
    """The bounds of each wait of the SDK's exponential backoff."""
    if api == "crosmos":
        return [(0.5 * 2**n * 0.75, 0.5 * 2**n) for n in range(retries)]
    return [(2**n * 0.9, 2**n * 1.1) for n in range(retries)]


def expected_waits(api: str, fault: str, retries: int) -> list[tuple[float, float]]:
    if fault in ("429", "503"):
        return [(1.0, 1.0)] * retries  # retry-after-ms 1000 (Crosmos, 429), Retry-After: 1
    return backoff(api, retries)


def within(waits: list[float], bounds: list[tuple[float, float]]) -> bool:
    return len(waits) == len(bounds) and all(
        low - 1e-9 <= wait <= high + 1e-9 for wait, (low, high) in zip(waits, bounds, strict=True)
    )


def call(pollable: Sandbox, api: str, operation: str, **options: Any) -> Callable[[], Any]:
    """The SDK call under test; a read is of a job made first (unfaulted)."""
    if api == "crosmos":
        client = pollable.crosmos(max_retries=2, **options)
        if operation == "create":
            return lambda: client.sources.ingest(space_id=SPACE_ID, sources=SOURCES)
        job_id = client.sources.ingest(space_id=SPACE_ID, sources=SOURCES).job_id
        return lambda: client.jobs.get_status(job_id)
    captain = pollable.captain(**options)
    if operation == "create":
        return lambda: captain.indexing.index_url_v2(
            "faults", url="https://example.com/a.pdf", processing_type="basic"
        )
    job_id = captain.indexing.index_url_v2(
        "faults", url="https://example.com/a.pdf", processing_type="basic"
    ).job_id
    return lambda: captain.jobs.get_job_status_v2(job_id)


def attempts(pollable: Sandbox, api: str, operation: str) -> list[dict[str, Any]]:
    """The log's entries of the operation under test, oldest first."""
    name = OPERATIONS[api, operation]
    return [e for e in reversed(pollable.requests(api=api)) if e["operation_id"] == name]


def assert_no_job_made(pollable: Sandbox, api: str) -> None:
    """Nothing in the tenant's log names a job, and (Captain) its job list is empty."""
    assert [e for e in pollable.requests() if e["job_id"]] == []
    if api == "captain":
        listed = httpx.get(
            f"{pollable.base_url}/v2/jobs",
            headers={
                "Authorization": f"Bearer {pollable.captain_key}",
                "X-Organization-ID": pollable.organization_id,
            },
        )
        assert listed.status_code == 200 and listed.json()["jobs"] == [], listed.text


def retry_counts(entries: list[dict[str, Any]]) -> list[int | None]:
    return [e["retry_count"] for e in entries]


@pytest.mark.parametrize("operation", ["read", "create"])
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("times", [1, 2])
@pytest.mark.parametrize("api", ["crosmos", "captain"])
def test_the_sdk_recovers_from_one_or_two_faults(
    pollable: Sandbox, sleeps: Sleeps, api: str, fault: str, times: int, operation: str
) -> None:
    attempt = call(pollable, api, operation)
    pollable.fault(**FAULTS[fault], operation=OPERATIONS[api, operation], times=times)
    if api == "captain" and fault == "close":
        # Fern does not retry a closed connection: each one reaches the caller, and an
        # unanswered request is not logged.
        for _ in range(times):
            with pytest.raises(httpx.RemoteProtocolError):
                attempt()
            assert attempts(pollable, api, operation) == []
            if operation == "create":
                assert_no_job_made(pollable, api)
        answer = attempt()
        assert [e["status"] for e in attempts(pollable, api, operation)] == [SUCCESS[operation]]
        assert sleeps.waits == []
        return

    answer = attempt()
    assert answer.job_id
    entries = attempts(pollable, api, operation)
    if fault == "close":
        # Crosmos retried the closed connections; only the answered attempt is logged.
        assert [e["status"] for e in entries] == [SUCCESS[operation]]
        assert retry_counts(entries) == [times]
    else:
        assert [e["status"] for e in entries] == [int(fault)] * times + [SUCCESS[operation]]
        if api == "crosmos":
            assert retry_counts(entries) == list(range(times + 1))
        else:
            assert retry_counts(entries) == [None] * (times + 1)  # Fern does not say
            assert len({e["path"] for e in entries}) == 1  # the same request, again
    assert within(sleeps.waits, expected_waits(api, fault, times)), sleeps.waits
    if operation == "create":
        assert [e["job_id"] for e in pollable.requests() if e["job_id"]] == [answer.job_id]


@pytest.mark.parametrize("operation", ["read", "create"])
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("api", ["crosmos", "captain"])
def test_the_sdk_gives_up_after_two_retries(
    pollable: Sandbox, sleeps: Sleeps, api: str, fault: str, operation: str
) -> None:
    attempt = call(pollable, api, operation)
    rule = pollable.fault(**FAULTS[fault], operation=OPERATIONS[api, operation], times=3)
    expected: type[Exception] = ApiError
    if api == "crosmos":
        expected = CROSMOS_ERRORS[fault]
    elif fault == "close":
        expected = httpx.RemoteProtocolError
    with pytest.raises(expected) as raised:
        attempt()
    tries = 1 if (api, fault) == ("captain", "close") else 3
    entries = attempts(pollable, api, operation)
    if fault == "close":
        assert entries == []  # no attempt was answered, none is logged
    else:
        assert [e["status"] for e in entries] == [int(fault)] * 3
        assert retry_counts(entries) == ([0, 1, 2] if api == "crosmos" else [None] * 3)
        assert getattr(raised.value, "status_code", None) == int(fault)
    assert pollable.client.get_fault(rule["id"])["matched"] == tries
    assert within(sleeps.waits, expected_waits(api, fault, tries - 1)), sleeps.waits
    if operation == "create":
        assert_no_job_made(pollable, api)
    if (api, fault) == ("captain", "close"):
        for _ in range(2):  # the caller's own retries meet the rule's other two closes
            with pytest.raises(httpx.RemoteProtocolError):
                attempt()
    # The rule is spent: the same call now succeeds at once.
    assert attempt().job_id


@pytest.mark.parametrize("operation", ["read", "create"])
@pytest.mark.parametrize("api", ["crosmos", "captain"])
def test_latency_longer_than_the_timeout(
    pollable: Sandbox, sleeps: Sleeps, api: str, operation: str
) -> None:
    """A client timeout shorter than the latency: Crosmos times out, retries, and gives up
    with ``APITimeoutError`` after three; Captain raises httpx's ``ReadTimeout`` at once.

    The server had each request whole before the latency began, so it carries each out
    after it, as a slow real server would, and answers nobody: every timed-out create
    made its job (three for Crosmos, whose creates take no Idempotency-Key), and every
    answer is logged like any other. That is the hazard a client's timeout code meets."""
    attempt = call(pollable, api, operation, timeout=0.1)
    rule = pollable.fault(latency_ms=300, operation=OPERATIONS[api, operation], times=3)
    expected = crosmos.APITimeoutError if api == "crosmos" else httpx.ReadTimeout
    with pytest.raises(expected):
        attempt()
    tries = 3 if api == "crosmos" else 1
    assert pollable.client.get_fault(rule["id"])["matched"] == tries
    assert within(sleeps.waits, backoff(api, tries - 1)), sleeps.waits
    time.sleep(0.35)  # past the latency of the last attempt
    entries = attempts(pollable, api, operation)
    assert [e["status"] for e in entries] == [202 if operation == "create" else 200] * tries
    assert all(e["duration_ms"] >= 300 for e in entries)
    if api == "crosmos":
        assert retry_counts(entries) == [0, 1, 2]
    if operation == "create":
        made = {e["job_id"] for e in entries}
        assert len(made) == tries and None not in made


@pytest.mark.parametrize("api", ["crosmos", "captain"])
def test_latency_within_the_timeout(pollable: Sandbox, sleeps: Sleeps, api: str) -> None:
    attempt = call(pollable, api, "read", timeout=2.0)
    pollable.fault(latency_ms=300, operation=OPERATIONS[api, "read"], times=1)
    started = time.monotonic()
    assert attempt().job_id
    assert time.monotonic() - started >= 0.3
    (entry,) = attempts(pollable, api, "read")
    assert entry["status"] == 200 and entry["duration_ms"] >= 300
    assert entry["retry_count"] == (0 if api == "crosmos" else None)
    assert sleeps.waits == []


def test_crosmos_recovers_from_a_timeout(pollable: Sandbox, sleeps: Sleeps) -> None:
    """One slow answer: Crosmos's second attempt is answered, and says it is retry 1."""
    attempt = call(pollable, "crosmos", "read", timeout=0.1)
    pollable.fault(latency_ms=300, operation=OPERATIONS["crosmos", "read"], times=1)
    assert attempt().job_id
    entries = attempts(pollable, "crosmos", "read")
    assert [(e["status"], e["retry_count"]) for e in entries] == [(200, 1)]
    assert within(sleeps.waits, backoff("crosmos", 1))
