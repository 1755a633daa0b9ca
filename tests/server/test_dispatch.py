"""The dispatcher: body limits, and never a handler call without a principal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, start, store_url

SPACE = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Api]:
    yield from start(Settings(store=store_url("memory", tmp_path), max_body_bytes=1024))


def test_declared_oversized_bodies_are_413_unread(small: Api) -> None:
    tenant = small.tenant("acme")
    response = small.client.post(
        "/api/v1/sources",
        headers={**tenant.crosmos, "content-type": "application/json"},
        content=b"x" * 1025,
    )
    assert (response.status_code, response.json()) == (413, {"detail": "Request body too large"})


def test_streamed_oversized_bodies_are_413(small: Api) -> None:
    tenant = small.tenant("acme")

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"x" * 400

    response = small.client.post("/api/v1/sources", headers=tenant.crosmos, content=chunks())
    assert response.status_code == 413


def test_a_body_of_exactly_the_limit_is_read(small: Api) -> None:
    tenant = small.tenant("acme")
    frame = b'{"space_id": "%s", "sources": [{"content": "%%s"}]}' % SPACE.encode()
    body = frame % (b"x" * (1024 - len(frame) + 2))
    assert len(body) == 1024
    response = small.client.post(
        "/api/v1/sources",
        headers={**tenant.crosmos, "content-type": "application/json"},
        content=body,
    )
    assert response.status_code == 202


def test_parameter_and_body_errors_come_together(api: Api) -> None:
    tenant = api.tenant("acme")
    response = api.client.post(
        "/v2/collections/" + "c" * 1025 + "/index/url",
        headers={**tenant.captain, "Idempotency-Key": "k" * 256},
        json={"processing_type": "turbo", "url": "https://example.com/a.pdf"},
    )
    assert response.status_code == 422
    locs = {tuple(item["loc"]) for item in response.json()["detail"]}
    assert {
        ("path", "collection_name"),
        ("header", "idempotency-key"),
        ("body", "processing_type"),
    } <= locs
