"""``ThreadedServer``: an ASGI app on a free loopback port, in a thread of this process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pollable.testing.server import ServerError, ThreadedServer


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def broken(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no store"})


def test_serves_until_stopped() -> None:
    with ThreadedServer(hello) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url).text == "hello"
        other = ThreadedServer(hello).start()
        assert other.url != server.url
        other.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url, timeout=1)


def test_a_failed_start_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ServerError, match="stopped while starting"):
        ThreadedServer(broken).start()


def test_stop_before_start_does_nothing() -> None:
    ThreadedServer(hello).stop()
