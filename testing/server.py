"""An ASGI app served by uvicorn in a background thread of this process, on a free port of
the loopback interface: how the pytest plugin runs pollable once per session (once per
pytest-xdist worker), and how tests run a stand-in server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import uvicorn


class ServerError(RuntimeError):
    """The server did not start, or did not stop."""


class ThreadedServer:
    """``with ThreadedServer(app) as server: ... server.url ...``

    The socket is bound before uvicorn starts, on port 0, so two sessions never race for
    a port. uvicorn installs no signal handlers outside the main thread: Ctrl-C still
    reaches pytest.
    """

    def __init__(self, app: Any, *, log_level: str = "warning", **options: Any) -> None:
        """``options`` go to ``uvicorn.Config`` (the plugin passes pollable's protocol)."""
        self._config = uvicorn.Config(
            app, log_level=log_level, access_log=False, lifespan="on", loop="auto", **options
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    def start(self, *, timeout: float = 30.0) -> ThreadedServer:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted connections inherit it. Without it, asyncio's loop on a socket handed to
        # uvicorn answers each request about 40 ms late (Nagle against delayed ACKs).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        host, port = self._socket.getsockname()
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._run,
            name=f"pollable-server-{port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise ServerError("the server stopped while starting (its log says why)")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"the server did not start within {timeout:g}s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._socket is not None
        # uvicorn answers a failed start-up with SystemExit; start() reports it.
        with contextlib.suppress(SystemExit):
            self._server.run(sockets=[self._socket])

    def stop(self, *, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        if self._thread.is_alive():
            raise ServerError(f"the server did not stop within {timeout:g}s")
        self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
