"""A request whose body never arrives whole changes nothing: the client that goes away
before ``Content-Length`` is reached, or before a chunked body's last chunk, gets no job
and has no credits reserved. Raw sockets, because an HTTP client would finish the body."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pollable.store.base import Store
from tests.conformance.live import LiveServer, Servers, Tenant, on_store, provision

pytestmark = pytest.mark.slow

BODY = json.dumps({"url": "https://example.com/report.pdf", "processing_type": "basic"}).encode()
PATH = "/v2/collections/unfinished/index/url"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, Tenant, str]]:
    url = f"sqlite:///{tmp_path / 'unfinished.db'}"
    acme = provision(url, "acme")["acme"]
    servers = Servers(tmp_path)
    try:
        yield servers.start(url), acme, url
    finally:
        servers.stop_all()


def head(server: LiveServer, who: Tenant, framing: str) -> bytes:
    lines = [
        f"POST {PATH} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Authorization: Bearer {who.captain_key}",
        f"X-Organization-ID: {who.organization_id}",
        "Content-Type: application/json",
        framing,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_and_hang_up(server: LiveServer, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(payload)
        time.sleep(0.3)  # the server has read the head and the part of the body sent


def jobs_and_credits(url: str, who: Tenant) -> tuple[int, float]:
    async def read(store: Store) -> tuple[int, float]:
        tenant = await store.find_tenant(who.name)
        assert tenant is not None
        page = await store.list_jobs(tenant.id, api="captain", now=0.0, limit=1)
        return page.total, tenant.credits

    result: tuple[int, float] = on_store(url, read)
    return result


def test_a_body_shorter_than_its_content_length_creates_nothing(
    served: tuple[LiveServer, Tenant, str],
) -> None:
    server, acme, url = served
    before = jobs_and_credits(url, acme)
    # What arrived is valid JSON on its own: only the missing bytes say it is unfinished.
    send_and_hang_up(server, head(server, acme, f"Content-Length: {len(BODY) + 16}") + BODY)
    time.sleep(0.3)
    assert jobs_and_credits(url, acme) == before
    # The same request, finished, is served: the test above is about the hang-up alone.
    finished = httpx.post(server.url + PATH, content=BODY, headers={
        **acme.captain, "Content-Type": "application/json"})  # fmt: skip
    assert finished.status_code == 202, finished.text
    assert jobs_and_credits(url, acme)[0] == before[0] + 1


def test_a_chunked_body_without_its_last_chunk_creates_nothing(
    served: tuple[LiveServer, Tenant, str],
) -> None:
    server, acme, url = served
    before = jobs_and_credits(url, acme)
    chunk = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n"  # no terminating 0-length chunk
    send_and_hang_up(server, head(server, acme, "Transfer-Encoding: chunked") + chunk)
    time.sleep(0.3)
    assert jobs_and_credits(url, acme) == before
    assert "Traceback" not in server.output()
