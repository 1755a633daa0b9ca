"""What only the SQLite backend promises: its schema, WAL, durability across reopen, and
several stores (threads, processes) sharing one file without losing or duplicating jobs."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pollable.lifecycle.model import Event, EventKind, Outcome, Stage, Tally
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import Idempotency, NewJob
from pollable.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
TABLES = {"tenants", "api_keys", "jobs", "items", "idempotency", "sequences", "meta", "requests"}


def new_job(job_id: str, n: int = 5, **options: Any) -> NewJob:
    work = [Work(f"{job_id}/file-{i}.pdf", i % 4 + 1) for i in range(n)]
    plan, items = plan_job(
        job_id=job_id, created_at=T0, scenario=CATALOGUE["happy"], work=work, seed=job_id
    )
    return NewJob(api="captain", kind="index", plan=plan, items=items, **options)


def schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()


async def opened(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store


def test_sqlite_open_creates_the_schema(tmp_path):
    path = tmp_path / "nested" / "dir" / "s.db"

    async def run() -> None:
        store = await opened(path)
        await store.close()

    asyncio.run(run())
    assert path.exists()
    assert {name for name, _ in schema(path)} >= TABLES


def test_sqlite_item_pages_and_counts_are_index_searches(tmp_path):
    path = tmp_path / "s.db"

    async def run() -> None:
        store = await opened(path)
        await store.close()

    asyncio.run(run())
    queries = [
        "SELECT * FROM items WHERE tenant_id = 't' AND job_id = 'j' AND ordinal > 5 "
        "ORDER BY ordinal LIMIT 50",
        "SELECT cum_failed FROM items WHERE tenant_id = 't' AND job_id = 'j' AND ordinal = 7",
        "SELECT * FROM jobs WHERE tenant_id = 't' AND job_id = 'j'",
    ]
    with sqlite3.connect(path) as conn:
        for query in queries:
            plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert plan.startswith("SEARCH"), (query, plan)
            assert "TEMP B-TREE" not in plan, (query, plan)


def test_sqlite_reopen_is_idempotent(tmp_path):
    path = tmp_path / "s.db"

    async def run() -> None:
        store = await opened(path)
        await store.open()  # already open: nothing happens
        await store.create_tenant("acme", organization_id="org", credits=1.0)
        await store.close()
        before = schema(path)
        for _ in range(2):
            store = await opened(path)
            assert (await store.find_tenant("acme")) is not None
            await store.close()
        assert schema(path) == before
        # The same instance opens again after a close.
        await store.open()
        assert await store.count_tenants() == 1
        await store.close()

    asyncio.run(run())


def test_sqlite_uses_wal(tmp_path):
    path = tmp_path / "s.db"

    async def run() -> None:
        store = await opened(path)
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        await store.close()

    asyncio.run(run())


def test_sqlite_data_survives_close_and_reopen(tmp_path):
    path = tmp_path / "s.db"
    work = [
        Work("a.pdf", 3, extra={"pages": 3}),
        Work("b.pdf", 2, Outcome.FAILED, Stage.EMBEDDING, "embedding_failed", "rejected"),
        Work("c.zip", 0, Outcome.SKIPPED, None, "unsupported_file_type", "no zips"),
    ]
    plan, items = plan_job(
        job_id="job-1", created_at=T0, scenario=CATALOGUE["partial"], work=work, seed="s"
    )
    event = Event(EventKind.CANCEL, T0 + 1.5, "user-ada")

    async def write() -> tuple[Any, ...]:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=10.0)
        await store.add_key(tenant.id, api="captain", key_hash="hash-1", label="cap_1")
        job = NewJob("captain", "index", plan, items, "docs", {"x": [1, 2]}, 4.0,
                     Idempotency("idem-1", "fp"))  # fmt: skip
        await store.create_job(tenant.id, job)
        record = await store.append_event(tenant.id, "job-1", event, refund=1.0)
        assert await store.next_sequence(tenant.id, "upload") == 1
        assert await store.meta("instance", "first") == "first"
        await store.close()
        return tenant.id, record

    async def read(tenant_id: str, record: Any) -> None:
        store = await opened(path)
        tenant = await store.get_tenant(tenant_id)
        assert (tenant.name, tenant.credits) == ("acme", 7.0)
        assert await store.tenant_for_key("captain", "hash-1") == tenant
        assert await store.get_job(tenant_id, "job-1") == record
        assert record.events == (event,)
        assert await store.items(tenant_id, "job-1", limit=10) == list(items)
        assert await store.tally(tenant_id, "job-1", 2) == Tally.of(items[:2])
        replay = NewJob("captain", "index", plan, items, idempotency=Idempotency("idem-1", "fp"))
        assert (await store.create_job(tenant_id, replay))[1] is False
        assert await store.next_sequence(tenant_id, "upload") == 2
        assert await store.meta("instance", "second") == "first"
        await store.close()

    tenant_id, record = asyncio.run(write())
    asyncio.run(read(tenant_id, record))


def test_sqlite_two_stores_in_two_threads_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "shared.db"
    jobs_each, items_each, shared_keys = 30, 7, 10

    async def setup() -> str:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=1000.0)
        await store.close()
        return tenant.id

    tenant_id = asyncio.run(setup())
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        async def run() -> tuple[list[Any], list[int], list[tuple[str, bool]]]:
            store = await opened(path)
            try:
                barrier.wait()
                records, sequences, replays = [], [], []
                for i in range(jobs_each):
                    job = new_job(f"{name}-{i}", items_each, credits=1.0)
                    records.append((await store.create_job(tenant_id, job))[0])
                    sequences.append(await store.next_sequence(tenant_id, "upload"))
                    if i < shared_keys:  # both threads race for the same idempotency key
                        key = Idempotency(f"shared-{i}", "same-body")
                        shared = new_job(f"{name}-shared-{i}", 2, idempotency=key)
                        record, created = await store.create_job(tenant_id, shared)
                        replays.append((record.job_id, created))
                return records, sequences, replays
            finally:
                await store.close()

        try:
            results[name] = asyncio.run(run())
        except BaseException as error:  # surfaced below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert set(results) == {"a", "b"}

    records = results["a"][0] + results["b"][0]
    sequences = results["a"][1] + results["b"][1]
    assert sorted(sequences) == list(range(1, 2 * jobs_each + 1))
    for i in range(shared_keys):
        (job_a, created_a), (job_b, created_b) = results["a"][2][i], results["b"][2][i]
        assert job_a == job_b, "one idempotency key made two jobs"
        assert created_a != created_b

    async def check() -> None:
        store = await opened(path)
        try:
            page = await store.list_jobs(tenant_id, api="captain", now=T0, limit=1000)
            assert page.total == 2 * jobs_each + shared_keys
            stored = {job.job_id for job in page.jobs}
            assert {r.job_id for r in records} <= stored
            serials = []
            for record in records:
                assert len(await store.items(tenant_id, record.job_id, limit=100)) == items_each
                serials.extend(record.serial(i) for i in range(items_each))
            assert len(set(serials)) == len(serials), "two jobs share item serials"
            credits = (await store.get_tenant(tenant_id)).credits
            assert credits == 1000.0 - 2 * jobs_each
            assert sorted(r.credits_remaining for r in records) == [
                float(c) for c in range(1000 - 2 * jobs_each, 1000)
            ]
        finally:
            await store.close()

    asyncio.run(check())


def test_sqlite_opens_a_new_file_while_another_connection_writes(tmp_path):
    # Two processes starting on a new file: one is already writing (creating the schema)
    # when the other opens. The busy timeout promises the second one waits its turn.
    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE other_process (x)")
    errors: list[BaseException] = []

    def open_and_use() -> None:
        async def run() -> None:
            store = await opened(path)
            await store.create_tenant("acme", organization_id="org", credits=1.0)
            await store.close()

        try:
            asyncio.run(run())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=open_and_use)
    thread.start()
    thread.join(timeout=0.3)  # let it run into the lock (it should wait, not fail)
    holder.execute("COMMIT")
    holder.close()
    thread.join(timeout=60)
    assert not errors, errors
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 1


_PROCESS_WORKER = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import NewJob
from pollable.store.sqlite import SQLiteStore

async def main(path, tenant_id, name, count):
    store = SQLiteStore(path)
    await store.open()
    made = []
    for i in range(count):
        job_id = f"{name}-{i}"
        plan, items = plan_job(job_id=job_id, created_at=1.0, scenario=CATALOGUE["happy"],
                               work=[Work(f"{job_id}/{k}") for k in range(4)], seed=job_id)
        record, _ = await store.create_job(tenant_id, NewJob("captain", "index", plan, items))
        made.append([record.job_id, record.serial_base])
    await store.close()
    print(json.dumps(made))

asyncio.run(main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
"""


