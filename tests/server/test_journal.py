"""The request log's writer: queued, written in batches, bounded, flushed on close."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from pollable.server import journal as journal_module
from pollable.server.journal import Journal, Pending
from pollable.store.base import LoggedMessage, RequestEntry
from pollable.store.memory import MemoryStore

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def entry(tenant: str | None, at: float) -> Pending:
    return Pending(
        RequestEntry(
            id="req_" + uuid.uuid4().hex[:24], tenant_id=tenant, at=at, method="GET",
            path="/v2/jobs/j", query="", status=200, duration_ms=1.0,
            request=LoggedMessage(), response=LoggedMessage(),
        )
    )  # fmt: skip


def journal(store: Any, **options: Any) -> Journal:
    settings = {
        "max_entries": 100,
        "max_age_seconds": 3600.0,
        "queue_size": 1000,
        "body_bytes": 1024,
        "now": lambda: T0,
        **options,
    }
    return Journal(store, **settings)


async def test_entries_are_written_by_the_background_writer(monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "BATCH_DELAY", 0.0)
    store = MemoryStore()
    log = journal(store)
    log.start()
    for i in range(3):
        log.record(entry("t", T0 + i))
    for _ in range(100):
        if await store.count_requests("t") == 3:
            break
        await asyncio.sleep(0.01)
    assert await store.count_requests("t") == 3
    assert log.queued == 0
    await log.close()


async def test_flush_writes_everything_queued_and_close_flushes(monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "BATCH_DELAY", 3600.0)  # the writer never gets to it
    store = MemoryStore()
    log = journal(store, max_entries=10_000, queue_size=2 * journal_module.BATCH_SIZE)
    log.start()
    log.record(entry("t", T0))
    await asyncio.sleep(0.01)
    assert await store.count_requests("t") == 0
    await log.flush()
    assert await store.count_requests("t") == 1
    for i in range(journal_module.BATCH_SIZE + 3):  # more than one batch
        log.record(entry("t", T0 + i))
    await log.close()
    assert await store.count_requests("t") == 1 + journal_module.BATCH_SIZE + 3


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    store = MemoryStore()
    log = journal(store, queue_size=3)
    kept = [entry("t", T0 + i) for i in range(5)]
    for pending in kept:
        log.record(pending)
    assert (log.queued, log.dropped) == (3, 2)
    await log.flush()
    assert [e.id for e in await store.list_requests("t", limit=10)] == [
        p.entry.id for p in reversed(kept[2:])
    ]


async def test_a_batch_the_store_refuses_is_counted_and_the_writer_goes_on(monkeypatch) -> None:
    store = MemoryStore()
    log = journal(store)

    async def refuse(entries: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "append_requests", refuse)
    log.record(entry("t", T0))
    await log.flush()
    assert log.dropped == 1
    monkeypatch.undo()
    log.record(entry("t", T0))
    await log.flush()
    assert await store.count_requests("t") == 1


async def test_flush_prunes_each_log_by_count_and_age() -> None:
    store = MemoryStore()
    now = T0
    log = journal(store, max_entries=3, max_age_seconds=60.0, now=lambda: now)
    for i in range(5):
        log.record(entry("a", T0 - 10 + i))
        log.record(entry(None, T0 - 10 + i))
    log.record(entry("b", T0 - 100))
    await log.flush()
    assert [e.at for e in await store.list_requests("a", limit=10)] == [T0 - 6, T0 - 7, T0 - 8]
    assert await store.count_requests(None) == 3
    assert await store.count_requests("b") == 0
    now = T0 + 53
    log.record(entry("a", now))
    await log.flush()
    assert [e.at for e in await store.list_requests("a", limit=10)] == [T0 + 53, T0 - 6, T0 - 7]


async def test_a_journal_that_is_off_keeps_nothing() -> None:
    store = MemoryStore()
    log = journal(store, enabled=False)
    log.start()
    log.record(entry("t", T0))
    await log.close()
    assert (log.queued, await store.count_requests("t")) == (0, 0)


async def wait_for_count(store: Any, tenant: str, count: int) -> int:
    for _ in range(200):
        if await store.count_requests(tenant) >= count:
            break
        await asyncio.sleep(0.01)
    return int(await store.count_requests(tenant))


async def test_a_full_batch_is_written_without_waiting_for_the_delay(monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "BATCH_DELAY", 3600.0)
    monkeypatch.setattr(journal_module, "BATCH_SIZE", 10)
    store = MemoryStore()
    log = journal(store)
    log.start()
    for i in range(9):
        log.record(entry("t", T0 + i))
    await asyncio.sleep(0.05)
    assert await store.count_requests("t") == 0  # fewer than a batch: they wait
    log.record(entry("t", T0 + 9))
    assert await wait_for_count(store, "t", 10) == 10
    assert log.queued == 0
    await log.close()


async def test_a_full_queue_is_written_without_waiting_for_the_delay(monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "BATCH_DELAY", 3600.0)
    store = MemoryStore()
    log = journal(store, queue_size=5)  # smaller than a batch
    log.start()
    for i in range(5):
        log.record(entry("t", T0 + i))
    assert await wait_for_count(store, "t", 5) == 5
    assert log.dropped == 0
    await log.close()


async def test_a_partial_batch_is_written_after_the_delay(monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "BATCH_DELAY", 0.05)
    store = MemoryStore()
    log = journal(store)
    log.start()
    log.record(entry("t", T0))
    assert await wait_for_count(store, "t", 1) == 1
    await log.close()
