"""The one request path: from a request, however it arrived, to the contract's reply.

``respond`` is the only function that turns a request into a reply: the HTTP dispatcher
(the innermost ASGI app, after Connexion has routed and authenticated) and fixtures
(``server.seed``) both call it, so every rule (organization check, request validation,
error shapes, response validation) exists once.
"""

from __future__ import annotations

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
    """Statuses the server can answer for this operation, which its contract must declare."""
    statuses = {500}
    if operation.secured:
        statuses.add(401)
    header = api.organization_header
    if header is not None and any(p.name.lower() == header.lower() for p in operation.params):
        statuses.add(403)
    if operation.params or operation.body is not None:
        statuses.add(422)
    if operation.body is not None:
        statuses.add(413)
    return statuses


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
) -> Reply:
    """The reply to ``request`` for ``target``'s operation, called by ``principal``, in
    the error shape of its API."""
    operation, shape = target.operation, target.api.error_shape
    try:
        call = await _read(target, principal, services, request)
        reply = await target.handler(call)
    except (PollableError, RequestInvalid, PayloadTooLarge, Unauthorized) as exc:
        reply = reply_for(exc)
    except ClientDisconnected:
        raise
    except Exception:
        log.exception("handler of %s failed", operation.operation_id)
        return in_shape(INTERNAL_ERROR, shape)
    reply = in_shape(reply, shape)
    if validate_responses:
        try:
            operation.check_response(reply.status, reply.body, reply.headers)
        except ResponseInvalid:
            log.exception("refusing to send a response that breaks the contract")
            return in_shape(INTERNAL_ERROR, shape)
    return reply


async def _read(
    target: Bound, principal: Principal | None, services: Services, request: Request
) -> Call:
    if principal is None:
        if target.operation.secured:
            # Reaching a secured operation unauthenticated is a routing fault upstream,
            # and must still be a 401, never a handler call.
            raise Unauthorized(NOT_AUTHENTICATED)
        principal = Principal("", "", "", target.api.name)
    operation, header = target.operation, target.api.organization_header
    headers = first_values(request.headers)
    if header is not None:
        check_organization(target.api, principal, headers.get(header.lower()))
    problems = []
    try:
        params = operation.read_params(request.path_params, request.query_string, request.headers)
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
    ) -> None:
        self.bound = bound
        self.fallback = fallback
        self.max_body_bytes = max_body_bytes
        self.validate_responses = validate_responses

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
            )
        except ClientDisconnected:
            return  # nobody to answer, and nothing was done
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