def test_sqlite_two_processes_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "shared.db"
    count = 25

    async def setup() -> str:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=0.0)
        await store.close()
        return tenant.id

    tenant_id = asyncio.run(setup())
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS_WORKER, str(ROOT), path, tenant_id, name, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for name in ("p", "q")
    ]
    made = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        made.extend(json.loads(out))
    assert len(made) == 2 * count

    async def check() -> None:
        store = await opened(path)
        page = await store.list_jobs(tenant_id, api="captain", now=1.0, limit=1000)
        assert sorted(job.job_id for job in page.jobs) == sorted(job_id for job_id, _ in made)
        assert page.total == 2 * count
        bases = sorted(base for _, base in made)
        assert all(b - a >= 4 for a, b in itertools.pairwise(bases))
        await store.close()

    asyncio.run(check())


def test_sqlite_a_job_with_100000_items(tmp_path):
    n = 100_000
    work = [
        Work(f"s3://bucket/doc-{i:06d}.pdf", i % 5 + 1,
             Outcome.FAILED if i % 11 == 0 else Outcome.SKIPPED if i % 13 == 0 else None)
        for i in range(n)
    ]  # fmt: skip
    plan, items = plan_job(
        job_id="big", created_at=T0, scenario=CATALOGUE["happy"], work=work, seed="big"
    )

    async def run() -> None:
        store = await opened(tmp_path / "big.db")
        try:
            tenant = await store.create_tenant("acme", organization_id="org", credits=0.0)
            await store.create_job(tenant.id, NewJob("captain", "index", plan, items))
            page = await store.items(tenant.id, "big", after=99_990, limit=50)
            assert page == list(items[99_991:])
            assert [item.ordinal for item in page] == list(range(99_991, n))
            assert await store.items(tenant.id, "big", after=49_999, limit=3) == list(
                items[50_000:50_003]
            )
            assert await store.tally(tenant.id, "big", 50_000) == Tally.of(items[:50_000])
            assert await store.tally(tenant.id, "big", n) == plan.totals
            assert await store.tally(tenant.id, "big", 1) == Tally.of(items[:1])
        finally:
            await store.close()

    asyncio.run(run())
