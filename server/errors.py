"""Every error, mapped in one place to the contract's own shape.

Errors are first made in FastAPI's shape (both job APIs are FastAPI services upstream):
``{"detail": [{"loc", "msg", "type"}]}`` for 422 and ``{"detail": "..."}`` otherwise.
``in_shape`` turns them into RFC 9457 problem details for an API whose descriptor says
``error_shape="problem"`` (the control plane).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from connexion.exceptions import OAuthProblem, ProblemException
from connexion.lifecycle import ConnexionResponse
from starlette.exceptions import HTTPException

from pollable.handlers.api import Reply
from pollable.lifecycle.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable

from .auth import NOT_AUTHENTICATED, Unauthorized
from .operation import RequestInvalid

log = logging.getLogger("pollable.errors")

_REASONS = {404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class PayloadTooLarge(Exception):
    pass


INTERNAL_ERROR = Reply(500, {"detail": "Internal Server Error"})


def reply_for(exc: BaseException) -> Reply:
    """The contract-shaped reply for an exception."""
    match exc:
        case RequestInvalid():
            return Reply(422, {"detail": exc.items})
        case InvalidInput():
            return Reply(
                422, {"detail": [{"loc": list(exc.loc), "msg": exc.message, "type": exc.kind}]}
            )
        case NotFound():
            return Reply(404, {"detail": str(exc) or "Not Found"})
        case Conflict():
            return Reply(409, {"detail": str(exc) or "Conflict"})
        case Unavailable():
            return Reply(503, {"detail": str(exc) or "Service Unavailable"}, {"Retry-After": "1"})
        case Unauthorized():
            return Reply(401, {"detail": exc.detail}, {"WWW-Authenticate": "Bearer"})
        case OAuthProblem():
            return Reply(401, {"detail": NOT_AUTHENTICATED}, {"WWW-Authenticate": "Bearer"})
        case Forbidden():
            return Reply(403, {"detail": exc.detail})
        case PayloadTooLarge():
            return Reply(413, {"detail": "Request body too large"})
        case HTTPException():
            detail = _REASONS.get(exc.status_code, exc.detail)
            return Reply(exc.status_code, {"detail": detail}, dict(exc.headers or {}))
        case ProblemException():
            return Reply(exc.status, {"detail": exc.detail or exc.title or "Error"})
    log.error("unhandled error", exc_info=exc)
    return INTERNAL_ERROR


PROBLEM_JSON = "application/problem+json"


def in_shape(reply: Reply, shape: str) -> Reply:
    """An error reply (FastAPI-shaped) in the error shape ``shape`` of an API."""
    if shape != "problem" or reply.status < 400 or not isinstance(reply.body, dict):
        return reply
    title = HTTPStatus(reply.status).phrase
    problem: dict[str, Any] = {"type": "about:blank", "title": title, "status": reply.status}
    detail = reply.body.get("detail")
    if isinstance(detail, list):
        problem["detail"] = "The request does not satisfy the contract"
        problem["errors"] = detail
    elif detail is not None:
        problem["detail"] = str(detail)
    return Reply(reply.status, problem, reply.headers, PROBLEM_JSON)


def encode(reply: Reply) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    if reply.body is None:
        body = b""
    else:
        body = reply.payload if reply.payload is not None else orjson.dumps(reply.body)
    headers = [
        *([] if reply.body is None else [(b"content-type", reply.media_type.encode())]),
        # A 304 has no content, and its length would be that of the 200 it stands for.
        *([] if reply.status == 304 else [(b"content-length", str(len(body)).encode())]),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in reply.headers.items()
        ),
    ]
    return body, headers


ErrorHandler = Callable[[Any, Exception], Awaitable[ConnexionResponse]]


def _routed_path(scope: Any) -> str:
    """The path as it was routed: ``%2F`` still encoded, so it stays inside its segment."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if raw else str(scope.get("path", ""))


def error_handler(
    shape_for: Callable[[Any], str], allowed: Callable[[str], str | None]
) -> ErrorHandler:
    """For Connexion's ExceptionMiddleware: errors raised before an operation's handler
    runs (authentication, unknown routes, wrong methods), in the shape ``shape_for(scope)``
    names. A 405's ``Allow`` lists every method the path's operations take
    (``allowed(path)``): the router knows only the first operation it tried."""

    async def handle(request: Any, exc: Exception) -> ConnexionResponse:
        reply = in_shape(reply_for(exc), shape_for(request.scope))
        methods = allowed(_routed_path(request.scope)) if reply.status == 405 else None
        if methods is not None:
            headers = {k: v for k, v in reply.headers.items() if k.lower() != "allow"}
            reply = Reply(reply.status, reply.body, {**headers, "Allow": methods}, reply.media_type)
        body, _ = encode(reply)
        return ConnexionResponse(
            status_code=reply.status, body=body, mimetype=reply.media_type, headers=reply.headers
        )

    return handle
