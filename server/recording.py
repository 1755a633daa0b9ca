"""Every request in the request log: an ASGI middleware around the whole app.

It gives every response a ``Request-Id`` header, sees the raw request and response as they
pass (nothing is changed, buffered or delayed: messages go through as they come, and a
client that goes away is seen by the app as before), and once the response is sent, builds
the entry (credentials redacted, bodies bounded) and queues it for the journal's writer.

What only the dispatcher knows (the operation, the caller, the job touched, the job's
clock time) reaches the entry through the ``Trace`` this middleware puts in the scope.
Requests that get no response (the client left before its body was complete) are not
logged; neither are the operations a descriptor lists in ``unlogged_operations`` (reads of
the log itself), whose ``Request-Id`` therefore finds nothing.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pollable.handlers.api import Principal, Reply
from pollable.handlers.descriptor import ApiDescriptor, hash_key
from pollable.store.base import LoggedMessage, RequestEntry

from .contract import Contract
from .journal import Journal, Pending
from .redaction import Redactor, scrub

log = logging.getLogger("pollable.recording")

#: The scope key of the request's ``Trace``.
TRACE = "pollable.trace"
REQUEST_ID = b"request-id"


#: Seeded from the system's randomness, again in every forked process.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_request_id() -> str:
    """48 bits of milliseconds, then 48 random bits, as 24 hex digits (as UUIDv7 does):
    unique, and in time order, so the log's id index grows at its end instead of dirtying
    a random page per entry. Unique is all an id needs (a log is read by its owner only),
    so the random part comes from a seeded generator, not a system call per request."""
    return f"req_{time.time_ns() // 1_000_000 % (1 << 48):012x}{_ids.getrandbits(48):012x}"


@dataclass
class Trace:
    """What the dispatcher learns about a request, for its log entry."""

    api: str | None = None
    operation_id: str | None = None
    #: Whether a caller was authenticated (the admin too, whose requests have no tenant).
    identified: bool = False
    tenant_id: str | None = None
    key_id: str | None = None
    job_id: str | None = None
    clock_time: float | None = None

    def dispatched(
        self,
        api: ApiDescriptor,
        operation_id: str,
        principal: Principal | None,
        path_params: Mapping[str, Any],
        reply: Reply,
    ) -> None:
        self.api, self.operation_id = api.name, operation_id
        if principal is not None:
            self.identified = True
            if not principal.admin and principal.tenant_id:
                self.tenant_id, self.key_id = principal.tenant_id, principal.key_id
        job = path_params.get("job_id")
        if job is None and reply.status < 300 and isinstance(reply.body, dict):
            job = reply.body.get(api.job_id_field)
        self.job_id = job if isinstance(job, str) else None
        self.clock_time = reply.clock_time


class RecordingMiddleware:
    def __init__(
        self, app: ASGIApp, *, contracts: Sequence[Contract], unlogged_paths: Sequence[str] = ()
    ) -> None:
        self.app = app
        #: Paths of pages, not APIs (the dashboard): never logged, so a sign-in's form, which
        #: holds a credential, never reaches the log, and looking does not fill it.
        self.unlogged_paths = tuple(unlogged_paths)
        apis = [served.api for served in contracts]
        self.redactor = Redactor(
            fields=(name for api in apis for name in api.secret_fields),
            headers=(name for api in apis for name in api.secret_headers),
        )
        #: Operations whose replies can carry a credential field (new keys): their bodies
        #: are walked like requests'.
        self.secret_replies = frozenset(
            operation
            for served in contracts
            for operation in replies_naming(served.document, self.redactor.fields)
        )
        self.api_of = {operation: api.name for api in apis for operation in api.handlers}
        self.unlogged = frozenset(op for api in apis for op in api.unlogged_operations)
        self.by_prefix = sorted(apis, key=lambda api: len(api.path_prefix), reverse=True)
        self.key_rules = [(api.name, api.keys) for api in apis if api.keys is not None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        id_header = (REQUEST_ID, request_id.encode())
        services = (scope.get("state") or {}).get("services")
        journal: Journal | None = getattr(services, "request_log", None)
        unlogged = self.unlogged_paths and scope["path"].startswith(self.unlogged_paths)
        if services is None or journal is None or not journal.enabled or unlogged:

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), id_header]
                await send(message)

            await self.app(scope, receive, send_with_id)
            return

        trace = scope[TRACE] = Trace()
        # Connexion's routing works on a copy of the scope; sharing this dict lets the
        # operation it found be seen here, for requests refused before the dispatcher.
        extensions = scope.setdefault("extensions", {})
        # To the microsecond, as the log shows it (so ``since`` finds what it shows).
        at, started = round(services.now(), 6), time.perf_counter()
        received: list[bytes] = []
        sent: list[bytes] = []
        response: dict[str, Any] = {}

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                received.append(message["body"])
            return message

        async def send_and_keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = headers = [*message.get("headers", ()), id_header]
                response.update(status=message["status"], headers=headers)
            elif message["type"] == "http.response.body" and message.get("body"):
                sent.append(message["body"])
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_keep)
        finally:
            if response:
                duration_ms = (time.perf_counter() - started) * 1000
                routed = extensions.get("connexion_routing", {}).get("operation_id")
                operation = trace.operation_id or routed
                if operation not in self.unlogged:
                    try:
                        entry = self.entry(
                            request_id, scope, trace, operation, at, duration_ms,
                            received, response, sent, journal.body_bytes,
                        )  # fmt: skip
                        journal.record(entry)
                    except Exception:  # the log must never break a response
                        journal.dropped += 1
                        log.exception("could not log request %s", request_id)

    def entry(
        self,
        request_id: str,
        scope: Scope,
        trace: Trace,
        operation: str | None,
        at: float,
        duration_ms: float,
        received: list[bytes],
        response: Mapping[str, Any],
        sent: list[bytes],
        limit: int,
    ) -> Pending:
        redactor, sent_in_headers, found = self.redactor, list[str](), list[str]()
        raw_headers = scope["headers"]
        request_headers = redactor.headers(raw_headers, sent_in_headers)
        response_headers = redactor.headers(response["headers"], sent_in_headers)
        query = redactor.query(scope.get("query_string", b"").decode("latin-1"), found)
        request_raw, response_raw = b"".join(received), b"".join(sent)
        request_body = redactor.body(request_raw, found)
        response_body = response_raw
        if operation in self.secret_replies:
            response_body = redactor.body(response_raw, found)
        # What the request's body and query held is scrubbed from everything kept; what
        # its headers held, from its body and query.
        if found:
            found.sort(key=len, reverse=True)
            request_headers = {k: scrub(v, found) for k, v in request_headers.items()}
            response_headers = {k: scrub(v, found) for k, v in response_headers.items()}
        response_found = found
        if sent_in_headers:
            found = sorted(found + sent_in_headers, key=len, reverse=True)
        if found and query:
            query = scrub(query, found)
        path = scope["path"]
        sdk, retry = client_of(request_headers)
        entry = RequestEntry(
            id=request_id,
            tenant_id=trace.tenant_id,
            at=at,
            method=scope["method"],
            path=path,
            query=query,
            status=response["status"],
            duration_ms=round(duration_ms, 3),
            request=_message(request_headers, request_body, len(request_raw), limit, found),
            response=_message(
                response_headers, response_body, len(response_raw), limit, response_found
            ),
            api=trace.api or self.api_of.get(operation or "") or self._api_for(path),
            operation_id=operation,
            job_id=trace.job_id,
            clock_time=trace.clock_time,
            key_id=trace.key_id,
            sdk=sdk,
            retry_count=retry,
        )
        key = None if trace.identified else self._unauthenticated_key(raw_headers)
        return Pending(entry, key)

    def _api_for(self, path: str) -> str | None:
        """The API whose own path prefix holds ``path``; None where several share a path."""
        return next(
            (a.name for a in self.by_prefix if a.path_prefix and path.startswith(a.path_prefix)),
            None,
        )

    def _unauthenticated_key(
        self, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, str] | None:
        """``(api, key hash)`` of a bearer key the request carried but was not authenticated
        with, so the journal can find its tenant."""
        for name, value in headers:
            if name.lower() == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                token = token.strip()
                if scheme.lower() == "bearer":
                    for api, rule in self.key_rules:
                        if rule.issued(token):
                            return api, hash_key(token)
        return None


def _message(
    headers: dict[str, str], body: bytes, size: int, limit: int, found: Sequence[str]
) -> LoggedMessage:
    if not body:
        return LoggedMessage(headers, None, size, False)
    if found:
        for secret in found:
            encoded = secret.encode()
            if encoded in body:
                body = body.replace(encoded, b"[redacted]")
    truncated = len(body) > limit
    text = (body[:limit] if truncated else body).decode("utf-8", "replace")
    return LoggedMessage(headers, text, size, truncated)


def client_of(headers: Mapping[str, str]) -> tuple[dict[str, str | None] | None, int | None]:
    """The SDK a request says it comes from, and which retry it is, from the headers the
    official SDKs send: Stainless (``crosmos``: ``X-Stainless-Lang``, ``-Package-Version``,
    ``-Runtime``, ``-Retry-Count``; its name is the ``User-Agent`` product) and Fern
    (``captain-sdk``: ``X-Fern-SDK-Name``, ``-SDK-Version``, ``-Language``, ``-Runtime``;
    it sends no retry count)."""
    sdk: dict[str, str | None] | None = None
    if "x-stainless-lang" in headers or "x-stainless-package-version" in headers:
        runtime = " ".join(
            filter(
                None,
                (headers.get(h) for h in ("x-stainless-runtime", "x-stainless-runtime-version")),
            )
        )
        agent = headers.get("user-agent", "")
        sdk = {
            "generator": "stainless",
            "name": agent.split("/", 1)[0] or None,
            "version": headers.get("x-stainless-package-version"),
            "language": headers.get("x-stainless-lang"),
            "runtime": runtime or None,
        }
    elif "x-fern-sdk-name" in headers:
        sdk = {
            "generator": "fern",
            "name": headers.get("x-fern-sdk-name"),
            "version": headers.get("x-fern-sdk-version"),
            "language": headers.get("x-fern-language"),
            "runtime": headers.get("x-fern-runtime"),
        }
    retry = headers.get("x-stainless-retry-count", "")
    return sdk, int(retry) if retry.isdigit() and len(retry) < 6 else None


def replies_naming(document: Mapping[str, Any], fields: frozenset[str]) -> set[str]:
    """The operations of ``document`` whose replies' schemas have a property named in
    ``fields`` (at any depth)."""
    found = set()
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            names: set[str] = set()
            for response in operation["responses"].values():
                _property_names(document, response, names, set())
            if {name.lower() for name in names} & fields:
                found.add(operation["operationId"])
    return found


def _property_names(
    document: Mapping[str, Any], node: Any, names: set[str], seen: set[str]
) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref not in seen:
                seen.add(ref)
                _property_names(document, _target(document, ref), names, seen)
            return
        properties = node.get("properties")
        if isinstance(properties, dict):
            names.update(properties)
        for value in node.values():
            _property_names(document, value, names, seen)
    elif isinstance(node, list):
        for value in node:
            _property_names(document, value, names, seen)


def _target(document: Mapping[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node
