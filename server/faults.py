"""Faults on purpose, and the per-tenant request rate limit: what a job API's request meets
once it is authenticated and its contract accepts it (a refused request is answered as
refused, at any rate), before its handler runs (so a refused create stores nothing).

A request is faulted by its own ``Prefer: fault=...`` preference (RFC 7240, answered with
``Preference-Applied``) or by its tenant's fault rules (``/sandbox/v1/faults``, fixtures).
A rule matches requests by API, operation and job; it counts its matches in the store
(``Store.match_fault``, atomic), so "every Nth", "the next N" and "with probability p, seed
s" (the Nth match's draw is a hash of the seed and N) mean the same on every process
sharing a store, and the same sequence for the same seed. What a fault does:

- a status (429, 503, 500) in the API's own error shape, with ``Retry-After`` in whole
  seconds, and for 429 the rate-limit headers both official SDKs read (``retry-after-ms``:
  Stainless; ``X-RateLimit-Reset``, epoch seconds: Fern's fallback);
- latency (an asyncio sleep: other requests go on), then the request as usual: it was
  read whole before, so it is carried out even if the client stopped waiting, as on a
  slow real server (a create that timed out may have made its job);
- closing the connection without an answer (``Close``; the bounded protocol,
  ``server/protocol.py``, gives each request a way to do so: ``CLOSE_EXTENSION``).

The rate limit is a token bucket per tenant, in each process (N processes allow N times
the rate); a request over it is answered 429 with the same headers, computed so that the
SDKs' waits end when a token is there.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pollable.handlers.api import Reply
from pollable.lifecycle.errors import InvalidInput, NotFound
from pollable.store.base import FaultRule, Store

#: The statuses a fault can answer; every job-API operation declares them.
FAULT_STATUSES = (429, 500, 503)
#: What ``Prefer: fault=...`` and a rule may ask for, at most.
MAX_LATENCY_MS = 60_000
MAX_RETRY_AFTER = 3600
#: Fault rules a tenant may have.
MAX_RULES = 100
#: The scope extension (a callable) that closes the request's connection unanswered.
CLOSE_EXTENSION = "pollable.close"
PREFER_LOC = ("header", "prefer")
_DETAILS = {
    429: "Too Many Requests (a sandbox fault)",
    500: "Internal Server Error (a sandbox fault)",
    503: "Service Unavailable (a sandbox fault)",
}
_GRAMMAR = (
    "A fault preference is fault=429, fault=503, fault=500 (optionally with ;retry-after=S), "
    f"fault=latency-MS (1 to {MAX_LATENCY_MS}) or fault=close"
)


class Close(Exception):
    """Close the request's connection without answering it."""


@dataclass(frozen=True)
class Action:
    """What a fault does: answer ``status``, wait ``latency_ms``, or ``close``."""

    status: int | None = None
    latency_ms: int = 0
    close: bool = False
    retry_after: int | None = None

    @property
    def word(self) -> str:
        """The preference that asks for it (``429``, ``latency-2000``, ``close``)."""
        if self.close:
            return "close"
        if self.status is not None:
            return str(self.status)
        return f"latency-{self.latency_ms}"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Action:
        if spec.get("close"):
            return cls(close=True)
        if "status" in spec:
            return cls(status=int(spec["status"]), retry_after=spec.get("retry_after"))
        return cls(latency_ms=int(spec.get("latency_ms", 0)))


def preferred_fault(prefer: str | None) -> Action | None:
    """The ``fault=...`` preference of a ``Prefer`` header, if any; ``InvalidInput`` for a
    value pollable does not know (other preferences are someone else's business)."""
    if not prefer or "fault" not in prefer.lower():
        return None
    for preference in prefer.split(","):
        token, *parameters = preference.split(";")
        name, _, value = token.partition("=")
        if name.strip().lower() != "fault":
            continue
        return _action(value.strip().strip('"').lower(), parameters)
    return None


def _action(value: str, parameters: Sequence[str]) -> Action:
    if value == "close":
        return Action(close=True)
    if value.startswith("latency-"):
        ms = value.removeprefix("latency-")
        if ms.isascii() and ms.isdigit() and 0 < int(ms) <= MAX_LATENCY_MS:
            return Action(latency_ms=int(ms))
    elif value in {str(status) for status in FAULT_STATUSES}:
        retry_after = None
        for parameter in parameters:
            name, _, raw = parameter.partition("=")
            if name.strip().lower() == "retry-after":
                raw = raw.strip().strip('"')
                if not (raw.isascii() and raw.isdigit() and int(raw) <= MAX_RETRY_AFTER):
                    raise InvalidInput(PREFER_LOC, f"retry-after is 0 to {MAX_RETRY_AFTER}")
                retry_after = int(raw)
        return Action(status=int(value), retry_after=retry_after)
    raise InvalidInput(PREFER_LOC, _GRAMMAR)


