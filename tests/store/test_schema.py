"""Schema versions: a store is created at the current version, a store written by an older
pollable is migrated on open, step by step, and a store from a newer pollable is refused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from pollable.lifecycle.errors import Unavailable
from pollable.lifecycle.model import EventKind, Status, Tally
from pollable.store import open_store, sqlite
from pollable.store.base import Idempotency, RequestFilter, SchemaTooNew, StoreNotFound
from pollable.store.sqlite import SQLiteStore
from tests import postgres

FIXTURES = Path(__file__).parent / "fixtures"
T0 = 1_700_000_000.0


def v1_store(path: Path) -> Path:
    """A file as pollable wrote it before schema versions (version 1), with its data."""
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURES / "sqlite_schema_v1.sql").read_text())
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    return path


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_sqlite_a_new_store_has_the_current_version(tmp_path):
    async def make() -> None:
        async with SQLiteStore(tmp_path / "new.db"):
            pass

    asyncio.run(make())
    assert user_version(tmp_path / "new.db") == sqlite.SCHEMA_VERSION >= 1


def test_sqlite_a_store_from_schema_v1_opens_with_its_data(tmp_path):
    path = v1_store(tmp_path / "v1.db")

    async def check() -> None:
        async with SQLiteStore(path) as store:
            tenant = await store.find_tenant("acme")
            assert tenant is not None
            assert (tenant.organization_id, tenant.initial_credits) == ("org_1", 100.0)
            assert tenant.credits == 100.0 - 4.0 + 1.0
            # Counted by the step to version 2: 2 jobs, their 7 items, a clock, 2 keys (one
            # revoked) and the counter ``seq:upload`` (the ``item`` counter is not stored).
            assert tenant.stored == 2 + 7 + 1 + 2 + 1
            found = await store.key_for("captain", "h" * 64)
            assert found is not None
            _, key = found
            assert (key.label, key.environment) == ("cap_test_abc", "test")
            assert await store.key_for("captain", "r" * 64) is None  # revoked stays revoked
            [clock] = await store.list_clocks(tenant.id, limit=5)
            assert (clock.id, clock.name, clock.now) == (key.clock_id, "ci", T0 + 5)
            job = await store.get_job(tenant.id, "job-1")
            assert (job.collection, job.credits_remaining) == ("docs", 96.0)
            assert [item.ordinal for item in await store.items(tenant.id, "job-1", limit=10)] == [
                0, 1, 2, 3,
            ]  # fmt: skip
            assert await store.tally(tenant.id, "job-1", 4) == Tally(0, 0, 10)
            replay = await store.idempotent_job(tenant.id, Idempotency("idem-1", "fp-1"))
            assert replay is not None and replay.job_id == "job-1"
            cancelled = await store.get_job(tenant.id, "job-2")
            assert [event.kind for event in cancelled.events] == [EventKind.CANCEL]
            assert cancelled.clock_id == clock.id
            page = await store.list_jobs(
                tenant.id, api="captain", now=T0, status=Status.CANCELLED, limit=5
            )
            assert [record.job_id for record in page.jobs] == ["job-2"]
            [entry] = await store.list_requests(tenant.id, RequestFilter(job_id="job-1"), limit=5)
            assert (entry.path, entry.response.body) == ("/v1/jobs/job-1", '{"ok":true}')
            assert await store.meta("jwt_secret", "new") == "s3cret"
            assert await store.next_sequence(tenant.id, "upload") == 2
            assert (await store.get_tenant(tenant.id)).stored == 13  # not a new counter
            # And it goes on working as a store of today.
            await store.advance_clock(tenant.id, clock.id, by=10)
            assert (await store.get_clock(tenant.id, clock.id)).now == T0 + 15
            await store.delete_clock(tenant.id, clock.id)  # with job-2 and its 3 items
            assert (await store.get_tenant(tenant.id)).stored == 13 - 1 - 4

    asyncio.run(check())
    assert user_version(path) == sqlite.SCHEMA_VERSION


def test_sqlite_the_stored_count_is_a_step_to_version_2(tmp_path, monkeypatch):
    """Only the step adds and counts ``tenants.stored``; without it a version 1 store
    opens without the column."""
    path = v1_store(tmp_path / "v1.db")
    monkeypatch.setattr(sqlite, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(sqlite, "MIGRATIONS", {1: lambda db: None})

    async def open_once() -> None:
        async with SQLiteStore(path):
            pass

    asyncio.run(open_once())
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tenants)")}
    assert "stored" not in columns and user_version(path) == 2


def test_sqlite_a_version_1_store_that_counts_already_keeps_its_count(tmp_path):
    """A store written at version 1 after the bounds came (it has ``stored``, kept since)
    is not counted again by the step."""
    path = v1_store(tmp_path / "v1.db")
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE tenants ADD COLUMN stored INTEGER")
        conn.execute("UPDATE tenants SET stored = 5")
        conn.execute("PRAGMA user_version = 1")

    async def check() -> None:
        async with SQLiteStore(path) as store:
            tenant = await store.find_tenant("acme")
            assert tenant is not None and tenant.stored == 5

    asyncio.run(check())
    assert user_version(path) == sqlite.SCHEMA_VERSION


def test_sqlite_migrations_run_once_step_by_step_and_never_on_a_new_store(tmp_path, monkeypatch):
    steps: list[tuple[int, str]] = []
    monkeypatch.setattr(sqlite, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(
        sqlite,
        "MIGRATIONS",
        {
            1: lambda db: steps.append((1, db.execute("PRAGMA user_version").fetchone()[0])),
            2: lambda db: steps.append((2, db.execute("PRAGMA user_version").fetchone()[0])),
        },
    )

    async def open_twice(path: Path) -> None:
        for _ in range(2):
            async with SQLiteStore(path):
                pass

    asyncio.run(open_twice(v1_store(tmp_path / "v1.db")))
    assert [step for step, _ in steps] == [1, 2]
    assert user_version(tmp_path / "v1.db") == 3
    steps.clear()
    asyncio.run(open_twice(tmp_path / "new.db"))
    assert steps == []
    assert user_version(tmp_path / "new.db") == 3


def test_sqlite_a_failed_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    def broken(db: object) -> None:
        raise RuntimeError("step 1 failed")

    monkeypatch.setattr(sqlite, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(sqlite, "MIGRATIONS", {1: broken})
    path = v1_store(tmp_path / "v1.db")
    with pytest.raises(RuntimeError, match="step 1 failed"):
        asyncio.run(SQLiteStore(path).open())
    assert user_version(path) == 0


def test_sqlite_a_store_from_a_newer_pollable_is_refused(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {sqlite.SCHEMA_VERSION + 1}")
    newer, ours = sqlite.SCHEMA_VERSION + 1, sqlite.SCHEMA_VERSION
    with pytest.raises(
        SchemaTooNew, match=rf"schema version {newer}, newer than this pollable's {ours}"
    ):
        asyncio.run(SQLiteStore(path).open())
    assert user_version(path) == sqlite.SCHEMA_VERSION + 1


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_url():
    with postgres.fresh_url() as url:
        yield url


async def create(url: str) -> None:
    async with open_store(url):
        pass


def pg_version(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.postgres
def test_postgresql_a_new_store_has_the_current_version_and_reopens(pg_url):
    from pollable.store import postgres as backend

    async def make() -> None:
        with pytest.raises(StoreNotFound):
            await open_store(pg_url, create=False).open()
        async with open_store(pg_url) as store:
            tenant = await store.create_tenant("acme", organization_id="o", credits=1.0)
        async with open_store(pg_url, create=False) as store:
            assert await store.get_tenant(tenant.id) == tenant

    asyncio.run(make())
    assert pg_version(pg_url) == backend.SCHEMA_VERSION


@pytest.mark.postgres
def test_postgresql_stores_opened_together_create_one_schema(pg_url):
    async def race() -> None:
        stores = [open_store(pg_url) for _ in range(4)]
        await asyncio.gather(*(store.open() for store in stores))
        for store in stores:
            assert await store.count_tenants() == 0
            await store.close()

    asyncio.run(race())


@pytest.mark.postgres
def test_postgresql_migrations_run_step_by_step(pg_url, monkeypatch):
    from pollable.store import postgres as backend

    asyncio.run(create(pg_url))  # the current version; then this code pretends to be newer
    monkeypatch.setattr(backend, "SCHEMA_VERSION", backend.SCHEMA_VERSION + 1)
    monkeypatch.setattr(
        backend,
        "MIGRATIONS",
        {backend.SCHEMA_VERSION - 1: ["ALTER TABLE tenants ADD COLUMN note text"]},
    )

    async def reopen() -> None:
        async with open_store(pg_url) as store:
            await store.create_tenant("acme", organization_id="o", credits=1.0)
        async with open_store(pg_url) as store:  # the step ran once: its column is there
            assert await store.find_tenant("acme") is not None

    asyncio.run(reopen())
    assert pg_version(pg_url) == backend.SCHEMA_VERSION


@pytest.mark.postgres
def test_postgresql_a_store_from_a_newer_pollable_is_refused(pg_url):
    import psycopg

    asyncio.run(create(pg_url))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaTooNew, match="newer than this pollable's"):
        asyncio.run(open_store(pg_url).open())


def test_postgresql_unreachable_is_unavailable():
    pytest.importorskip("psycopg")

    async def attempt() -> None:
        await open_store("postgresql://127.0.0.1:1/nothing?connect_timeout=1").open()

    with pytest.raises(Unavailable, match=r"cannot reach PostgreSQL at 127\.0\.0\.1:1/nothing"):
        asyncio.run(attempt())
