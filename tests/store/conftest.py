"""The ``store`` fixture: one opened store per backend, for the shared contract suite.

The Store API is async. Tests are ``async def`` and marked ``anyio`` (anyio's pytest
plugin ships with anyio); the fixture opens and closes the store in the test's own event
loop, which a pooled PostgreSQL backend needs.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pollable.store import open_store
from pollable.store.base import Store

#: Where the PostgreSQL backend's contract tests run. The suite must not rely on a clean
#: database: every test makes its own tenants and names.
POSTGRES_URL = os.environ.get("POLLABLE_TEST_POSTGRES_URL", "postgresql://localhost/pollable_test")


def _postgres_available() -> bool:
    try:
        return importlib.util.find_spec("pollable.store.postgres") is not None
    except ImportError:
        return False


BACKENDS: list[Any] = [
    pytest.param("memory://", id="memory"),
    pytest.param("sqlite:///{tmp_path}/s.db", id="sqlite"),
]
if _postgres_available():  # the backend does not exist yet; its tests join when it does
    BACKENDS.append(pytest.param(POSTGRES_URL, id="postgresql", marks=pytest.mark.postgres))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Store]:
    backend = open_store(request.param.format(tmp_path=tmp_path))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
