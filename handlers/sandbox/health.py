"""``GET /health``: the process is up and reaches its store."""

from __future__ import annotations

import pollable
from pollable.lifecycle.errors import Unavailable

from ..api import Call, Reply


async def health(call: Call) -> Reply:
    try:
        await call.services.store.ping()
    except Exception as exc:  # every driver fails in its own way; all mean the same here
        raise Unavailable("the store cannot be reached") from exc
    log = call.services.request_log
    request_log = {"enabled": log.enabled, "queued": log.queued, "dropped": log.dropped}
    return Reply(
        200,
        {
            "status": "ok",
            "version": pollable.__version__,
            "store": "reachable",
            "request_log": request_log,
        },
    )
