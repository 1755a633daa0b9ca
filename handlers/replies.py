"""Replies that can never change: a finished job's, kept once they were checked.

A job that is over is over at every later time, on every clock: its plan is immutable,
its events can only grow (and a cancel of a finished job adds none), and its items never
change. So the reply to the same read of it (same tenant, job, page) is the same bytes
for as long as the job exists. The handler still reads the job on every request (a job
deleted by a reset or with its clock is 404 at once, in every process) and reuses the
reply only if the record it read is the one the reply was made from.

A reply is kept only after the one request path (``server.dispatch.respond``) checked it
against the contract, so a reused reply is one that passed response validation, and is
not checked again. Each process keeps its own, bounded by the bytes of its bodies, and
keeps only the bytes (the body is an ``orjson.Fragment`` of them, not the objects).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import orjson

from pollable.lifecycle.model import Event, Plan
from pollable.store.base import JobRecord

from .api import Reply

#: Bytes of bodies a process keeps; the least recently used go first. 16 MiB holds about
#: 1,300 Captain pages of 50 files, or 40,000 Crosmos jobs.
DEFAULT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FinalRead:
    """What a reply is made from, when it can be kept: the key of the read (API, tenant,
    job and whatever selects the page), and the job as it was read."""

    key: Hashable
    plan: Plan
    events: tuple[Event, ...]
    #: When the job was over: the reply holds at that time and at every later one.
    over_at: float


class FinalReplies:
    """Checked replies of finished jobs, least recently used first out."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._kept: OrderedDict[Hashable, tuple[FinalRead, Reply]] = OrderedDict()

    def get(self, key: Hashable, record: JobRecord, now: float) -> Reply | None:
        """The kept reply of this read, if it was made from ``record`` as it is now, and the
        job was over by ``now`` (a clock that moved back would see it otherwise)."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        final, reply = kept
        if (
            now < final.over_at
            or (final.plan is not record.plan and final.plan != record.plan)
            or final.events != record.events
        ):
            return None
        self._kept.move_to_end(key)
        return reply

    def keep(self, reply: Reply) -> None:
        """Keep a reply that passed the contract's check (``reply.final`` says what of)."""
        final = reply.final
        if final is None or reply.payload is None or len(reply.payload) > self.max_bytes:
            return
        kept = Reply(
            reply.status, orjson.Fragment(reply.payload), reply.headers, reply.media_type,
            payload=reply.payload, checked=True,
        )  # fmt: skip
        earlier = self._kept.pop(final.key, None)
        if earlier is not None:
            self.size -= _size(earlier[1])
        self._kept[final.key] = (final, kept)
        self.size += _size(kept)
        while self.size > self.max_bytes:
            _, (_, dropped) = self._kept.popitem(last=False)
            self.size -= _size(dropped)

    def __len__(self) -> int:
        return len(self._kept)


def _size(reply: Reply) -> int:
    return len(reply.payload or b"")
