"""The request log's writer: entries wait in a bounded queue and a background task writes
them in batches (``BATCH_SIZE`` entries, or ``BATCH_DELAY`` after the first, or a full
queue), one transaction per batch, so a request never waits for the log.

When the queue is full the oldest waiting entry is dropped and counted (``dropped``); a
batch the store refuses is logged and counted too. Pruning (per log, by count and age)
runs in the writer, at most once a second, and on every ``flush``; ``flush`` also runs
when the server shuts down, so nothing queued is lost on a clean stop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import NamedTuple

from pollable.store.base import RequestEntry, Store

log = logging.getLogger("pollable.journal")

#: The writer writes a batch once this many entries wait, or this long after the first of
#: them arrived: rare, large batches, because each one costs the event loop a few hand-overs
#: of the GIL with the store's thread, whatever its size.
BATCH_SIZE = 1000
BATCH_DELAY = 0.25
PRUNE_EVERY = 1.0


class Pending(NamedTuple):
    """An entry on its way to the store (a tuple: one is made per request). ``key`` is
    ``(api, key hash)`` of a bearer key the request was not authenticated with (a wrong
    path, a key of another API): the writer looks its tenant up, so the tenant sees the
    request in its own log."""

    entry: RequestEntry
    key: tuple[str, str] | None = None


class Journal:
    def __init__(
        self,
        store: Store,
        *,
        enabled: bool = True,
        max_entries: int,
        max_age_seconds: float,
        queue_size: int,
        body_bytes: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self.body_bytes = body_bytes
        self.now = now
        #: Entries dropped: the queue was full, or the store refused their batch.
        self.dropped = 0
        self._queue: collections.deque[Pending] = collections.deque(maxlen=queue_size)
        self._wake = asyncio.Event()
        #: Set when the writer should not wait: a full batch waits, or the server stops.
        self._now = asyncio.Event()
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = 0.0
        #: Logs written to since the last prune.
        self._touched: set[str | None] = set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def record(self, pending: Pending) -> None:
        """Queue an entry; never blocks, never fails."""
        if not self.enabled:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(pending)
        if not self._wake.is_set():
            self._wake.set()
        if len(self._queue) >= BATCH_SIZE or len(self._queue) == self._queue.maxlen:
            self._now.set()

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="pollable-journal")

    async def close(self) -> None:
        """Stop the writer and write whatever is still queued."""
        self._closing.set()
        self._now.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write every queued entry now, and prune."""
        await self._drain(prune=True)

    async def _run(self) -> None:
        while not self._closing.is_set():
            await self._wake.wait()
            self._wake.clear()
            # Let a batch gather, unless the server is stopping (``close`` writes the rest).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), BATCH_DELAY)
            if self._closing.is_set():
                return
            self._now.clear()
            await self._drain(prune=time.monotonic() - self._pruned_at >= PRUNE_EVERY)

    async def _drain(self, *, prune: bool) -> None:
        if not self.enabled:
            return
        async with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH_SIZE, len(self._queue)))]
                try:
                    entries = await self._resolve(batch)
                    await self.store.append_requests(entries)
                except Exception:
                    self.dropped += len(batch)
                    log.exception("the request log could not write %d entries", len(batch))
                    continue
                self._touched.update(entry.tenant_id for entry in entries)
            if prune and self._touched:
                touched, self._touched = self._touched, set()
                self._pruned_at = time.monotonic()
                try:
                    await self.store.prune_requests(
                        keep=self.max_entries,
                        older_than=self.now() - self.max_age_seconds,
                        tenants=touched,
                    )
                except Exception:
                    log.exception("the request log could not be pruned")

    async def _resolve(self, batch: Sequence[Pending]) -> list[RequestEntry]:
        entries = []
        for pending in batch:
            entry = pending.entry
            if pending.key is not None:
                found = await self.store.key_for(*pending.key)
                if found is not None:
                    tenant, key = found
                    entry = replace(entry, tenant_id=tenant.id, key_id=key.id)
            entries.append(entry)
        return entries
