"""Group commit: concurrent ``create_job`` calls are stored together in one transaction
(SQLite: on the writer thread, a savepoint each; PostgreSQL: one transaction locking each
tenant's row once). Each must get the answer it would get alone, a refused or failing
create must leave its neighbours stored, and none is answered before its commit."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from pollable.lifecycle.errors import Conflict, NotFound
from pollable.store import open_store
from pollable.store.base import InsufficientCredits, StorageFull, Store, job_size
from tests.store.conftest import BACKENDS, opened
from tests.store.test_store import make_tenant, unique
from tests.store.test_tenants import a_job

pytestmark = pytest.mark.anyio

#: The backends that commit creates together.
SQL_BACKENDS = [param for param in BACKENDS if param.id in ("sqlite", "postgresql")]


@pytest.fixture(params=SQL_BACKENDS)
async def sql_store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Store]:
    async for backend in opened(request.param, tmp_path):
        yield backend


async def _answer(store: Store, tenant_id: str, job: Any, cap: int | None = None) -> Any:
    try:
        return await store.create_job(tenant_id, job, cap=cap)
    except Exception as exc:  # the answer under test
        return exc


async def test_concurrent_creates_each_get_the_answer_they_would_get_alone(store) -> None:
    tenant = await make_tenant(store, credits=100.0)
    taken = a_job(unique("job"))
    await store.create_job(tenant.id, taken)
    jobs = [
        a_job(unique("job"), credits=30.0),
        a_job(unique("job"), credits=500.0),  # more than the balance
        a_job(unique("job"), credits=30.0),
        replace(taken, idempotency=None),  # its id is taken
        a_job(unique("job"), credits=30.0),
        a_job(unique("job"), credits=30.0),  # the balance is 10 by now
        a_job(unique("job")),
    ]
    answers = await asyncio.gather(
        *(_answer(store, tenant.id, job) for job in jobs),
        _answer(store, unique("nobody"), a_job(unique("job"))),
    )
    kinds = [type(a).__name__ if isinstance(a, Exception) else "created" for a in answers]
    assert kinds == [
        "created",
        "InsufficientCredits",
        "created",
        "Conflict",
        "created",
        "InsufficientCredits",
        "created",
        "NotFound",
    ]
    assert isinstance(answers[1], InsufficientCredits) and answers[1].needed == 500.0
    assert isinstance(answers[3], Conflict) and isinstance(answers[-1], NotFound)
    created = [a[0] for a in answers if not isinstance(a, Exception)]
    assert [r.credits_remaining for r in created] == [70.0, 40.0, 10.0, 10.0]
    # Item serial numbers: as one after the other, none shared.
    spans = sorted((r.serial_base, r.serial_base + r.plan.n_items) for r in created)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    after = await store.get_tenant(tenant.id)
    assert after.credits == 10.0
    assert after.stored == job_size(taken) * 5  # the first job and four created
    for record in created:
        assert (await store.get_job(tenant.id, record.job_id)).plan == record.plan
    for refused in (jobs[1], jobs[5]):
        with pytest.raises(NotFound):
            await store.get_job(tenant.id, refused.plan.job_id)


async def test_concurrent_creates_within_a_cap_fill_it_exactly(store) -> None:
    tenant = await make_tenant(store)
    size = job_size(a_job("x"))
    answers = await asyncio.gather(
        *(_answer(store, tenant.id, a_job(unique("job")), cap=5 * size) for _ in range(12))
    )
    assert sum(not isinstance(a, Exception) for a in answers) == 5
    assert all(isinstance(a, StorageFull) for a in answers if isinstance(a, Exception))
    assert (await store.get_tenant(tenant.id)).stored == 5 * size


async def test_a_create_failing_midway_leaves_its_neighbours_stored(sql_store) -> None:
    """Its job row and counters are written before its items fail (two items with one
    ordinal): only its own part of the shared transaction is undone."""
    store = sql_store
    tenant = await make_tenant(store)
    bad = a_job(unique("job"))
    bad = replace(bad, items=(bad.items[0], bad.items[0], *bad.items[2:]))
    good = [a_job(unique("job")) for _ in range(6)]
    with _one_batch(store) as sizes:
        answers = await asyncio.gather(
            *(_answer(store, tenant.id, job) for job in [*good[:3], bad, *good[3:]])
        )
    assert sizes == [7]
    assert isinstance(answers[3], Exception)
    assert all(not isinstance(a, Exception) for i, a in enumerate(answers) if i != 3)
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, bad.plan.job_id)
    for job in good:
        assert len(await store.items(tenant.id, job.plan.job_id, limit=10)) == 3
    assert (await store.get_tenant(tenant.id)).stored == sum(job_size(j) for j in good)


async def test_creates_waiting_together_are_stored_together(sql_store) -> None:
    store = sql_store
    tenant = await make_tenant(store)
    with _one_batch(store) as sizes:
        await asyncio.gather(
            *(store.create_job(tenant.id, a_job(unique("job"))) for _ in range(64))
        )
    assert sizes == [64]
    assert (await store.get_tenant(tenant.id)).stored == 64 * job_size(a_job("x"))


@contextlib.contextmanager
def _one_batch(store: Store) -> Any:
    """The sizes of the batches stored meanwhile; on SQLite the writer thread is held until
    the block has made its creates wait (an ``asyncio.gather`` of them, on PostgreSQL,
    makes them all wait before the task that stores them first runs)."""
    sizes: list[int] = []
    original = store._create_batch  # type: ignore[attr-defined]
    if store.__class__.__name__ == "SQLiteStore":
        go = threading.Event()
        store._executor.submit(go.wait, 10)  # type: ignore[attr-defined]

        def counted(batch: Any) -> Any:
            sizes.append(len(batch))
            return original(batch)

        store._create_batch = counted  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, go.set)
    else:

        async def counted_pg(batch: Any) -> Any:
            sizes.append(len(batch))
            return await original(batch)

        store._create_batch = counted_pg  # type: ignore[attr-defined]
    try:
        yield sizes
    finally:
        del store._create_batch  # type: ignore[attr-defined]


async def test_no_create_is_answered_before_its_commit(sql_store, tmp_path) -> None:
    """While another connection holds what the creates need (SQLite: the write lock;
    PostgreSQL: the tenant's row), none is answered; once it lets go, every one is, and
    each is then visible to a connection of its own."""
    store = sql_store
    tenant = await make_tenant(store)
    jobs = [a_job(unique("job")) for _ in range(8)]
    async with _holding(store, tenant.id) as check_visible:
        tasks = [asyncio.create_task(store.create_job(tenant.id, job)) for job in jobs]
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in tasks)
    answers = await asyncio.gather(*tasks)
    assert all(created for _, created in answers)
    for job in jobs:
        assert await check_visible(job.plan.job_id)


@contextlib.asynccontextmanager
async def _holding(store: Store, tenant_id: str) -> AsyncIterator[Any]:
    if store.__class__.__name__ == "SQLiteStore":
        path = store.path  # type: ignore[attr-defined]
        other = sqlite3.connect(path, isolation_level=None, timeout=10)
        other.execute("BEGIN IMMEDIATE")

        async def visible_sqlite(job_id: str) -> bool:
            fresh = sqlite3.connect(path)
            try:
                row = fresh.execute(
                    "SELECT 1 FROM jobs WHERE tenant_id = ? AND job_id = ?", (tenant_id, job_id)
                ).fetchone()
            finally:
                fresh.close()
            return row is not None

        try:
            yield visible_sqlite
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    import psycopg

    conninfo = store.conninfo  # type: ignore[attr-defined]
    holder = await psycopg.AsyncConnection.connect(conninfo)
    await holder.execute("SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))

    async def visible_pg(job_id: str) -> bool:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as fresh:
            cursor = await fresh.execute(
                "SELECT 1 FROM jobs WHERE tenant_id = %s AND job_id = %s", (tenant_id, job_id)
            )
            return await cursor.fetchone() is not None

    try:
        yield visible_pg
    finally:
        await holder.rollback()
        await holder.close()


async def test_a_create_cancelled_while_waiting_does_not_stop_the_others(sql_store) -> None:
    store = sql_store
    tenant = await make_tenant(store)
    jobs = [a_job(unique("job")) for _ in range(10)]
    tasks = [asyncio.create_task(store.create_job(tenant.id, job)) for job in jobs]
    tasks[4].cancel()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(answers[4], asyncio.CancelledError)
    assert all(not isinstance(a, BaseException) for i, a in enumerate(answers) if i != 4)


async def test_creates_waiting_when_the_store_closes_are_stored_first(sql_store) -> None:
    store = sql_store
    tenant = await make_tenant(store)
    jobs = [a_job(unique("job")) for _ in range(20)]
    tasks = [asyncio.create_task(store.create_job(tenant.id, job)) for job in jobs]
    await asyncio.sleep(0)  # every create is waiting
    await store.close()
    answers = await asyncio.gather(*tasks)
    assert all(created for _, created in answers)
    await store.open()
    for job in jobs:
        assert (await store.get_job(tenant.id, job.plan.job_id)).job_id == job.plan.job_id


async def test_an_error_that_ends_the_whole_transaction_fails_only_its_create(
    tmp_path, monkeypatch
) -> None:
    """SQLite rolls a whole transaction back on some errors (a full disk, an I/O error):
    that create gets its error, and the rest of its batch is stored again without it."""
    store = open_store(f"sqlite:///{tmp_path}/lost.db")
    await store.open()
    try:
        tenant = await make_tenant(store)
        jobs = [a_job(unique("job")) for _ in range(6)]
        doomed = jobs[2].plan.job_id
        original = store._create_job  # type: ignore[attr-defined]

        def create_job(db: sqlite3.Connection, tenant_id: str, job: Any, cap: Any) -> Any:
            if job.plan.job_id == doomed:
                original(db, tenant_id, job, cap)
                db.execute("ROLLBACK")  # as SQLite does after SQLITE_FULL
                raise sqlite3.OperationalError("database or disk is full")
            return original(db, tenant_id, job, cap)

        monkeypatch.setattr(store, "_create_job", create_job)
        with _one_batch(store) as sizes:
            answers = await asyncio.gather(*(_answer(store, tenant.id, job) for job in jobs))
        assert sizes == [6, 5]
        assert isinstance(answers[2], sqlite3.OperationalError)
        assert all(answers[i][1] for i in range(6) if i != 2)
        with pytest.raises(NotFound):
            await store.get_job(tenant.id, doomed)
        assert (await store.get_tenant(tenant.id)).stored == 5 * job_size(jobs[0])
    finally:
        await store.close()
