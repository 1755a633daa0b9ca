"""The engine's vocabulary: plans, items, events and the states computed from them.

Times are POSIX seconds as floats; ``math.inf`` means "never" (a job stuck in the
queue never starts). Everything here is immutable data.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple


class Status(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)


class Stage(enum.StrEnum):
    SCANNING = "scanning"
    EXTRACTING = "extracting"
    CHUNKING = "chunking"
    TAGGING = "tagging"
    EMBEDDING = "embedding"
    FINALIZING = "finalizing"


#: The stages every item walks through, in order, inside its processing slot.
ITEM_STAGES: tuple[Stage, ...] = (Stage.EXTRACTING, Stage.CHUNKING, Stage.TAGGING, Stage.EMBEDDING)
STAGES: tuple[Stage, ...] = (Stage.SCANNING, *ITEM_STAGES, Stage.FINALIZING)


class ItemStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Outcome(enum.StrEnum):
    """What an item's processing will end in, decided when the job is planned."""

    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Timing:
    """Durations in seconds. Items start ``item_gap`` apart and each takes ``item_duration``."""

    queue: float
    scan: float
    item_gap: float
    item_duration: float
    finalize: float

    def __post_init__(self) -> None:
        if min(self.queue, self.scan, self.item_gap, self.item_duration, self.finalize) < 0:
            raise ValueError("durations cannot be negative")
        if self.item_duration < self.item_gap:
            # Items overlap or touch: there is never a gap with nothing in flight.
            raise ValueError("item_duration must be at least item_gap")


@dataclass(frozen=True)
class Failure:
    """A job-level failure: the job stops during ``stage``, ``at`` of the way through it."""

    stage: Stage
    code: str
    message: str
    at: float = 0.5


#: The ``extra`` of an item that has none.
NO_EXTRA: Mapping[str, int] = MappingProxyType({})


class Item(NamedTuple):
    """One unit of work in a job (a Captain file, a Crosmos source), as planned.

    A named tuple rather than a frozen dataclass: a page of a job builds one per file on
    every poll, and a frozen dataclass costs three times as much to construct.
    """

    ordinal: int
    key: str
    outcome: Outcome
    units: int = 0
    fail_stage: Stage | None = None
    error_code: str | None = None
    error_message: str | None = None
    extra: Mapping[str, int] = NO_EXTRA


@dataclass(frozen=True)
class Tally:
    """Counts over a prefix of a job's items (the first ``k`` by ordinal)."""

    failed: int = 0
    skipped: int = 0
    units: int = 0

    @staticmethod
    def of(items: Iterable[Item]) -> Tally:
        last = collections.deque(running_tallies(items), maxlen=1)
        return last[0] if last else Tally()


def running_tallies(items: Iterable[Item]) -> Iterator[Tally]:
    """The tally of the first k items, for k = 1, 2, ...: what stores keep per item."""
    failed = skipped = units = 0
    for item in items:
        if item.outcome is Outcome.FAILED:
            failed += 1
        elif item.outcome is Outcome.SKIPPED:
            skipped += 1
        else:
            units += item.units
        yield Tally(failed, skipped, units)


@dataclass(frozen=True)
class Plan:
    """Everything a job will do, fixed when it is created."""

    job_id: str
    created_at: float
    scenario: str
    timing: Timing
    n_items: int
    totals: Tally
    failure: Failure | None = None
    #: Seconds after creation at which the system cancels the job (scenario ``cancelled``).
    cancel_after: float | None = None


class EventKind(enum.StrEnum):
    CANCEL = "cancel"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: float
    actor: str


@dataclass(frozen=True)
class JobState:
    """A job as it is at one moment."""

    #: The moment this state describes: the time asked about, or the job's end if earlier.
    as_of: float
    status: Status
    stage: Stage | None
    started_at: float | None
    #: When the job reached its terminal state (completed, failed or cancelled).
    ended_at: float | None
    cancelled_at: float | None
    cancelled_by: str | None
    #: Items whose processing has finished (in ordinal order, so always a prefix).
    settled: int
    #: Items that have started processing (``settled <= started <= n_items``).
    started: int
    updated_at: float
    #: When processing stopped early (failure or cancel); items not settled by then are
    #: failed or cancelled.
    stopped_at: float | None
    error_code: str | None
    error_message: str | None
    #: Planned end, while the job is still going; None when unknown (stuck) or over.
    expected_end: float | None


class ItemState(NamedTuple):
    """One item at one moment (a named tuple for the same reason as ``Item``)."""

    status: ItemStatus
    stage: Stage | None
    updated_at: float
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class Progress:
    total: int
    processed: int
    completed: int
    failed: int
    skipped: int
    cancelled: int
    #: Units (pages, tokens) of the items completed so far.
    units: int
