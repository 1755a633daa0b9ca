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
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pollable.lifecycle.errors import NotFound, Unavailable
from pollable.lifecycle.model import Event, EventKind, Outcome, Stage, Status, Tally
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import Idempotency, NewJob, StoreNotFound
from pollable.store.sqlite import SQLiteStore
from tests import postgres

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
TABLES = {
    "tenants", "api_keys", "jobs", "items", "idempotency", "sequences", "meta", "clocks",
    "requests",
}  # fmt: skip


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


def test_sqlite_that_may_not_create_opens_only_an_existing_file(tmp_path):
    path = tmp_path / "nested" / "s.db"

    async def run() -> None:
        with pytest.raises(StoreNotFound, match=f"^no store at {path}$"):
            await SQLiteStore(path, create=False).open()
        assert not path.parent.exists()
        await (await opened(path)).close()
        existing = SQLiteStore(path, create=False)
        await existing.open()
        assert await existing.count_tenants() == 0
        await existing.close()

    asyncio.run(run())


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
        record, applied = await store.append_event(tenant.id, "job-1", event, refund=1.0)
        assert applied
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


_CLOCK_WORKER = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from pollable.store.base import ClockWouldGoBack
from pollable.store.sqlite import SQLiteStore

async def main(path, tenant_id, clock_id, targets):
    store = SQLiteStore(path)
    await store.open()
    moved, seen = [], []
    for to in targets:
        try:
            moved.append((await store.advance_clock(tenant_id, clock_id, to=to)).now)
        except ClockWouldGoBack as refused:
            assert refused.clock.now > to, (refused.clock.now, to)
        seen.append((await store.get_clock(tenant_id, clock_id)).now)
    await store.close()
    print(json.dumps({"moved": moved, "seen": seen}))

asyncio.run(main(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])))
"""


def test_sqlite_two_processes_advance_one_clock_and_time_never_goes_back(tmp_path):
    path = tmp_path / "shared.db"

    async def setup() -> tuple[str, str]:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=0.0)
        clock = await store.create_clock(tenant.id, now=T0)
        await store.close()
        return tenant.id, clock.id

    tenant_id, clock_id = asyncio.run(setup())
    # Each process walks forward on its own; between them, the clock is pulled both ways.
    targets = {
        "p": [T0 + 2 * i for i in range(60)],
        "q": [T0 + 3 * i + 1 for i in range(40)],
    }
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CLOCK_WORKER,
                str(ROOT),
                path,
                tenant_id,
                clock_id,
                json.dumps(values),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for values in targets.values()
    ]
    moved = []
    for proc, values in zip(procs, targets.values(), strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        result = json.loads(out)
        # Every advance that went through set the clock exactly where it was asked to.
        assert set(result["moved"]) <= set(values)
        moved.extend(result["moved"])
        # What each process read never went back.
        assert result["seen"] == sorted(result["seen"])
    # The latest instant asked for wins, whoever asked last.
    assert max(moved) == max(max(values) for values in targets.values())

    async def check() -> None:
        store = await opened(path)
        assert (await store.get_clock(tenant_id, clock_id)).now == T0 + 118
        await store.close()

    asyncio.run(check())


def test_sqlite_a_store_from_before_clocks_gets_them_on_open(tmp_path):
    path = tmp_path / "old.db"

    async def write() -> str:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=0.0)
        await store.create_job(tenant.id, new_job("job-old"))
        await store.close()
        return tenant.id

    tenant_id = asyncio.run(write())
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX idx_jobs_tenant_id_clock_id")
        conn.execute("ALTER TABLE jobs DROP COLUMN clock_id")
        conn.execute("DROP TABLE clocks")

    async def read() -> None:
        store = await opened(path)
        assert (await store.get_job(tenant_id, "job-old")).clock_id is None
        clock = await store.create_clock(tenant_id, now=T0)
        await store.create_job(tenant_id, new_job("job-new", clock_id=clock.id))
        assert (await store.get_job(tenant_id, "job-new")).clock_id == clock.id
        await store.close()

    asyncio.run(read())


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


def test_sqlite_full_is_unavailable_with_the_real_error_and_the_store_recovers(tmp_path):
    # SQLITE_FULL makes SQLite roll the transaction back by itself, so the store's own
    # ROLLBACK then fails ("no transaction is active"); that must not replace the real error.
    work = [Work(f"s3://bucket/{'x' * 200}-{i:05d}.pdf", 1) for i in range(2_000)]
    plan, items = plan_job(
        job_id="big", created_at=T0, scenario=CATALOGUE["happy"], work=work, seed="big"
    )

    async def run() -> None:
        store = await opened(tmp_path / "full.db")
        try:
            tenant = await store.create_tenant("acme", organization_id="org", credits=5.0)
            writer = store._writer
            assert writer is not None
            pages = writer.execute("PRAGMA page_count").fetchone()[0]
            writer.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is "full"
            job = NewJob("captain", "index", plan, items, credits=1.0)
            # A full disk is the store being unavailable (503), its cause kept for the log.
            with pytest.raises(Unavailable) as failed:
                await store.create_job(tenant.id, job)
            assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
            assert "database or disk is full" in str(failed.value.__cause__)
            # Nothing of the failed write is kept, and reads go on.
            assert (await store.get_tenant(tenant.id)).credits == 5.0
            with pytest.raises(NotFound):
                await store.get_job(tenant.id, "big")
            # Once there is room again, writes go on as well.
            writer.execute("PRAGMA max_page_count = 1073741823")
            record, created = await store.create_job(tenant.id, job)
            assert created and record.credits_remaining == 4.0
            assert await store.items(tenant.id, "big", after=1_990, limit=20) == list(items[1_991:])
        finally:
            await store.close()

    asyncio.run(run())


class _RollbackFails:
    """The writer connection, except that ROLLBACK fails (as after an I/O error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "ROLLBACK":
            self.conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, *args)


