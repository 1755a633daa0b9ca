"""The one store interface every backend implements, and the records it trades in.

Tenancy is in every key: every job method takes the tenant id, and a job of another
tenant is ``NotFound``, exactly like a job that does not exist.
"""

from __future__ import annotations

import abc
import functools
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import orjson

from pollable.lifecycle.codec import plan_from_data
from pollable.lifecycle.engine import outcome
from pollable.lifecycle.errors import Conflict
from pollable.lifecycle.model import Event, Item, Plan, Status, Tally


@functools.lru_cache(maxsize=4096)
def decode_plan(text: str | bytes) -> Plan:
    """A plan from the JSON a store keeps. A plan never changes once made, so the same text
    is decoded once per process and the same ``Plan`` is returned: every read of a job
    would decode it otherwise, and a kept reply (``handlers.replies``) knows its job's
    plan by identity first."""
    return plan_from_data(orjson.loads(text))


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    organization_id: str
    #: Credit balance after every reservation so far.
    credits: float
    default_scenario: str | None = None
    #: POSIX seconds.
    created_at: float = 0.0
    #: The balance a reset restores (the balance the tenant was created with, or last set).
    initial_credits: float = 0.0
    #: What the tenant stores, counted against a cap (``Store.create_job``'s ``cap``):
    #: its jobs, their items, its test clocks, its API keys and its named sequences. A
    #: usage figure, not part of what a tenant is: records compare equal without it.
    stored: int = field(default=0, compare=False)
    #: Whether the tenant had fault rules when it was read, where the read says
    #: (``Store.key_for``: every authenticated request's, so its faults need no read of
    #: their own when there are none); None: not read.
    has_fault_rules: bool | None = field(default=None, compare=False)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


@dataclass(frozen=True)
class KeyRecord:
    """What is kept of an API key: never the key, only its hash (not in this record)."""

    id: str
    tenant_id: str
    api: str
    environment: str
    #: The key's prefix and first characters, safe to show.
    label: str
    created_at: float
    #: Jobs created with this key run on this test clock.
    clock_id: str | None = None
    revoked_at: float | None = None


def new_clock_id() -> str:
    return "clk_" + secrets.token_hex(8)


@dataclass(frozen=True)
class Clock:
    """A test clock: frozen time, moved only forward. Jobs bound to it are computed at its
    ``now``; clock time lives in the store, so every process agrees on it."""

    id: str
    tenant_id: str
    name: str | None
    #: POSIX seconds.
    now: float
    created_at: float = 0.0


class ClockWouldGoBack(Conflict):
    """Moving the clock to that instant would take it back: it is already later."""

    def __init__(self, clock: Clock) -> None:
        super().__init__("clocks only move forward")
        self.clock = clock


def new_fault_id() -> str:
    return "flt_" + secrets.token_hex(8)


