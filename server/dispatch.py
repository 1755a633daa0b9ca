"""The innermost ASGI app: after Connexion has routed and authenticated a request, read
and check it against its operation, call the handler, check the reply, send it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from pollable.handlers.api import Call, Handler, Reply
from pollable.lifecycle.errors import PollableError

from .auth import NOT_AUTHENTICATED, Unauthorized
from .errors import INTERNAL_ERROR, PayloadTooLarge, encode, reply_for
from .operation import Operation, RequestInvalid, ResponseInvalid

log = logging.getLogger("pollable.dispatch")


@dataclass(frozen=True)
class Bound:
    operation: Operation
    handler: Handler


class Dispatcher:
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
        reply = await self._answer(target, scope, receive, extensions)
        body, headers = encode(reply)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, target: Bound, scope: Scope, receive: Receive, extensions: Mapping[str, Any]
    ) -> Reply:
        operation = target.operation
        try:
            call = await self._read(operation, scope, receive, extensions)
            reply = await target.handler(call)
        except (PollableError, RequestInvalid, PayloadTooLarge, Unauthorized) as exc:
            reply = reply_for(exc)
        except Exception:
            log.exception("handler of %s failed", operation.operation_id)
            return INTERNAL_ERROR
        if self.validate_responses:
            try:
                operation.check_response(reply.status, reply.body)
            except ResponseInvalid:
                log.exception("refusing to send a response that breaks the contract")
                return INTERNAL_ERROR
        return reply

    async def _read(
        self, operation: Operation, scope: Scope, receive: Receive, extensions: Mapping[str, Any]
    ) -> Call:
        token_info = extensions.get("connexion_context", {}).get("token_info")
        if token_info is None:
            # Every operation is secured; reaching one unauthenticated is a routing fault
            # upstream, and must still be a 401, never a handler call.
            raise Unauthorized(NOT_AUTHENTICATED)
        headers = scope["headers"]
        problems = []
        try:
            params = operation.read_params(
                scope.get("path_params", {}), scope["query_string"], headers
            )
        except RequestInvalid as exc:
            problems.extend(exc.items)
        body = None
        if operation.body is not None:
            raw = await self._body(headers, receive)
            try:
                body = operation.read_body(raw, _header(headers, b"content-type"))
            except RequestInvalid as exc:
                problems.extend(exc.items)
        if problems:
            raise RequestInvalid(problems)
        return Call(params, body, token_info["principal"], scope["state"]["services"])

    async def _body(self, headers: list[tuple[bytes, bytes]], receive: Receive) -> bytes:
        declared = _header(headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge()
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