def test_sqlite_a_failing_rollback_is_logged_and_the_real_error_raised(
    tmp_path, caplog, monkeypatch
):
    class Boom(Exception):
        pass

    def work(db: Any) -> None:
        db.execute("UPDATE tenants SET credits = 0")
        raise Boom("the real error")

    async def run() -> None:
        store = await opened(tmp_path / "s.db")
        try:
            tenant = await store.create_tenant("acme", organization_id="org", credits=5.0)
            with monkeypatch.context() as patch:
                patch.setattr(store, "_writer", _RollbackFails(store._writer))
                with pytest.raises(Boom, match="the real error"):
                    await store._write(work)
            assert (await store.get_tenant(tenant.id)).credits == 5.0
            await store.set_default_scenario(tenant.id, "slow")
        finally:
            await store.close()

    with caplog.at_level("WARNING", logger="pollable.store"):
        asyncio.run(run())
    [record] = [r for r in caplog.records if r.name == "pollable.store"]
    assert record.levelname == "WARNING" and "disk I/O error" in record.exc_text


_CANCEL_WORKER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from pollable.lifecycle.model import Event, EventKind
from pollable.store.sqlite import SQLiteStore

async def main(path, tenant_id, job_id, name, start):
    store = SQLiteStore(path)
    await store.open()
    time.sleep(max(0.0, float(start) - time.time()))  # all processes race from one instant
    applied = []
    for i in range(10):
        event = Event(EventKind.CANCEL, 1_700_000_002.0 + (i * 7 % 10) / 100, name)
        _, ok = await store.append_event(tenant_id, job_id, event, refund=30.0)
        applied.append(ok)
    await store.close()
    print(json.dumps(applied))

