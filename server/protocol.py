"""The HTTP/1.1 protocol ``pollable serve`` runs: uvicorn's, bounded, refusing in JSON.

uvicorn's protocols leave a request's head (request line and header fields) unbounded in
time: the keep-alive timeout only runs between requests, and any byte stops it, so a
client that sends a head slowly, or connects and sends nothing, holds its connection for
ever. With httptools (uvicorn's choice when it is installed) the head is unbounded in size
too: the parser keeps whatever a header line grows to. And a request the parser refuses is
answered in text/plain. Here, over either parser:

- a head still incomplete after ``max_header_bytes`` is answered 431 (h11 enforces the
  same bound itself, as ``h11_max_incomplete_event_size``);
- a head not complete ``header_timeout`` seconds after its first byte (or after the
  connection opened) has its connection closed;
- every refusal is JSON ``{"detail": "..."}``, the contracts' (FastAPI's) error shape;
- each request's scope carries ``CLOSE_EXTENSION``, a callable that closes its connection
  with no answer (a sandbox fault, ``server/faults.py``): the app then returns without
  sending anything, and uvicorn, seeing the client gone, sends no 500 of its own.

The limits are Settings (``POLLABLE_MAX_HEADER_BYTES``, ``POLLABLE_HEADER_TIMEOUT``,
``POLLABLE_KEEP_ALIVE_TIMEOUT``); ``uvicorn_options`` turns them into uvicorn's options.
"""

from __future__ import annotations

import asyncio
import http
import sys
from functools import partial
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .faults import CLOSE_EXTENSION
from .settings import Settings

HEADERS_TOO_LARGE = http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class _Bounded(asyncio.Protocol):
    """What both protocols share, mixed in before a uvicorn protocol: ``_reading_head``
    says, after each chunk the parser was fed, whether a request's head is incomplete."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    server_state: ServerState
    #: uvicorn's request-response cycle (each parser has its own class of it).
    cycle: Any
    #: The ASGI app uvicorn runs for each request.
    app: Any

    def __init__(self, *args: Any, max_header_bytes: int, header_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        app = self.app

        async def app_that_can_close(scope: Any, receive: Any, send: Any) -> None:
            # ``send`` is the bound ``send`` of the request's own cycle (the cycle that runs
            # the app, which need not be ``self.cycle`` when requests are pipelined).
            cycle = getattr(send, "__self__", None)
            scope.setdefault("extensions", {})[CLOSE_EXTENSION] = partial(self._drop, cycle)
            await app(scope, receive, send)

        self.app = app_that_can_close

    def _reading_head(self) -> bool:
        raise NotImplementedError

    def _answering(self) -> bool:
        """Whether a request is still being answered (its response not sent in full)."""
        return self.cycle is not None and not self.cycle.response_complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if not self._reading_head():
            self._head_bytes = 0
            self._disarm()
            return
        # The whole chunk is counted, though it may end a body before the head began: the
        # bound is on memory, and this errs by at most one read.
        self._head_bytes += len(data)
        if self._head_bytes > self.max_header_bytes:
            self._refuse(HEADERS_TOO_LARGE, HEADERS_TOO_LARGE.phrase)
        elif self._head_deadline is None:
            self._arm()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser refuses: in JSON. uvicorn calls it while
        handling the parser's error, whose status hint (h11's 431 for a head over its
        bound) is kept."""
        hint = getattr(sys.exc_info()[1], "error_status_hint", 400)
        status = http.HTTPStatus(hint if 400 <= hint < 600 else 400)
        self._refuse(status, msg if status == http.HTTPStatus.BAD_REQUEST else status.phrase)

    def _refuse(self, status: http.HTTPStatus, detail: str) -> None:
        """Answer ``status`` and close; only close while another response is being sent
        (a pipelined request), whose bytes an answer would break into."""
        if not (self._answering() and self.cycle.response_started):
            body = orjson.dumps({"detail": detail})
            head = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
            head += [name + b": " + value for name, value in self.server_state.default_headers]
            head += [
                b"content-type: application/json",
                b"content-length: " + str(len(body)).encode(),
                b"connection: close",
            ]
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()
        self._disarm()

    def _drop(self, cycle: Any) -> None:
        """Close the connection without answering the request of ``cycle``."""
        if cycle is not None:
            cycle.disconnected = True  # uvicorn then sends nothing, and logs nothing
            cycle.keep_alive = False
        self.transport.close()
        self._disarm()

    def _arm(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class BoundedH11Protocol(_Bounded, H11Protocol):
    def _reading_head(self) -> bool:
        # h11 waits for a request's head in IDLE; data just fed and still IDLE is a partial
        # head. (After the head it is SEND_BODY, then DONE until the response is sent.)
        return self.conn.their_state is h11.IDLE


class BoundedHttpToolsProtocol(_Bounded, HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._in_message = False
        self._began = False

    def data_received(self, data: bytes) -> None:
        self._began = False
        super().data_received(data)

    def _reading_head(self) -> bool:
        if self._in_head or self._in_message:
            return self._in_head
        # No request under way. Bytes that began none are a head yet to begin (the parser
        # skips blank lines between requests): they are bounded like one, unless a response
        # is still being made, when a client may well send a stray line.
        return not self._began and not self._answering()

    def on_message_begin(self) -> None:
        self._in_head = self._in_message = self._began = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()


#: uvicorn's HTTP implementations, bounded. ``auto`` is uvicorn's own choice: httptools
#: (installed with uvicorn[standard], which Connexion's uvicorn extra requires).
PROTOCOLS: dict[str, type[_Bounded]] = {
    "auto": BoundedHttpToolsProtocol,
    "httptools": BoundedHttpToolsProtocol,
    "h11": BoundedH11Protocol,
}


def protocol(settings: Settings, implementation: str = "auto") -> Any:
    """uvicorn's ``http`` option: a factory of bounded protocols with these settings."""
    return partial(
        PROTOCOLS[implementation],
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
    )


def uvicorn_options(settings: Settings, implementation: str = "auto") -> dict[str, Any]:
    """The options of ``uvicorn.run`` that bound what a client can hold."""
    return {
        "http": protocol(settings, implementation),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout,
    }
