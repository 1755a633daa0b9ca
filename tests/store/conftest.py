"""The ``store`` fixture: one opened store per backend, for the shared contract suite.

The Store API is async. Tests are ``async def`` and marked ``anyio`` (anyio's pytest
plugin ships with anyio); the fixture opens and closes the store in the test's own event
loop, which a pooled PostgreSQL backend needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pollable.store import open_store
from pollable.store.base import Store
from tests import postgres

#: Where the PostgreSQL backend's contract tests run (see ``tests/postgres.py``). The suite
#: must not rely on a clean database: every test makes its own tenants and names.
POSTGRES_URL = postgres.POSTGRES_URL

BACKENDS: list[Any] = [
    pytest.param("memory://", id="memory"),
    pytest.param("sqlite:///{tmp_path}/s.db", id="sqlite"),
    pytest.param(POSTGRES_URL, id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def opened(param: str, tmp_path: Any) -> AsyncIterator[Store]:
    """The store of one of ``BACKENDS``' URLs, open for one test (PostgreSQL: a fresh
    schema)."""
    with contextlib.ExitStack() as stack:
        url = param.format(tmp_path=tmp_path)
        if url == POSTGRES_URL:
            url = stack.enter_context(postgres.fresh_url())
        backend = open_store(url)
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Store]:
    async for backend in opened(request.param, tmp_path):
        yield backend