asyncio.run(main(*sys.argv[2:]))
"""


def test_sqlite_concurrent_cancels_from_processes_apply_once(tmp_path):
    path = tmp_path / "shared.db"

    async def setup() -> str:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=100.0)
        await store.create_job(tenant.id, new_job("job-1", 8, credits=30.0))
        await store.close()
        return tenant.id

    tenant_id = asyncio.run(setup())
    start = str(time.time() + 1.5)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CANCEL_WORKER,
                str(ROOT),
                path,
                tenant_id,
                "job-1",
                name,
                start,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for name in ("p", "q", "r", "s")
    ]
    applied = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        applied.extend(json.loads(out))
    assert applied.count(True) == 1, "exactly one cancel changes the job"

    async def check() -> None:
        store = await opened(path)
        try:
            record = await store.get_job(tenant_id, "job-1")
            assert len(record.events) == 1
            assert (await store.get_tenant(tenant_id)).credits == 100.0
        finally:
            await store.close()

    asyncio.run(check())


def test_sqlite_a_store_made_before_completes_at_gets_it_from_the_plans(tmp_path):
    path = tmp_path / "old.db"
    job = new_job("job-1", 6)
    broken = Work("corrupt.pdf", 1, Outcome.FAILED, None, "file_corrupt", "corrupt")
    plan, items = plan_job(
        job_id="all-failed", created_at=T0, scenario=CATALOGUE["happy"], work=[broken], seed="s"
    )

    async def write() -> str:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=0.0)
        await store.create_job(tenant.id, replace(job, collection="docs"))
        await store.create_job(tenant.id, NewJob("captain", "index", plan, items))
        await store.close()
        return tenant.id

    tenant_id = asyncio.run(write())
    with sqlite3.connect(path) as conn:
        expected = conn.execute(
            "SELECT ordinal, completes_at FROM items WHERE job_id = 'job-1'"
        ).fetchall()
        # The schema before, and what it said of a job in which every item failed.
        conn.execute("ALTER TABLE items DROP COLUMN completes_at")
        conn.execute(
            "UPDATE jobs SET final_status = 'completed_with_failures' WHERE job_id = 'all-failed'"
        )

    async def reopen() -> None:
        store = await opened(path)
        try:
            keys = [item.key for item in job.items]
            done = max(t for _, t in expected)
            assert await store.indexed_keys(tenant_id, "docs", keys, at=done) == set(keys)
            assert await store.indexed_keys(tenant_id, "docs", keys, at=T0) == set()
            failed = await store.list_jobs(
                tenant_id, api="captain", now=T0 + 1e6, status=Status.FAILED, limit=5
            )
            assert [record.job_id for record in failed.jobs] == ["all-failed"]
            # New jobs go on being stored with the column the old file now has.
            await store.create_job(tenant_id, new_job("job-2", 2))
        finally:
            await store.close()

    asyncio.run(reopen())
    with sqlite3.connect(path) as conn:
        assert (
            conn.execute(
                "SELECT ordinal, completes_at FROM items WHERE job_id = 'job-1'"
            ).fetchall()
            == expected
        )


_SPEND_WORKER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import InsufficientCredits, NewJob, StorageFull
from pollable.store.sqlite import SQLiteStore

async def main(path, tenant_id, name, start):
    store = SQLiteStore(path)
    await store.open()
    time.sleep(max(0.0, float(start) - time.time()))  # all processes race from one instant
    outcomes = []
    for i in range(25):
        job_id = f"{name}-{i}"
        plan, items = plan_job(job_id=job_id, created_at=1_700_000_000.0,
                               scenario=CATALOGUE["happy"], work=[Work(job_id)], seed=job_id)
        job = NewJob(api="captain", kind="index", plan=plan, items=items, credits=7.0)
        try:
            await store.create_job(tenant_id, job, cap=60)
            outcomes.append("created")
        except InsufficientCredits:
            outcomes.append("poor")
        except StorageFull:
            outcomes.append("full")
    await store.close()
    print(json.dumps(outcomes))

asyncio.run(main(*sys.argv[2:]))
"""


def test_sqlite_two_processes_never_spend_past_the_balance_or_the_cap(tmp_path):
    """Two processes create jobs on one file at once: the balance never goes below zero
    and the count never passes the cap (each job stores 2: itself and its one item)."""
    path = tmp_path / "shared.db"

    async def setup(credits: float) -> str:
        store = await opened(path)
        tenant = await store.create_tenant(f"t{credits}", organization_id="org", credits=credits)
        await store.close()
        return tenant.id

    for credits, expected, refusal in ((100.0, 14, "poor"), (1000.0, 30, "full")):
        tenant_id = asyncio.run(setup(credits))
        start = str(time.time() + 1.5)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SPEND_WORKER, str(ROOT), path, tenant_id, name, start],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
                env=env,
            )
            for name in ("p", "q")
        ]
        outcomes: list[str] = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outcomes.extend(json.loads(out))
        assert outcomes.count("created") == expected
        assert outcomes.count(refusal) == 50 - expected

        async def check(tenant_id: str, credits: float, expected: int) -> None:
            store = await opened(path)
            try:
                tenant = await store.get_tenant(tenant_id)
                assert tenant.credits == pytest.approx(credits - 7.0 * expected)
                assert tenant.credits >= 0 and tenant.stored == 2 * expected <= 60
                page = await store.list_jobs(tenant_id, api="captain", now=T0, limit=100)
                assert page.total == expected
            finally:
                await store.close()

        asyncio.run(check(tenant_id, credits, expected))


