"""server.faults without a server: the ``Prefer: fault=...`` grammar, when a rule fires
(every Nth, next N, a seeded probability: deterministic), which requests a rule matches,
the token bucket, and the headers of a 429."""

from __future__ import annotations

import time

import pytest

from pollable.lifecycle.errors import InvalidInput
from pollable.server.faults import (
    Action,
    RateLimiter,
    draw,
    fires,
    matches,
    preferred_fault,
    status_reply,
)


@pytest.mark.parametrize(
    ("prefer", "action"),
    [
        (None, None),
        ("", None),
        ("scenario=slow", None),
        ("respond-async, wait=10", None),
        ("fault=429", Action(status=429)),
        ("FAULT=503", Action(status=503)),
        ('fault="500"', Action(status=500)),
        ("fault=429; retry-after=7", Action(status=429, retry_after=7)),
        ("scenario=slow, fault=latency-250", Action(latency_ms=250)),
        ("fault=close", Action(close=True)),
        ("faults=whatever", None),
    ],
)
def test_the_fault_preference(prefer: str | None, action: Action | None) -> None:
    assert preferred_fault(prefer) == action


@pytest.mark.parametrize(
    "prefer",
    ["fault=418", "fault=", "fault=latency-0", "fault=latency-60001", "fault=latency-٣",
     "fault=429; retry-after=3601", "fault=429; retry-after=-1", "fault=closed"],
)  # fmt: skip
def test_an_unknown_fault_is_invalid(prefer: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        preferred_fault(prefer)
    assert caught.value.loc == ("header", "prefer")


def test_words_name_what_was_applied() -> None:
    assert [Action(status=503).word, Action(latency_ms=20).word, Action(close=True).word] == [
        "503", "latency-20", "close",
    ]  # fmt: skip


def test_triggers() -> None:
    assert [fires({"every": 3}, n) for n in range(1, 7)] == [False, False, True] * 2
    assert [fires({"next": 2}, n) for n in range(1, 5)] == [True, True, False, False]
    assert all(fires(None, n) for n in range(1, 5))
    seeded = {"probability": 0.3, "seed": 42}
    first = [fires(seeded, n) for n in range(1, 1001)]
    assert first == [fires(seeded, n) for n in range(1, 1001)]
    assert 200 < sum(first) < 400
    other = [fires({"probability": 0.3, "seed": 43}, n) for n in range(1, 1001)]
    assert other != first
    assert not any(fires({"probability": 0, "seed": 1}, n) for n in range(1, 100))
    assert all(fires({"probability": 1, "seed": 1}, n) for n in range(1, 100))
    assert 0 <= draw(1, 1) < 1


def test_what_a_rule_matches() -> None:
    anything = {"action": {"close": True}}
    assert matches(anything, "captain", "list_jobs_v2", None)
    one = {"api": "captain", "operation": "get_job_status_v2", "job_id": "j1"}
    assert matches(one, "captain", "get_job_status_v2", "j1")
    assert not matches(one, "captain", "get_job_status_v2", "j2")
    assert not matches(one, "captain", "cancel_job_v2", "j1")
    assert not matches({"api": "crosmos"}, "captain", "list_jobs_v2", None)
    assert not matches({"job_id": "j1"}, "captain", "list_jobs_v2", None)


def test_the_token_bucket() -> None:
    now = [100.0]
    limiter = RateLimiter(10, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.1)
    assert limiter.take("b") == 0.0  # another tenant has its own bucket
    now[0] += 0.1
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.1)
    now[0] += 100
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, no more
    assert RateLimiter(0, 1).take("a") == 0.0  # no limit


def test_idle_buckets_are_dropped() -> None:
    now = [0.0]
    limiter = RateLimiter(1, 1, clock=lambda: now[0])
    limiter.MAX_BUCKETS = 3
    for tenant in "abc":
        limiter.take(tenant)
    now[0] += 10
    limiter.take("d")
    assert set(limiter._buckets) == {"d"}


def test_a_429_carries_what_the_sdks_read() -> None:
    reply = status_reply(429, retry_after=0.25, limit=50, detail="slow down")
    headers = reply.headers
    assert (headers["Retry-After"], headers["retry-after-ms"]) == ("1", "250")
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("50", "0")
    assert int(headers["X-RateLimit-Reset"]) >= time.time()
    assert set(status_reply(503, retry_after=2, limit=50, detail="x").headers) == {"Retry-After"}
    assert status_reply(500, retry_after=2, limit=50, detail="x").headers == {}
