"""Every error, mapped in one place to the contract's own shape.

Both served APIs are FastAPI services upstream, so their errors are FastAPI's:
``{"detail": [{"loc", "msg", "type"}]}`` for 422 and ``{"detail": "..."}`` otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from connexion.exceptions import OAuthProblem, ProblemException
from connexion.lifecycle import ConnexionResponse
from starlette.exceptions import HTTPException

from pollable.handlers.api import Reply
from pollable.lifecycle.errors import Conflict, InvalidInput, NotFound

from .auth import NOT_AUTHENTICATED, Forbidden, Unauthorized
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


def encode(reply: Reply) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps(reply.body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in reply.headers.items()
        ),
    ]
    return body, headers


async def connexion_error_handler(_request: Any, exc: Exception) -> ConnexionResponse:
    """For Connexion's ExceptionMiddleware: errors raised before an operation's handler
    runs (authentication, unknown routes, wrong methods)."""
    reply = reply_for(exc)
    body, _ = encode(reply)
    return ConnexionResponse(
        status_code=reply.status, body=body, mimetype="application/json", headers=reply.headers
    )
