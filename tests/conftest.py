"""Shared fixtures: a running app (in-process, lifespan started) on each backend, tenants
with keys, and a clock tests can move."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from starlette.testclient import TestClient

from pollable.handlers.registry import JOB_APIS
from pollable.server.app import create_app
from pollable.server.provision import TenantKeys as Tenant
from pollable.server.provision import provision_tenant
from pollable.server.settings import Settings
from pollable.store import open_store
from pollable.store.base import Store
from tests import postgres

BACKENDS = ("memory", "sqlite", "postgresql")
T = TypeVar("T")


def store_url(backend: str, tmp_path: Any) -> str:
    """A new store of ``backend`` for one test (PostgreSQL: a schema of its own, made now,
    dropped at the session's end; skipped, or failed in CI, without a server)."""
    if backend == "memory":
        return "memory://"
    if backend == "postgresql":
        return postgres.schema_url(str(tmp_path))
    return f"sqlite:///{tmp_path}/pollable.db"


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_schemas() -> Iterator[None]:
    yield
    postgres.drop_schemas()


def on_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store at ``url`` (outside any app), await ``work(store)``, close it."""

    async def run() -> T:
        store = open_store(url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


class Clock:
    """A clock tests move by hand; starts at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    client: TestClient
    clock: Clock
    settings: Settings

    @property
    def services(self) -> Any:
        return self.client.app_state["services"]

    def run(self, coroutine_function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a coroutine on the app's event loop (stores may be bound to it)."""
        return self.client.portal.call(lambda: coroutine_function(*args, **kwargs))

    def tenant(self, name: str) -> Tenant:
        return self.run(
            provision_tenant,
            self.services.store,
            name,
            JOB_APIS,
            credits=self.settings.tenant_credits,
        )


def start(settings: Settings) -> Iterator[Api]:
    clock = Clock()
    with TestClient(create_app(settings)) as client:
        services = client.app_state["services"]
        client.app_state["services"] = dataclasses.replace(services, now=clock)
        yield Api(client, clock, settings)


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.postgres] if name == "postgresql" else [])
        for name in BACKENDS
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Iterator[Api]:
    """The app on each backend, with a hand-moved clock and real time scale."""
    yield from start(Settings(store=store_url(backend, tmp_path)))


@pytest.fixture
def acme(api: Api) -> Tenant:
    return api.tenant("acme")


@pytest.fixture
def globex(api: Api) -> Tenant:
    return api.tenant("globex")