def test_sqlite_a_store_from_before_the_count_counts_on_open(tmp_path):
    path = tmp_path / "old.db"

    async def make() -> str:
        store = await opened(path)
        tenant = await store.create_tenant("acme", organization_id="org", credits=5.0)
        await store.add_key(tenant.id, api="captain", key_hash="h", label="cap_")
        await store.create_clock(tenant.id, now=T0)
        await store.create_job(tenant.id, new_job("job-1", 4))
        await store.next_sequence(tenant.id, "snippet:docs")
        await store.close()
        return tenant.id

    tenant_id = asyncio.run(make())
    # As a store at schema version 1 from before the count: no ``stored`` column.
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE tenants DROP COLUMN stored")
        conn.execute("PRAGMA user_version = 1")

    async def check() -> None:
        store = await opened(path)
        try:
            assert (await store.get_tenant(tenant_id)).stored == 1 + 1 + 5 + 1
        finally:
            await store.close()

    asyncio.run(check())


def test_sqlite_log_appends_wait_for_the_write_lock_off_the_event_loop(tmp_path):
    """The request log writes on a thread of its own: while another connection (another
    process, a long write) holds the write lock, the loop keeps running and the batch
    waits, then lands whole; pruning too."""
    from tests.store.test_store import log_entry

    path = tmp_path / "log.db"

    async def main() -> None:
        store = await opened(path)
        try:
            tenant = await store.create_tenant("t", organization_id="org", credits=1.0)
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            entries = [log_entry(tenant.id, T0 + i) for i in range(50)]
            append = asyncio.ensure_future(store.append_requests(entries))
            ticks, started = 0, time.monotonic()
            while time.monotonic() - started < 0.3:
                before = time.monotonic()
                await asyncio.sleep(0.01)
                assert time.monotonic() - before < 0.2  # the loop was never held up
                ticks += 1
            assert not append.done() and ticks >= 10
            holder.execute("COMMIT")
            holder.close()
            await append
            assert await store.count_requests(tenant.id) == 50
            many = [log_entry(tenant.id, T0 + 100 + i) for i in range(2000)]  # several INSERTs
            await store.append_requests(many)
            assert await store.count_requests(tenant.id) == 2050
            await store.delete_requests(tenant.id)
            await store.append_requests(entries)
            assert await store.prune_requests(keep=10, older_than=0.0) == 40
            assert [e.id for e in await store.list_requests(tenant.id, limit=100)] == [
                e.id for e in reversed(entries[-10:])
            ]
        finally:
            await store.close()

    asyncio.run(main())


def test_sqlite_wrong_sql_is_not_mistaken_for_an_unavailable_store(tmp_path):
    async def run() -> None:
        store = await opened(tmp_path / "s.db")
        try:
            assert store._writer is not None
            store._writer.execute("DROP TABLE faults")
            tenant = await store.create_tenant("acme", organization_id="org", credits=5.0)
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                await store.list_faults(tenant.id)
        finally:
            await store.close()

    asyncio.run(run())


def test_sqlite_an_immutable_shm_file_is_unavailable_not_sigbus(tmp_path):
    """SQLite writes the WAL index through a mapping of ``-shm``; once the file is
    immutable such a write kills the process with SIGBUS. The store refuses instead."""
    postgres.require_root()

    async def run() -> None:
        store = await opened(tmp_path / "s.db")
        shm = f"{tmp_path}/s.db-shm"
        try:
            tenant = await store.create_tenant("acme", organization_id="org", credits=5.0)
            subprocess.run(["chattr", "+i", shm], check=True)
            try:
                with pytest.raises(Unavailable, match="cannot be written"):
                    await store.get_tenant(tenant.id)
                with pytest.raises(Unavailable, match="cannot be written"):
                    await store.set_default_scenario(tenant.id, "slow")
            finally:
                subprocess.run(["chattr", "-i", shm], check=True)
            assert (await store.set_default_scenario(tenant.id, "slow")).default_scenario == "slow"
        finally:
            await store.close()

    asyncio.run(run())
