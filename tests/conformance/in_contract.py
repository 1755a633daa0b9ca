"""Whether an answer a live server gave is one its served contract allows.

The server checks its own replies before sending them; the proofs check again from the
outside, against the same served documents (``server.contract.load``), so a reply that
went around that check (an error raised before the dispatcher, a store failure, a
process dying mid-reply) is caught too: its status must be declared for its operation,
its body must match that status's schema, its declared headers theirs, and its media type
must be its API's error shape.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

from pollable.handlers.descriptor import ApiDescriptor
from pollable.handlers.registry import REGISTRY
from pollable.server import contract
from pollable.server.operation import Operation, ResponseInvalid, compile_operations


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    operation: Operation
    api: ApiDescriptor


@functools.cache
def _routes() -> tuple[_Route, ...]:
    routes = []
    for api in REGISTRY:
        for operation in compile_operations(contract.load(api).document):
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(operation.path))
            routes.append(_Route(operation.method, re.compile(regex + r"\Z"), operation, api))
    # Literal segments before parameters (``/v2/jobs`` is not ``/v2/jobs/{job_id}``).
    return tuple(sorted(routes, key=lambda route: route.operation.path.count("{")))


def problem(response: httpx.Response) -> str | None:
    """Why ``response`` is not an answer its operation's contract allows (None: it is)."""
    path = response.request.url.raw_path.decode("latin-1").split("?", 1)[0]
    method = response.request.method
    route = next(
        (r for r in _routes() if r.method == method and r.pattern.match(path)),
        None,
    )
    if route is None:
        return f"{method} {path} is no operation of any served contract"
    status = response.status_code
    media = response.headers.get("content-type", "").split(";")[0].strip()
    body = None
    if response.content:
        if not media.endswith("json"):
            return f"{route.operation.operation_id}: {status} is {media!r}, not JSON"
        try:
            body = response.json()
        except ValueError:
            return f"{route.operation.operation_id}: {status} body is not JSON: {response.text!r}"
    if status >= 400:
        expected = (
            "application/problem+json"
            if route.api.error_shape == "problem"
            else ("application/json")
        )
        if media != expected:
            return f"{route.operation.operation_id}: {status} is {media!r}, not {expected!r}"
    try:
        route.operation.check_response(status, body, dict(response.headers))
    except ResponseInvalid as exc:
        return str(exc)
    return None


@dataclass
class Tally:
    """Answers seen under load: how many of each status, and every one out of contract."""

    statuses: Counter[int] = field(default_factory=Counter)
    #: Requests that got no answer (refused, reset, timed out): what the transport said.
    unanswered: Counter[str] = field(default_factory=Counter)
    breaches: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, response: httpx.Response) -> httpx.Response:
        why = problem(response)
        with self._lock:
            self.statuses[response.status_code] += 1
            if why is not None:
                self.breaches.append(why)
        return response

    def lost(self, exc: httpx.TransportError) -> None:
        with self._lock:
            self.unanswered[type(exc).__name__] += 1