def draw(seed: int, n: int) -> float:
    """The ``n``th draw, in [0, 1), of a rule's seeded probability."""
    digest = hashlib.sha256(f"{seed}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fires(trigger: Mapping[str, Any] | None, n: int) -> bool:
    """Whether a rule fires on the ``n``th request it matches (1 for the first)."""
    if not trigger:
        return True
    if "every" in trigger:
        return n % int(trigger["every"]) == 0
    if "next" in trigger:
        return n <= int(trigger["next"])
    return draw(int(trigger.get("seed", 0)), n) < float(trigger["probability"])


def matches(spec: Mapping[str, Any], api: str, operation_id: str, job_id: Any) -> bool:
    return (
        spec.get("api", api) == api
        and spec.get("operation", operation_id) == operation_id
        and ("job_id" not in spec or spec["job_id"] == job_id)
    )


class RateLimiter:
    """A token bucket per tenant, in this process: ``rate`` requests a second, up to
    ``burst`` at once. ``rate`` 0: no limit."""

    #: Buckets kept before the full ones (idle tenants) are dropped.
    MAX_BUCKETS = 10_000

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, max(1, burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, tenant_id: str) -> float:
        """Take a token: 0.0, or (taking none) the seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, then = self._buckets.get(tenant_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0 - 1e-9:  # a token refilled in float arithmetic may fall just short
            if len(self._buckets) >= self.MAX_BUCKETS and tenant_id not in self._buckets:
                self._prune(now)
            self._buckets[tenant_id] = (max(0.0, tokens - 1.0), now)
            return 0.0
        self._buckets[tenant_id] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        self._buckets = {
            tenant: (tokens, then)
            for tenant, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate < self.burst
        }


def status_reply(status: int, *, retry_after: float, limit: int, detail: str) -> Reply:
    """A 429/503/500 with the headers the SDKs read (FastAPI-shaped; ``in_shape`` later)."""
    headers: dict[str, str] = {}
    if status in (429, 503):
        headers["Retry-After"] = str(math.ceil(retry_after))
    if status == 429:
        headers["retry-after-ms"] = str(math.ceil(retry_after * 1000))
        headers["X-RateLimit-Limit"] = str(limit)
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + retry_after))
    return Reply(status, {"detail": detail}, headers)


@dataclass(frozen=True)
class Verdict:
    """What happens to a request: a reply instead of its handler's (``reply``), or its
    handler's after a wait, with ``applied`` added to ``Preference-Applied``."""

    reply: Reply | None = None
    applied: str | None = None


NO_FAULT = Verdict()


class FaultGate:
    """The rate limit, then the request's own fault preference, then its tenant's rules."""

    def __init__(self, *, rate_limit: float, rate_burst: int) -> None:
        self.limiter = RateLimiter(rate_limit, rate_burst)
        self.limit = rate_burst

    async def check(
        self,
        store: Store,
        tenant_id: str,
        api: str,
        operation_id: str,
        path_params: Mapping[str, Any],
        fields: Mapping[str, str],
        *,
        has_rules: bool | None = None,
    ) -> Verdict:
        """``fields``: the request's header fields (``headers.first_values``); ``has_rules``:
        whether the tenant has rules, if the caller knows (None: read them). Raises
        ``Close`` for a request whose connection is to close unanswered, and
        ``InvalidInput`` for a fault preference pollable does not know."""
        wait = self.limiter.take(tenant_id)
        if wait > 0:
            detail = f"Too Many Requests: at most {self.limiter.rate:g} a second"
            return Verdict(status_reply(429, retry_after=wait, limit=self.limit, detail=detail))
        preferred = preferred_fault(fields.get("prefer"))
        actions = [] if preferred is None else [preferred]
        # Known to have none when its key was looked up, in this request: nothing to read.
        rules = [] if has_rules is False else await store.list_faults(tenant_id)
        if rules:
            actions += await self._fired(store, rules, api, operation_id, path_params)
        if not actions:
            return NO_FAULT
        applied = None if preferred is None else f"fault={preferred.word}"
        latency = min(MAX_LATENCY_MS, sum(action.latency_ms for action in actions))
        if latency:
            await asyncio.sleep(latency / 1000)
        final = next((a for a in actions if a.close or a.status is not None), None)
        if final is None:
            return Verdict(None, applied)
        if final.close:
            raise Close()
        assert final.status is not None
        retry_after = 1 if final.retry_after is None else final.retry_after
        reply = status_reply(
            final.status, retry_after=retry_after, limit=self.limit, detail=_DETAILS[final.status]
        )
        if applied is not None:
            reply.headers["Preference-Applied"] = applied
        return Verdict(reply, applied)

    async def _fired(
        self,
        store: Store,
        rules: Sequence[FaultRule],
        api: str,
        operation_id: str,
        path_params: Mapping[str, Any],
    ) -> list[Action]:
        """The actions of the rules that fire on this request, oldest rule first. Every
        matching rule counts the request, whether or not an older one fired."""
        job_id = path_params.get("job_id")
        fired = []
        for rule in rules:
            if not matches(rule.spec, api, operation_id, job_id):
                continue
            try:
                n = await store.match_fault(rule.tenant_id, rule.id)
            except NotFound:
                continue  # deleted meanwhile
            if fires(rule.spec.get("trigger"), n):
                fired.append(Action.from_spec(rule.spec["action"]))
        return fired
