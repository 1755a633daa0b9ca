"""The one request path: from a request, however it arrived, to the contract's reply.

``respond`` is the only function that turns a request into a reply: the HTTP dispatcher
(the innermost ASGI app, after Connexion has routed and authenticated) and fixtures
(``server.seed``) both call it, so every rule (organization check, request validation,
error shapes, response validation) exists once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from pollable.handlers.api import Call, Handler, Principal, Reply, Services
from pollable.handlers.descriptor import ApiDescriptor
from pollable.lifecycle.errors import PollableError

from .auth import NOT_AUTHENTICATED, Unauthorized, check_organization
from .contract import Contract, ContractError
from .errors import INTERNAL_ERROR, PayloadTooLarge, encode, in_shape, reply_for
from .faults import CLOSE_EXTENSION, FAULT_STATUSES, NO_FAULT, Close, FaultGate
from .headers import field_value, first_values
from .operation import Operation, RequestInvalid, ResponseInvalid, compile_operations
from .recording import TRACE

log = logging.getLogger("pollable.dispatch")


@dataclass(frozen=True)
class Bound:
    """An operation of a served API, with its handler."""

    api: ApiDescriptor
    operation: Operation
    handler: Handler


@dataclass(frozen=True)
class Request:
    """A request as the transport delivered it, before anything was checked."""

    path_params: Mapping[str, Any]
    query_string: bytes
    headers: Sequence[tuple[bytes, bytes]]
    #: Reads the body; may raise ``PayloadTooLarge``.
    body: Callable[[], Awaitable[bytes]]


class ClientDisconnected(Exception):
    """The client went away before its request body was complete: nothing is done."""


def required_statuses(api: ApiDescriptor, operation: Operation) -> set[int]:
    """Statuses the server can answer for this operation, which its contract must declare:
    500, and 503 for a store that cannot be reached or written (every operation reads it,
    authentication included), besides what the operation itself calls for."""
    statuses = {500, 503}
    if operation.secured:
        statuses.add(401)
    header = api.organization_header
    if header is not None and any(p.name.lower() == header.lower() for p in operation.params):
        statuses.add(403)
    if operation.params or operation.body is not None:
        statuses.add(422)
    if operation.body is not None:
        statuses.add(413)
    if is_job_api(api):
        # Fault rules, a request's ``Prefer: fault=...`` and the rate limit (server.faults).
        statuses.update(FAULT_STATUSES)
    return statuses


def is_job_api(api: ApiDescriptor) -> bool:
    """An API whose requests fault rules and the rate limit apply to: one issuing keys."""
    return api.keys is not None


def bind(contracts: Sequence[Contract]) -> dict[str, Bound]:
    """Every operation of every contract, with its handler; any gap is a ``ContractError``."""
    bound: dict[str, Bound] = {}
    for served in contracts:
        handlers = served.api.handlers
        reached = set()
        for operation in compile_operations(served.document):
            if operation.operation_id in bound:
                raise ContractError(f"two operations are called {operation.operation_id}")
            if operation.operation_id not in handlers:
                raise ContractError(f"no handler for operation {operation.operation_id}")
            missing = required_statuses(served.api, operation) - set(operation.responses)
            if missing:
                raise ContractError(
                    f"{operation.operation_id} can answer {sorted(missing)} but does not declare it"
                )
            bound[operation.operation_id] = Bound(
                served.api, operation, handlers[operation.operation_id]
            )
            reached.add(operation.operation_id)
        unused = set(handlers) - reached
        if unused:
            raise ContractError(f"{served.name}: handlers no operation reaches: {sorted(unused)}")
    return bound


async def respond(
    target: Bound,
    principal: Principal | None,
    services: Services,
    request: Request,
    *,
    validate_responses: bool,
    faults: FaultGate | None = None,
) -> Reply:
    """The reply to ``request`` for ``target``'s operation, called by ``principal``, in
    the error shape of its API. With ``faults``, a job API's request that its contract
    accepts then meets its tenant's rate limit and faults (``server.faults``): a faulted
    request never reaches its handler; one to be closed unanswered raises ``Close``.

    A request the contract refuses is answered as refused (401, 403, 413, 422) whatever
    the rate or the rules: that answer is the same at any rate, costs no more than a 429,
    and is what a client must see to fix its request (Schemathesis' missing-header checks
    say so too). Its body has been read whole by then, so the request log keeps what a
    faulted create sent, and a retry that repeats it is recognised.
    """
    operation, shape = target.operation, target.api.error_shape
    fields = first_values(request.headers)
    try:
        call = await _read(target, principal, services, request, fields)
        verdict = NO_FAULT
        if faults is not None and principal is not None and is_job_api(target.api):
            verdict = await faults.check(
                services.store, principal.tenant_id, target.api.name,
                operation.operation_id, request.path_params, fields,
                has_rules=principal.has_fault_rules,
            )  # fmt: skip
        if verdict.reply is not None:
            reply = verdict.reply
        else:
            reply = await target.handler(call)
            if verdict.applied is not None:
                reply = _applied(reply, verdict.applied)
    except (PollableError, RequestInvalid, PayloadTooLarge, Unauthorized) as exc:
        reply = reply_for(exc)
    except (ClientDisconnected, Close):
        raise
    except Exception:
        log.exception("handler of %s failed", operation.operation_id)
        return in_shape(INTERNAL_ERROR, shape)
    reply = in_shape(reply, shape)
    if validate_responses and not reply.checked:
        try:
            operation.check_response(reply.status, reply.body, reply.headers)
        except ResponseInvalid:
            log.exception("refusing to send a response that breaks the contract")
            return in_shape(INTERNAL_ERROR, shape)
    if reply.final is not None:
        services.final_replies.keep(reply)
    return reply


def _applied(reply: Reply, preference: str) -> Reply:
    """``reply`` announcing one more applied preference (RFC 7240: a comma-separated list)."""
    earlier = reply.headers.get("Preference-Applied")
    applied = preference if earlier is None else f"{earlier}, {preference}"
    # Not the reply that can be kept (or was): it says what this request preferred.
    return dataclasses.replace(
        reply,
        headers={**reply.headers, "Preference-Applied": applied},
        final=None,
        checked=False,
    )


async def _read(
    target: Bound,
    principal: Principal | None,
    services: Services,
    request: Request,
    headers: Mapping[str, str],
) -> Call:
    if principal is None:
        if target.operation.secured:
            # Reaching a secured operation unauthenticated is a routing fault upstream,
            # and must still be a 401, never a handler call.
            raise Unauthorized(NOT_AUTHENTICATED)
        principal = Principal("", "", "", target.api.name)
    operation, header = target.operation, target.api.organization_header
    if header is not None:
        check_organization(target.api, principal, headers.get(header.lower()))
    problems = []
    try:
        params = operation.read_params(
            request.path_params, request.query_string, request.headers, headers
        )
    except RequestInvalid as exc:
        problems.extend(exc.items)
    body = None
    if operation.body is not None:
        raw = await request.body()
        try:
            body = operation.read_body(raw, headers.get("content-type"))
        except RequestInvalid as exc:
            problems.extend(exc.items)
    if problems:
        raise RequestInvalid(problems)
    return Call(params, body, principal, services)


class Dispatcher:
    """The innermost ASGI app: a routed, authenticated HTTP request through ``respond``."""

    def __init__(
        self,
        bound: Mapping[str, Bound],
        *,
        fallback: ASGIApp,
        max_body_bytes: int,
        validate_responses: bool,
        faults: FaultGate | None = None,
    ) -> None:
        self.bound = bound
        self.fallback = fallback
        self.max_body_bytes = max_body_bytes
        self.validate_responses = validate_responses
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        operation_id = extensions.get("connexion_routing", {}).get("operation_id")
        target = self.bound.get(operation_id) if operation_id else None
        if scope["type"] != "http" or target is None:
            await self.fallback(scope, receive, send)
            return
        token_info = extensions.get("connexion_context", {}).get("token_info")
        headers = scope["headers"]

        async def body() -> bytes:
            return await self._body(headers, receive)

        request = Request(scope.get("path_params", {}), scope["query_string"], headers, body)
        principal = token_info["principal"] if token_info else None
        try:
            reply = await respond(
                target,
                principal,
                scope["state"]["services"],
                request,
                validate_responses=self.validate_responses,
                faults=self.faults,
            )
        except ClientDisconnected:
            return  # nobody to answer, and nothing was done
        except Close:
            close = extensions.get(CLOSE_EXTENSION)
            if close is not None:
                close()  # nothing is answered, and nothing was done
                return
            # A server without pollable's protocol cannot close unanswered: a 503 that
            # closes the connection is the nearest thing in the contract.
            reply = in_shape(
                Reply(503, {"detail": "Service Unavailable (a sandbox fault: closing)"},
                      {"Retry-After": "1", "Connection": "close"}),
                target.api.error_shape,
            )  # fmt: skip
        trace = scope.get(TRACE)
        if trace is not None:
            trace.dispatched(target.api, operation_id, principal, request.path_params, reply)
        payload, reply_headers = encode(reply)
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply_headers}
        )
        await send({"type": "http.response.body", "body": payload})

    async def _body(self, headers: Sequence[tuple[bytes, bytes]], receive: Receive) -> bytes:
        declared = field_value(headers, "content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self.max_body_bytes
        ):
            raise PayloadTooLarge()
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # Before the last chunk arrived: the request never finished, so it must
                # change nothing (no job, no credits reserved).
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)