@dataclass(frozen=True)
class FaultRule:
    """A fault rule of a tenant: which of its requests to fault and how (``spec``, the rule
    as the control plane accepted it, JSON), and how many requests it has matched so far,
    counted in the store so that every process agrees."""

    id: str
    tenant_id: str
    spec: Mapping[str, Any]
    #: POSIX seconds.
    created_at: float = 0.0
    matched: int = 0


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` and a fingerprint of the request body it was first used with."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class NewJob:
    api: str
    kind: str
    plan: Plan
    items: Sequence[Item]
    collection: str | None = None
    #: Contract-specific facts about the request (space id, processing type, ...), JSON-ready.
    attrs: Mapping[str, Any] = field(default_factory=dict)
    #: Credits reserved from the tenant's balance when the job is created.
    credits: float = 0.0
    idempotency: Idempotency | None = None
    #: The test clock the job runs on (None: real time).
    clock_id: str | None = None


@dataclass(frozen=True)
class JobRecord:
    tenant_id: str
    api: str
    kind: str
    collection: str | None
    attrs: Mapping[str, Any]
    plan: Plan
    events: tuple[Event, ...]
    #: Item ``i`` has the integer id ``serial_base + i + 1`` (unique within the tenant).
    serial_base: int
    #: The tenant's credit balance right after this job's reservation.
    credits_remaining: float
    #: The test clock the job runs on (None: real time).
    clock_id: str | None = None

    @property
    def job_id(self) -> str:
        return self.plan.job_id

    def serial(self, ordinal: int) -> int:
        return self.serial_base + ordinal + 1


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRecord]
    total: int


# The request log's records are made on every request's path: slotted and not frozen,
# they are built in a third of the time (a frozen dataclass sets each field through
# object.__setattr__). Nothing changes one once made.
@dataclass(slots=True)
class LoggedMessage:
    """One side of a logged exchange, credentials already redacted."""

    #: Header values by lower-case name (repeated headers joined with ``", "``).
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The body as text (UTF-8, undecodable bytes replaced), at most the log's body limit;
    #: None when there was none (or the server did not read it).
    body: str | None = None
    #: The body's size as it was sent, in bytes.
    size: int = 0
    #: Whether ``body`` is only the first part of it.
    truncated: bool = False


@dataclass(slots=True)
class RequestEntry:
    """One request to a served API, as the request log keeps it."""

    #: The ``Request-Id`` the response carried (``req_`` and 24 hex digits).
    id: str
    #: The tenant it was made for; None for requests no tenant can be found for (the admin's).
    tenant_id: str | None
    #: Real time the request arrived, POSIX seconds.
    at: float
    method: str
    path: str
    #: The raw query string, without the ``?``.
    query: str
    status: int
    duration_ms: float
    request: LoggedMessage
    response: LoggedMessage
    api: str | None = None
    operation_id: str | None = None
    #: The job the request touched (read, cancelled or created).
    job_id: str | None = None
    #: The job's clock time when it is bound to a test clock.
    clock_time: float | None = None
    #: The key that authenticated the request.
    key_id: str | None = None
    #: What the client says it is (``generator``, ``name``, ``version``, ``language``,
    #: ``runtime``), from the headers official SDKs send.
    sdk: Mapping[str, str | None] | None = None
    #: Which retry this was (0: the first attempt), when the client says so.
    retry_count: int | None = None


@dataclass(frozen=True)
class RequestFilter:
    """Which entries of one log a read or delete is about; every field set must match."""

    job_id: str | None = None
    path: str | None = None
    #: Upper case.
    method: str | None = None
    status: int | None = None
    api: str | None = None
    #: ``since <= at < until``, POSIX seconds.
    since: float | None = None
    until: float | None = None

    def matches(self, entry: RequestEntry) -> bool:
        return (
            (self.job_id is None or entry.job_id == self.job_id)
            and (self.path is None or entry.path == self.path)
            and (self.method is None or entry.method == self.method)
            and (self.status is None or entry.status == self.status)
            and (self.api is None or entry.api == self.api)
            and (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at < self.until)
        )


#: Where a page of log entries starts: entries strictly older than this ``(at, id)``.
RequestCursor = tuple[float, str]

EVERY_REQUEST = RequestFilter()


class IdempotencyMismatch(Conflict):
    """The idempotency key was used before with a different request body."""


class InsufficientCredits(Conflict):
    """The job would cost more credits than the tenant has left; nothing was stored."""

    def __init__(self, needed: float, balance: float) -> None:
        super().__init__(f"insufficient credits: the job needs {needed:g}, the balance {balance:g}")
        self.needed = needed
        self.balance = balance


class StorageFull(Conflict):
    """Storing this would take the tenant past its cap on stored items; nothing was stored."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"this tenant's cap of {cap} stored items is reached")
        self.cap = cap


def job_size(job: NewJob) -> int:
    """What storing ``job`` adds to its tenant's ``stored`` count: the job and its items."""
    return 1 + len(job.items)


def milestones(plan: Plan, events: Sequence[Event] = ()) -> tuple[float, float, Status]:
    """What a backend keeps in columns so it can filter jobs by status: start, end, outcome."""
    end, final = outcome(plan, events)
    return plan.created_at + plan.timing.queue, end, final


#: Joins each row of ``jobs`` to its test clock, as ``clock`` (no clock: NULLs).
CLOCK_JOIN_SQL = (
    "LEFT JOIN clocks AS clock ON clock.tenant_id = jobs.tenant_id AND clock.id = jobs.clock_id"
)
#: A job's time: its clock's, else the real time ``:now``. Needs ``CLOCK_JOIN_SQL``.
JOB_NOW_SQL = "COALESCE(clock.now, :now)"
#: The SQL twin of ``lifecycle.engine.status_from`` over the milestone columns, at each
#: job's own time. The shared store suite checks the two agree.
STATUS_SQL = (
    f"CASE WHEN {JOB_NOW_SQL} >= ends_at THEN final_status "
    f"WHEN {JOB_NOW_SQL} < started_at THEN 'pending' ELSE 'running' END"
)


class StoreNotFound(LookupError):
    """The store was to be opened, not created, and there is none at its URL."""


class SchemaTooNew(RuntimeError):
    """The store was written by a newer pollable, with a schema this one does not know."""

    def __init__(self, where: str, version: int, known: int) -> None:
        super().__init__(
            f"the store at {where} has schema version {version}, newer than this pollable's "
            f"{known}: upgrade pollable to open it"
        )
        self.version = version


class Store(abc.ABC):
    """Persistence for tenants, keys, jobs and the request log. Reading never writes."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if needed. Idempotent. A store made to be opened
        only (``open_store(url, create=False)``) raises ``StoreNotFound`` instead of
        creating itself."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. The store may be opened again."""

    async def ping(self) -> None:
        """Reach the store (raises whatever its driver raises when it cannot)."""
        await self.count_tenants()

    async def __aenter__(self) -> Self:
        """``async with open_store(url) as store:`` opens it, and closes it on the way out."""
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- tenants and keys -------------------------------------------------------------

    @abc.abstractmethod
    async def create_tenant(
        self,
        name: str,
        *,
        organization_id: str,
        credits: float,
        default_scenario: str | None = None,
        created_at: float = 0.0,
    ) -> Tenant:
        """Create a tenant. Raises ``Conflict`` if the name is taken."""

    @abc.abstractmethod
    async def find_tenant(self, name: str) -> Tenant | None:
        """The tenant called ``name``, or None."""

    @abc.abstractmethod
    async def get_tenant(self, tenant_id: str) -> Tenant:
        """The tenant with this id. Raises ``NotFound``."""

    @abc.abstractmethod
    async def count_tenants(self) -> int: ...

    @abc.abstractmethod
    async def set_default_scenario(self, tenant_id: str, scenario: str | None) -> Tenant:
        """Set (or clear) the scenario the tenant's jobs use by default. Raises ``NotFound``."""

    @abc.abstractmethod
    async def list_tenants(self, *, after: str | None = None, limit: int) -> list[Tenant]:
        """Tenants ordered by id, the first ``limit`` with an id greater than ``after``."""

    @abc.abstractmethod
    async def set_credits(self, tenant_id: str, credits: float) -> Tenant:
        """Set the balance, and the balance a reset restores. Raises ``NotFound``."""

    @abc.abstractmethod
    async def delete_tenant(self, tenant_id: str) -> None:
        """Delete the tenant and everything it owns, keys included. Raises ``NotFound``."""

    @abc.abstractmethod
    async def reset_tenant(self, tenant_id: str) -> None:
        """Forget everything the tenant did (jobs and their items, idempotency keys,
        ``skip_existing`` history, sequence numbers, clocks, request log, fault rules) and
        restore its initial credits; keep the tenant and its keys (unbound from the clocks
        that are gone), its ``stored`` back to the number of its keys. Raises ``NotFound``."""

    @abc.abstractmethod
    async def add_key(
        self,
        tenant_id: str,
        *,
        api: str,
        key_hash: str,
        label: str,
        environment: str = "",
        clock_id: str | None = None,
        created_at: float = 0.0,
        cap: int | None = None,
    ) -> KeyRecord:
        """Store an API key by its hash (never the key). ``label`` is a safe-to-show prefix.
        It adds 1 to the tenant's ``stored`` (``StorageFull`` past ``cap``, storing nothing).
        Raises ``NotFound`` for an unknown tenant or a clock the tenant does not have, and
        ``Conflict`` for a key already stored."""

    @abc.abstractmethod
    async def key_for(self, api: str, key_hash: str) -> tuple[Tenant, KeyRecord] | None:
        """The tenant and record of the unrevoked key of ``api`` with this hash, or None.
        Read from the store on every call, so a revocation is seen by every process. The
        tenant says whether it has fault rules (``Tenant.has_fault_rules``)."""

    async def tenant_for_key(self, api: str, key_hash: str) -> Tenant | None:
        """The tenant owning an unrevoked key of ``api`` with this hash, or None."""
        found = await self.key_for(api, key_hash)
        return None if found is None else found[0]

    @abc.abstractmethod
    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        """The tenant's keys, revoked ones included, oldest first."""

    @abc.abstractmethod
    async def revoke_key(self, tenant_id: str, key_id: str, *, at: float) -> KeyRecord:
        """Revoke the tenant's key (once: revoking again keeps the first instant).
        Raises ``NotFound``."""

    # -- test clocks ----------------------------------------------------------------------

    @abc.abstractmethod
    async def create_clock(
        self,
        tenant_id: str,
        *,
        now: float,
        name: str | None = None,
        created_at: float = 0.0,
        cap: int | None = None,
    ) -> Clock:
        """A new clock of the tenant, frozen at ``now``; it adds 1 to the tenant's ``stored``
        (``StorageFull`` past ``cap``, storing nothing). Raises ``NotFound`` for an unknown
        tenant."""

    @abc.abstractmethod
    async def get_clock(self, tenant_id: str, clock_id: str) -> Clock:
        """The tenant's clock. Raises ``NotFound`` (another tenant's clock is not found)."""

    @abc.abstractmethod
    async def list_clocks(
        self, tenant_id: str, *, after: str | None = None, limit: int
    ) -> list[Clock]:
        """The tenant's clocks ordered by id, the first ``limit`` with an id after ``after``."""

    @abc.abstractmethod
    async def advance_clock(
        self, tenant_id: str, clock_id: str, *, to: float | None = None, by: float | None = None
    ) -> Clock:
        """Move the clock forward, atomically: to ``to`` (staying put when it is there
        already; ``ClockWouldGoBack``, changing nothing, when it is later), or by ``by``
        seconds (``ValueError`` unless positive). Exactly one of the two. Raises
        ``NotFound``."""

    @abc.abstractmethod
    async def delete_clock(self, tenant_id: str, clock_id: str) -> None:
        """Delete the clock and, atomically, its jobs (their items and idempotency keys too),
        taking them all off the tenant's ``stored``; keys bound to it are unbound. Raises
        ``NotFound``."""

    # -- fault rules --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_fault(
        self, tenant_id: str, spec: Mapping[str, Any], *, limit: int, created_at: float = 0.0
    ) -> FaultRule:
        """A new fault rule of the tenant (``matched`` 0). Raises ``NotFound`` for an unknown
        tenant, and ``Conflict``, storing nothing, when the tenant has ``limit`` rules
        already (checked atomically with the insert)."""

    @abc.abstractmethod
    async def list_faults(self, tenant_id: str) -> list[FaultRule]:
        """The tenant's fault rules, oldest first (the order they were created in); none for
        an unknown tenant. Called on every request of a job API: one indexed read."""

    @abc.abstractmethod
    async def get_fault(self, tenant_id: str, fault_id: str) -> FaultRule:
        """The tenant's fault rule. Raises ``NotFound`` (another tenant's too)."""

    @abc.abstractmethod
    async def delete_fault(self, tenant_id: str, fault_id: str) -> None:
        """Delete the tenant's fault rule. Raises ``NotFound``."""

    @abc.abstractmethod
    async def match_fault(self, tenant_id: str, fault_id: str) -> int:
        """Count one more request matched by the rule, atomically (of any number of
        concurrent calls from any number of processes, each gets its own number), and
        return the new count (1 for the first). Raises ``NotFound`` for a rule deleted
        meanwhile."""

    # -- jobs ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_job(
        self, tenant_id: str, job: NewJob, *, cap: int | None = None
    ) -> tuple[JobRecord, bool]:
        """Store a job with its items and reserve its credits, atomically. A job bound to a
        clock the tenant does not have (``job.clock_id``) raises ``NotFound``.

        The checks and the writes are one atomic step, from any number of processes: a job
        whose ``credits`` (when positive) exceed the tenant's balance raises
        ``InsufficientCredits``, and one that would take the tenant's ``stored`` count past
        ``cap`` (None: no cap) raises ``StorageFull``; either stores and spends nothing. A
        stored job adds ``job_size(job)`` to ``stored``; deleting jobs (a clock's, a reset)
        takes it back off.

        Returns the record and True. With an idempotency key already used with the same
        fingerprint, stores nothing and returns the earlier job and False; with a different
        fingerprint raises ``IdempotencyMismatch``.
        """

    @abc.abstractmethod
    async def idempotent_job(self, tenant_id: str, idempotency: Idempotency) -> JobRecord | None:
        """The job created with this idempotency key, or None if the key is unused; raises
        ``IdempotencyMismatch`` if it was used with another fingerprint. Reads only: a
        replay is answered before anything is planned. ``create_job`` still decides races
        between first requests."""

    @abc.abstractmethod
    async def get_job(self, tenant_id: str, job_id: str) -> JobRecord:
        """The job with its events. Raises ``NotFound``."""

    @abc.abstractmethod
    async def items(
        self, tenant_id: str, job_id: str, *, after: int = -1, limit: int
    ) -> list[Item]:
        """Up to ``limit`` items with ordinal greater than ``after``, in ordinal order."""

    @abc.abstractmethod
    async def tally(self, tenant_id: str, job_id: str, k: int) -> Tally:
        """Counts over the job's first ``k`` items (all of them when ``k`` exceeds their
        number), at the cost of one read."""

    @abc.abstractmethod
    async def append_event(
        self, tenant_id: str, job_id: str, event: Event, *, refund: float = 0.0
    ) -> tuple[JobRecord, bool]:
        """Append ``event`` if it applies to the job as stored at that moment
        (``lifecycle.engine.applies``: a cancel applies while the job is not over and was
        never cancelled), atomically with returning ``refund`` credits to the tenant.

        Returns the record as it then is and whether the event was appended. The check and
        the append are one atomic step: of any number of concurrent cancels of a job, from
        any number of processes, exactly one is kept and refunded. Raises ``NotFound``."""

    @abc.abstractmethod
    async def list_jobs(
        self,
        tenant_id: str,
        *,
        api: str | None,
        now: float,
        status: Status | None = None,
        collection: str | None = None,
        clock_id: str | None = None,
        limit: int,
        offset: int = 0,
    ) -> JobPage:
        """The tenant's jobs of ``api`` (None: of every API), newest first, with the status
        they have at ``now`` (a job bound to a test clock: at its clock's time); with
        ``clock_id``, only the jobs bound to that clock."""

    @abc.abstractmethod
    async def indexed_keys(
        self, tenant_id: str, collection: str, keys: Sequence[str], *, at: float
    ) -> set[str]:
        """Which ``keys`` the tenant's jobs into ``collection`` had indexed at ``at``.

        A key is indexed from the instant its item completed in such a job
        (``lifecycle.engine.completes_at``) if the job had not stopped (cancelled, failed)
        before then: exactly the items the job shows ``completed`` at ``at``. Items a job
        will complete later are not indexed yet, and never are if it is cancelled first;
        the upstream checks what the collection holds, not what a job plans. (It checks
        while the new job scans; pollable asks at its creation, when the plan is made.)
        """

    @abc.abstractmethod
    async def next_sequence(self, tenant_id: str, name: str, *, cap: int | None = None) -> int:
        """Increment and return the tenant's counter ``name`` (starting at 1). A new name
        adds 1 to the tenant's ``stored`` (``StorageFull`` past ``cap``, changing nothing);
        a reset forgets the counters."""

    # -- request log --------------------------------------------------------------------
    #
    # One log per tenant, and one (``tenant_id`` None) for requests no tenant can be found
    # for. Entries are read newest first: by ``at``, then ``id``, both descending.

    @abc.abstractmethod
    async def append_requests(self, entries: Sequence[RequestEntry]) -> None:
        """Store a batch of entries, in one transaction."""

    @abc.abstractmethod
    async def list_requests(
        self,
        tenant_id: str | None,
        where: RequestFilter = EVERY_REQUEST,
        *,
        before: RequestCursor | None = None,
        limit: int,
    ) -> list[RequestEntry]:
        """Up to ``limit`` entries of the log that match ``where``, newest first, all
        older than ``before`` (keyset paging: stable while new entries arrive)."""

    @abc.abstractmethod
    async def count_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        """How many entries of the log match ``where``."""

    @abc.abstractmethod
    async def get_request(self, tenant_id: str | None, request_id: str) -> RequestEntry:
        """The entry with this id in this log. Raises ``NotFound`` (also for an entry of
        another log)."""

    @abc.abstractmethod
    async def delete_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        """Delete the entries of the log that match ``where``; returns how many."""

    @abc.abstractmethod
    async def prune_requests(
        self, *, keep: int, older_than: float, tenants: Collection[str | None] | None = None
    ) -> int:
        """Delete every entry with ``at`` before ``older_than``, and all but the newest
        ``keep`` entries of each log in ``tenants`` (every log when None); returns how
        many were deleted."""

    @abc.abstractmethod
    async def meta(self, name: str, default: str) -> str:
        """A server-wide value; stores ``default`` the first time it is asked for."""
