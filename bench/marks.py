"""Marks in a server's run for callgrind: ``bench.cost`` starts a server under
``valgrind --tool=callgrind --dump-before=os_getppid`` and requests ``GET /__bench_mark``
before and after a measured run, so callgrind writes what the server executed between the
two marks to a file of its own.
"""

from __future__ import annotations

import os
from typing import Any

MARK_PATH = "/__bench_mark"


def marked(app: Any) -> Any:
    """``app``, where ``GET /__bench_mark`` calls ``os.getppid()`` and answers 204: the call
    callgrind is told to dump its counts before (``--dump-before=os_getppid``), so what the
    server did between two marks is counted apart (``bench.cost``)."""

    async def with_marks(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/__bench_mark":
            os.getppid()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return with_marks
