"""``sqlite:///path.db``: the embedded store. WAL mode, a busy timeout and full sync, so
several processes can share one file and an acknowledged write survives a crash.

The schema is created with sqlite-utils when the store opens; the hot paths are plain
SQL on indexed keys: a job is one primary-key read, a page of items is a range scan on
``(tenant_id, job_id, ordinal)``, and counts over any prefix of items are one row read
thanks to the running totals stored on each item.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import logging
import os
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlite_utils

from pollable.lifecycle.codec import event_from_data, event_to_data, plan_from_data, plan_to_data
from pollable.lifecycle.engine import applies, completes_at, item_window
from pollable.lifecycle.errors import Conflict, NotFound, Unavailable
from pollable.lifecycle.model import (
    NO_EXTRA,
    Event,
    Item,
    Outcome,
    Plan,
    Stage,
    Status,
    Tally,
    running_tallies,
)

from . import sqlite_log as log_rows
from .base import (
    CLOCK_JOIN_SQL,
    EVERY_REQUEST,
    STATUS_SQL,
    Clock,
    ClockWouldGoBack,
    FaultRule,
    Idempotency,
    IdempotencyMismatch,
    InsufficientCredits,
    JobPage,
    JobRecord,
    KeyRecord,
    NewJob,
    RequestCursor,
    RequestEntry,
    RequestFilter,
    SchemaTooNew,
    StorageFull,
    Store,
    StoreNotFound,
    Tenant,
    decode_plan,
    job_size,
    milestones,
    new_clock_id,
    new_fault_id,
    new_key_id,
)

log = logging.getLogger("pollable.store")

BUSY_TIMEOUT_MS = 10_000

#: The schema this code writes, kept in the file's ``PRAGMA user_version``. Version 1 is
#: the schema of every pollable before versioning (user_version 0: ``_create_schema``
#: brings even older ones up to it). ``MIGRATIONS[n]`` takes a store from version ``n`` to
#: ``n + 1``, after ``_create_schema`` made the tables that were missing: a new table needs
#: no step, a change to an existing one does (and ``_create_schema`` must not index a
#: column that only the step adds). A store newer than this code is refused.
SCHEMA_VERSION = 2


def _count_stored(db: sqlite_utils.Database) -> None:
    """1 -> 2: ``tenants.stored``, what each tenant stores (its jobs, items, clocks, keys
    and ``seq:`` counters), counted once. A version 1 store written after the bounds but
    before this step already has the column, counted and kept since: left as it is."""
    if "stored" not in db.table("tenants").columns_dict:
        db.table("tenants").add_column("stored", int)
    db.execute(
        "UPDATE tenants SET stored = "
        "(SELECT count(*) FROM jobs WHERE tenant_id = tenants.id) "
        "+ (SELECT count(*) FROM items WHERE tenant_id = tenants.id) "
        "+ (SELECT count(*) FROM clocks WHERE tenant_id = tenants.id) "
        "+ (SELECT count(*) FROM api_keys WHERE tenant_id = tenants.id) "
        "+ (SELECT count(*) FROM sequences WHERE tenant_id = tenants.id AND name LIKE 'seq:%') "
        "WHERE stored IS NULL"
    )


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _count_stored}

#: SQLite's primary result codes that say the file cannot be used right now, not that the
#: SQL is wrong: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL. A store
#: failing so answers ``Unavailable`` (503), and serves again once the cause is gone.
_UNAVAILABLE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
#: Linux's ``FS_IOC_GETFLAGS``, and the inode flags (immutable, append-only) under which a
#: write to a shared mapping of the file faults with SIGBUS (see ``_check_files``).
_FS_IOC_GETFLAGS = 0x80086601
_UNWRITABLE_FLAGS = 0x10 | 0x20
_CHUNK = 500

_JOB_COLUMNS = (
    "tenant_id, api, kind, collection, attrs, plan, events, serial_base, credits_remaining, "
    "clock_id"
)
#: The same, for queries that join other tables to ``jobs``.
_JOBS_DOT_COLUMNS = ", ".join(f"jobs.{column}" for column in _JOB_COLUMNS.split(", "))
_CLOCK_COLUMNS = "id, tenant_id, name, now, created_at"


_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
_STAGES: dict[str | None, Stage | None] = {stage.value: stage for stage in Stage}
_STAGES[None] = None
T = TypeVar("T")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


#: The most creates the writer commits in one transaction.
CREATE_BATCH = 256


class _TransactionLost(Exception):
    """A create's error rolled back the whole batch's transaction, not only its savepoint."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


class _PendingCreate:
    """A ``create_job`` waiting for the writer thread: what to store, and whom to answer."""

    __slots__ = ("cap", "future", "job", "loop", "tenant_id")

    def __init__(
        self,
        tenant_id: str,
        job: NewJob,
        cap: int | None,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[tuple[JobRecord, bool]],
    ) -> None:
        self.tenant_id, self.job, self.cap, self.loop, self.future = (
            tenant_id,
            job,
            cap,
            loop,
            future,
        )

    def answer(self, outcome: tuple[JobRecord, bool] | BaseException) -> None:
        """From the writer thread, once the outcome is final (committed, or refused)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome: tuple[JobRecord, bool] | BaseException) -> None:
        if self.future.done():  # the caller was cancelled
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class SQLiteStore(Store):
    """Reads run inline on one connection; writes run on a dedicated writer thread with a
    connection of its own, so a long write (a 100,000-file job) never stalls the event
    loop, and WAL lets the reads go on meanwhile, seeing only committed data."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = str(path)
        #: Whether opening may create the file (and its folders) when there is none.
        self.create = create
        if self.path in ("", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be shared: use memory://")
        self._reader: sqlite3.Connection | None = None
        #: The request log's own connection and thread (see ``append_requests``).
        self._log: sqlite3.Connection | None = None
        self._log_executor: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        #: Creates waiting for the writer thread to commit them together (``create_job``).
        self._creates: list[_PendingCreate] = []
        self._creates_lock = threading.Lock()
        self._creates_scheduled = False
        #: The ``-shm`` file SQLite maps, opened read-only to read its inode flags.
        self._shm: int | None = None

    # -- connection and schema ----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> None:
        """Switch to WAL. SQLite answers "locked" at once, without its busy handler, when
        another process holds the lock of a new file, so wait here as the handler would."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    async def open(self) -> None:
        if self._reader is not None:
            return
        if not self.create and not Path(self.path).exists():
            raise StoreNotFound(f"no store at {self.path}")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        try:
            self._transaction(lambda db: self._migrate(sqlite_utils.Database(db)))
        except BaseException:
            self._writer.close()
            self._writer = None
            raise
        self._reader = self._connect()
        self._log = self._connect()
        self._log.execute("PRAGMA synchronous = NORMAL")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._log_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-log")
        self._shm = self._open_shm()

    def _open_shm(self) -> int | None:
        """A descriptor of the ``-shm`` file the connections map (the same inode while they
        are open), if its flags can be read here (Linux, a filesystem that keeps them)."""
        try:
            fd = os.open(self.path + "-shm", os.O_RDONLY)
        except OSError:
            return None
        try:
            self._flags(fd)
        except OSError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _flags(fd: int) -> int:
        import fcntl

        flags: int = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))[:4])[0]
        return flags

    def _check_files(self) -> None:
        """Refuse (``Unavailable``) while the ``-shm`` file is immutable or append-only.

        SQLite maps it and writes the WAL index through the mapping, on reads as well as
        writes; once the file is made immutable (``chattr +i``) such a write faults and the
        kernel kills the process with SIGBUS: no exception, no log, a server down. The flags
        are read (one ``ioctl``) before every store call, every transaction and every
        ``COMMIT``, so SQLite is not reached while they are set. A change that lands during
        a ``COMMIT`` already under way (its fsync, a few milliseconds) can still fault:
        ``serve`` then says so (``faulthandler``) rather than dying silently.
        """
        if self._shm is None:
            return
        try:
            flags = self._flags(self._shm)
        except OSError:
            return
        if flags & _UNWRITABLE_FLAGS:
            raise Unavailable("the store's files cannot be written")

    async def close(self) -> None:
        if self._shm is not None:
            os.close(self._shm)
            self._shm = None
        for executor in (self._executor, self._log_executor):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._log_executor = None
        for conn in (self._reader, self._writer, self._log):
            if conn is not None:
                conn.close()
        self._reader = self._writer = self._log = None

    def _migrate(self, db: sqlite_utils.Database) -> None:
        """Create the schema, or bring a store written by an older pollable up to
        ``SCHEMA_VERSION``, one step at a time, in the open's one transaction."""
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(self.path, version, SCHEMA_VERSION)
        fresh = not db.table("tenants").exists()
        self._create_schema(db)
        for step in range(SCHEMA_VERSION if fresh else max(version, 1), SCHEMA_VERSION):
            MIGRATIONS[step](db)
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _create_schema(db: sqlite_utils.Database) -> None:
        tenants = {
            "id": str,
            "name": str,
            "organization_id": str,
            "credits": float,
            "default_scenario": str,
            "created_at": float,
            "initial_credits": float,
            "stored": int,
        }
        db.table("tenants").create(
            tenants, pk="id", not_null={"name", "organization_id", "credits"}, if_not_exists=True
        )
        db.table("tenants").create_index(["name"], unique=True, if_not_exists=True)
        keys = {
            "api": str,
            "key_hash": str,
            "tenant_id": str,
            "label": str,
            "id": str,
            "environment": str,
            "created_at": float,
            "clock_id": str,
            "revoked_at": float,
        }
        db.table("api_keys").create(
            keys,
            pk=("api", "key_hash"),
            not_null={"tenant_id"},
            foreign_keys=[("tenant_id", "tenants", "id")],
            if_not_exists=True,
        )
        # Stores written before these columns existed (and before versions) get them (and
        # key ids) on open; ``stored`` came later, with version 2: its step adds it.
        for table, columns in (("tenants", tenants), ("api_keys", keys)):
            for name, kind in columns.items():
                if name not in db.table(table).columns_dict and name != "stored":
                    db.table(table).add_column(name, kind)
        for (rowid,) in db.execute("SELECT rowid FROM api_keys WHERE id IS NULL").fetchall():
            db.execute("UPDATE api_keys SET id = ? WHERE rowid = ?", (new_key_id(), rowid))
        db.execute("UPDATE tenants SET initial_credits = credits WHERE initial_credits IS NULL")
        db.table("api_keys").create_index(["id"], unique=True, if_not_exists=True)
        db.table("api_keys").create_index(["tenant_id"], if_not_exists=True)
        jobs = {
            "tenant_id": str,
            "job_id": str,
            "api": str,
            "kind": str,
            "collection": str,
            "attrs": str,
            "plan": str,
            "events": str,
            "serial_base": int,
            "credits_remaining": float,
            "created_at": float,
            "started_at": float,
            "ends_at": float,
            "final_status": str,
            "clock_id": str,
        }
        db.table("jobs").create(
            jobs,
            pk=("tenant_id", "job_id"),
            not_null={"api", "kind", "plan", "events", "serial_base", "created_at"},
            foreign_keys=[("tenant_id", "tenants", "id")],
            if_not_exists=True,
        )
        db.table("jobs").create_index(["tenant_id", "api", "created_at"], if_not_exists=True)
        db.table("jobs").create_index(["tenant_id", "collection"], if_not_exists=True)
        if "clock_id" not in db.table("jobs").columns_dict:  # a store from before clocks
            db.table("jobs").add_column("clock_id", str)
        db.table("jobs").create_index(["tenant_id", "clock_id"], if_not_exists=True)
        db.table("clocks").create(
            {"tenant_id": str, "id": str, "name": str, "now": float, "created_at": float},
            pk=("tenant_id", "id"),
            not_null={"now"},
            foreign_keys=[("tenant_id", "tenants", "id")],
            if_not_exists=True,
        )
        db.table("items").create(
            {
                "tenant_id": str,
                "job_id": str,
                "ordinal": int,
                "key": str,
                "outcome": str,
                "units": int,
                "fail_stage": str,
                "error_code": str,
                "error_message": str,
                "extra": str,
                "cum_failed": int,
                "cum_skipped": int,
                "cum_units": int,
                # When the item completes, per plan; NULL for items that never do.
                "completes_at": float,
            },
            pk=("tenant_id", "job_id", "ordinal"),
            not_null={"key", "outcome", "units"},
            if_not_exists=True,
        )
        SQLiteStore._upgrade(db)
        db.table("items").create_index(["tenant_id", "key"], if_not_exists=True)
        db.table("idempotency").create(
            {"tenant_id": str, "key": str, "fingerprint": str, "job_id": str},
            pk=("tenant_id", "key"),
            if_not_exists=True,
        )
        db.table("sequences").create(
            {"tenant_id": str, "name": str, "value": int},
            pk=("tenant_id", "name"),
            if_not_exists=True,
        )
        db.table("meta").create({"name": str, "value": str}, pk="name", if_not_exists=True)
        # Fault rules: ``seq`` keeps the order they were created in; ``matched`` counts the
        # requests each matched, incremented by one guarded UPDATE.
        db.execute(
            "CREATE TABLE IF NOT EXISTS faults (seq INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL"
            ", id TEXT NOT NULL, spec TEXT NOT NULL, created_at REAL NOT NULL"
            ", matched INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_faults_tenant ON faults (tenant_id, id)")
        # The request log: tenant_id '' is the log of requests no tenant was found for.
        db.table("requests").create(
            {column: kind for column, kind in log_rows.COLUMNS},
            pk="id",
            not_null={"tenant_id", "at", "method", "path", "query", "status"},
            if_not_exists=True,
        )
        db.table("requests").create_index(["tenant_id", "at", "id"], if_not_exists=True)
        db.table("requests").create_index(["at"], if_not_exists=True)
        db.execute(
            "CREATE INDEX IF NOT EXISTS idx_requests_tenant_job "
            "ON requests (tenant_id, job_id, at) WHERE job_id IS NOT NULL"
        )

    @staticmethod
    def _upgrade(db: sqlite_utils.Database) -> None:
        """Stores made before items had ``completes_at``: add it, computed from each plan,
        and recompute each job's milestones (a job in which every item failed used to end
        ``completed_with_failures``; it ends ``failed``)."""
        items = db.table("items")
        if "completes_at" in items.columns_dict:
            return
        items.add_column("completes_at", float)
        conn = db.conn
        jobs = conn.execute("SELECT tenant_id, job_id, plan, events FROM jobs").fetchall()
        for tenant_id, job_id, data, events in jobs:
            plan = plan_from_data(orjson.loads(data))
            started_at, ends_at, final = milestones(
                plan, [event_from_data(e) for e in orjson.loads(events)]
            )
            conn.execute(
                "UPDATE jobs SET started_at = ?, ends_at = ?, final_status = ? "
                "WHERE tenant_id = ? AND job_id = ?",
                (started_at, ends_at, final.value, tenant_id, job_id),
            )
            ordinals = conn.execute(
                "SELECT ordinal FROM items "
                "WHERE tenant_id = ? AND job_id = ? AND outcome = 'completed'",
                (tenant_id, job_id),
            ).fetchall()
            conn.executemany(
                "UPDATE items SET completes_at = ? "
                "WHERE tenant_id = ? AND job_id = ? AND ordinal = ?",
                ((item_window(plan, o)[1], tenant_id, job_id, o) for (o,) in ordinals),
            )

    @property
    def _db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the store is not open")
        return self._reader

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """One write transaction, taking the write lock up front (no upgrade deadlocks)."""
        conn = self._writer
        if conn is None:
            raise RuntimeError("the store is not open")
        self._check_files()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            self._check_files()  # again: COMMIT writes the WAL index (see _check_files)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        return result

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        """Roll back whatever is left of a failed transaction, never masking its error.

        After SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM, SQLite may have rolled the
        transaction back itself; a ROLLBACK then fails, and raised, that failure would
        replace the error that matters. It is logged as secondary instead.
        """
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("ROLLBACK after a failed write failed too", exc_info=True)

    async def _off_loop(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a long read on the writer thread (outside any transaction), so it does not
        hold up the event loop."""
        if self._executor is None or self._writer is None:
            raise RuntimeError("the store is not open")
        writer = self._writer
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work, writer)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction, on the writer thread."""
        if self._executor is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work)

    # -- tenants and keys -------------------------------------------------------------

    @staticmethod
    def _tenant(row: tuple[Any, ...], has_fault_rules: bool | None = None) -> Tenant:
        return Tenant(
            row[0], row[1], row[2], row[3], row[4], row[5] or 0.0, row[6] or 0.0, row[7] or 0,
            has_fault_rules,
        )  # fmt: skip

    _TENANT_COLUMNS = (
        "id, name, organization_id, credits, default_scenario, created_at, initial_credits, stored"
    )
    _TENANT = f"SELECT {_TENANT_COLUMNS} FROM tenants"
    _KEY_COLUMNS = "id, tenant_id, api, environment, label, created_at, clock_id, revoked_at"

    @staticmethod
    def _key(row: tuple[Any, ...]) -> KeyRecord:
        return KeyRecord(row[0], row[1], row[2], row[3] or "", row[4], row[5] or 0.0, row[6],
                         row[7])  # fmt: skip

    async def create_tenant(
        self,
        name: str,
        *,
        organization_id: str,
        credits: float,
        default_scenario: str | None = None,
        created_at: float = 0.0,
    ) -> Tenant:
        tenant = Tenant(
            str(uuid.uuid4()), name, organization_id, credits, default_scenario, created_at,
            credits,
        )  # fmt: skip
        row = (tenant.id, name, organization_id, credits, default_scenario, created_at, credits, 0)
        try:
            await self._write(
                lambda db: db.execute(
                    f"INSERT INTO tenants ({self._TENANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"tenant {name!r} already exists") from None
        return tenant

    async def find_tenant(self, name: str) -> Tenant | None:
        row = self._db.execute(f"{self._TENANT} WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._tenant(row)

    async def get_tenant(self, tenant_id: str) -> Tenant:
        row = self._db.execute(f"{self._TENANT} WHERE id = ?", (tenant_id,)).fetchone()
        if row is None:
            raise NotFound("tenant not found")
        return self._tenant(row)

    async def count_tenants(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM tenants").fetchone()[0])

    async def set_default_scenario(self, tenant_id: str, scenario: str | None) -> Tenant:
        await self._write(
            lambda db: db.execute(
                "UPDATE tenants SET default_scenario = ? WHERE id = ?", (scenario, tenant_id)
            )
        )
        return await self.get_tenant(tenant_id)

    async def list_tenants(self, *, after: str | None = None, limit: int) -> list[Tenant]:
        rows = self._db.execute(
            f"{self._TENANT} WHERE id > ? ORDER BY id LIMIT ?", (after or "", limit)
        ).fetchall()
        return [self._tenant(row) for row in rows]

    async def set_credits(self, tenant_id: str, credits: float) -> Tenant:
        updated = await self._write(
            lambda db: (
                db.execute(
                    "UPDATE tenants SET credits = ?, initial_credits = ? WHERE id = ?",
                    (credits, credits, tenant_id),
                ).rowcount
            )
        )
        if not updated:
            raise NotFound("tenant not found")
        return await self.get_tenant(tenant_id)

    #: What a reset forgets, table by table (every one is keyed by tenant_id).
    _TENANT_HISTORY = ("items", "jobs", "idempotency", "sequences", "requests", "faults")

    def _forget(self, db: sqlite3.Connection, tenant_id: str) -> None:
        if db.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
            raise NotFound("tenant not found")
        for table in self._TENANT_HISTORY:
            db.execute(f"DELETE FROM {table} WHERE tenant_id = ?", (tenant_id,))
        db.execute("DELETE FROM clocks WHERE tenant_id = ?", (tenant_id,))
        db.execute("UPDATE api_keys SET clock_id = NULL WHERE tenant_id = ?", (tenant_id,))

    async def delete_tenant(self, tenant_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            self._forget(db, tenant_id)
            db.execute("DELETE FROM api_keys WHERE tenant_id = ?", (tenant_id,))
            db.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,))

        await self._write(delete)

    async def reset_tenant(self, tenant_id: str) -> None:
        def reset(db: sqlite3.Connection) -> None:
            self._forget(db, tenant_id)
            db.execute(
                "UPDATE tenants SET credits = initial_credits, "
                "stored = (SELECT count(*) FROM api_keys WHERE tenant_id = tenants.id) "
                "WHERE id = ?",
                (tenant_id,),
            )

        await self._write(reset)

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
        record = KeyRecord(new_key_id(), tenant_id, api, environment, label, created_at, clock_id)
        row = (api, key_hash, tenant_id, label, record.id, environment, created_at, clock_id)

        def insert(db: sqlite3.Connection) -> None:
            if clock_id is not None:
                self._get_clock(db, tenant_id, clock_id)
            self._count(db, tenant_id, 1, cap)
            db.execute(
                "INSERT INTO api_keys (api, key_hash, tenant_id, label, id, environment, "
                "created_at, clock_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        try:
            await self._write(insert)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise NotFound("tenant not found") from None
            raise Conflict("this key is already stored") from None
        return record

    _KEY_FOR = (
        "SELECT "
        + ", ".join(f"t.{c}" for c in _TENANT_COLUMNS.split(", "))
        + ", "
        + ", ".join(f"k.{c}" for c in _KEY_COLUMNS.split(", "))
        + ", EXISTS (SELECT 1 FROM faults f WHERE f.tenant_id = t.id)"
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        " WHERE k.api = ? AND k.key_hash = ? AND k.revoked_at IS NULL"
    )

    async def key_for(self, api: str, key_hash: str) -> tuple[Tenant, KeyRecord] | None:
        # Every authenticated request asks this: its SQL is built once.
        row = self._db.execute(self._KEY_FOR, (api, key_hash)).fetchone()
        if row is None:
            return None
        return self._tenant(row[:8], bool(row[16])), self._key(row[8:16])

    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        await self.get_tenant(tenant_id)
        rows = self._db.execute(
            f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id",
            (tenant_id,),
        ).fetchall()
        return [self._key(row) for row in rows]

    async def revoke_key(self, tenant_id: str, key_id: str, *, at: float) -> KeyRecord:
        def revoke(db: sqlite3.Connection) -> tuple[Any, ...] | None:
            db.execute(
                "UPDATE api_keys SET revoked_at = ? "
                "WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL",
                (at, tenant_id, key_id),
            )
            row: tuple[Any, ...] | None = db.execute(
                f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? AND id = ?",
                (tenant_id, key_id),
            ).fetchone()
            return row

        row = await self._write(revoke)
        if row is None:
            raise NotFound("key not found")
        return self._key(row)

    # -- fault rules --------------------------------------------------------------------

    _FAULT_COLUMNS = "id, tenant_id, spec, created_at, matched"

    @staticmethod
    def _fault(row: tuple[Any, ...]) -> FaultRule:
        return FaultRule(row[0], row[1], orjson.loads(row[2]), row[3], row[4])

    async def create_fault(
        self, tenant_id: str, spec: Mapping[str, Any], *, limit: int, created_at: float = 0.0
    ) -> FaultRule:
        rule = FaultRule(new_fault_id(), tenant_id, dict(spec), created_at)

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
                raise NotFound("tenant not found")
            (count,) = db.execute(
                "SELECT count(*) FROM faults WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
            if count >= limit:
                raise Conflict(f"a tenant has at most {limit} fault rules")
            db.execute(
                "INSERT INTO faults (id, tenant_id, spec, created_at) VALUES (?, ?, ?, ?)",
                (rule.id, tenant_id, orjson.dumps(rule.spec).decode(), created_at),
            )

        await self._write(insert)
        return rule

    async def list_faults(self, tenant_id: str) -> list[FaultRule]:
        rows = self._db.execute(
            f"SELECT {self._FAULT_COLUMNS} FROM faults WHERE tenant_id = ? ORDER BY seq",
            (tenant_id,),
        ).fetchall()
        return [self._fault(row) for row in rows]

    async def get_fault(self, tenant_id: str, fault_id: str) -> FaultRule:
        row = self._db.execute(
            f"SELECT {self._FAULT_COLUMNS} FROM faults WHERE tenant_id = ? AND id = ?",
            (tenant_id, fault_id),
        ).fetchone()
        if row is None:
            raise NotFound("fault rule not found")
        return self._fault(row)

    async def delete_fault(self, tenant_id: str, fault_id: str) -> None:
        deleted = await self._write(
            lambda db: (
                db.execute(
                    "DELETE FROM faults WHERE tenant_id = ? AND id = ?", (tenant_id, fault_id)
                ).rowcount
            )
        )
        if not deleted:
            raise NotFound("fault rule not found")

    async def match_fault(self, tenant_id: str, fault_id: str) -> int:
        row = await self._write(
            lambda db: db.execute(
                "UPDATE faults SET matched = matched + 1 WHERE tenant_id = ? AND id = ? "
                "RETURNING matched",
                (tenant_id, fault_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound("fault rule not found")
        return int(row[0])

    # -- test clocks ----------------------------------------------------------------------

    @staticmethod
    def _get_clock(db: sqlite3.Connection, tenant_id: str, clock_id: str) -> Clock:
        row = db.execute(
            f"SELECT {_CLOCK_COLUMNS} FROM clocks WHERE tenant_id = ? AND id = ?",
            (tenant_id, clock_id),
        ).fetchone()
        if row is None:
            raise NotFound("clock not found")
        return Clock(*row)

    async def create_clock(
        self,
        tenant_id: str,
        *,
        now: float,
        name: str | None = None,
        created_at: float = 0.0,
        cap: int | None = None,
    ) -> Clock:
        clock = Clock(new_clock_id(), tenant_id, name, now, created_at)

        def create(db: sqlite3.Connection) -> None:
            self._count(db, tenant_id, 1, cap)
            db.execute(
                f"INSERT INTO clocks ({_CLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (clock.id, tenant_id, name, now, created_at),
            )

        await self._write(create)
        return clock

    @staticmethod
    def _count(
        db: sqlite3.Connection, tenant_id: str, size: int, cap: int | None, credits: float = 0.0
    ) -> float:
        """Count ``size`` more stored items and spend ``credits`` in one guarded ``UPDATE``
        (in the caller's write transaction, which holds the write lock: no other process
        can pass the same guard meanwhile); raise, for the caller's transaction to roll
        back, if the tenant is missing, cannot afford it or is full. Returns the balance."""
        row = db.execute(
            "UPDATE tenants SET credits = credits - :credits, stored = stored + :size "
            "WHERE id = :id AND (:credits <= 0 OR credits >= :credits) "
            "AND (:cap IS NULL OR stored + :size <= :cap) RETURNING credits",
            {"credits": credits, "size": size, "id": tenant_id, "cap": cap},
        ).fetchone()
        if row is not None:
            return float(row[0])
        found = db.execute("SELECT credits FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
        if found is None:
            raise NotFound("tenant not found")
        if credits > 0 and found[0] < credits:
            raise InsufficientCredits(credits, found[0])
        assert cap is not None
        raise StorageFull(cap)

    async def get_clock(self, tenant_id: str, clock_id: str) -> Clock:
        return self._get_clock(self._db, tenant_id, clock_id)

    async def list_clocks(
        self, tenant_id: str, *, after: str | None = None, limit: int
    ) -> list[Clock]:
        rows = self._db.execute(
            f"SELECT {_CLOCK_COLUMNS} FROM clocks WHERE tenant_id = ? AND id > ? "
            "ORDER BY id LIMIT ?",
            (tenant_id, after or "", limit),
        ).fetchall()
        return [Clock(*row) for row in rows]

    async def advance_clock(
        self, tenant_id: str, clock_id: str, *, to: float | None = None, by: float | None = None
    ) -> Clock:
        if (to is None) == (by is None):
            raise ValueError("advance a clock to an instant or by seconds")
        if by is not None and not by > 0:
            raise ValueError("a clock advances by a positive number of seconds")

        def advance(db: sqlite3.Connection) -> Clock:
            # One statement, in one write transaction: monotonic whoever else advances it.
            key = (tenant_id, clock_id)
            row = (
                db.execute(
                    f"UPDATE clocks SET now = now + ? WHERE tenant_id = ? AND id = ? "
                    f"RETURNING {_CLOCK_COLUMNS}",
                    (by, *key),
                ).fetchone()
                if by is not None
                else db.execute(
                    f"UPDATE clocks SET now = ? WHERE tenant_id = ? AND id = ? AND now <= ? "
                    f"RETURNING {_CLOCK_COLUMNS}",
                    (to, *key, to),
                ).fetchone()
            )
            if row is None:
                raise ClockWouldGoBack(self._get_clock(db, tenant_id, clock_id))
            return Clock(*row)

        return await self._write(advance)

    async def delete_clock(self, tenant_id: str, clock_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            self._get_clock(db, tenant_id, clock_id)
            bound = "SELECT job_id FROM jobs WHERE tenant_id = ? AND clock_id = ?"
            freed = 1  # the clock
            for table in ("items", "idempotency"):
                deleted = db.execute(
                    f"DELETE FROM {table} WHERE tenant_id = ? AND job_id IN ({bound})",
                    (tenant_id, tenant_id, clock_id),
                ).rowcount
                freed += deleted if table == "items" else 0
            freed += db.execute(
                "DELETE FROM jobs WHERE tenant_id = ? AND clock_id = ?", (tenant_id, clock_id)
            ).rowcount
            db.execute("UPDATE tenants SET stored = stored - ? WHERE id = ?", (freed, tenant_id))
            db.execute(
                "UPDATE api_keys SET clock_id = NULL WHERE tenant_id = ? AND clock_id = ?",
                (tenant_id, clock_id),
            )
            db.execute("DELETE FROM clocks WHERE tenant_id = ? AND id = ?", (tenant_id, clock_id))

        await self._write(delete)

    # -- jobs ---------------------------------------------------------------------------

    @staticmethod
    def _record(row: tuple[Any, ...]) -> JobRecord:
        tenant_id, api, kind, collection, attrs, plan, events, serial_base, credits, clock = row
        return JobRecord(
            tenant_id=tenant_id,
            api=api,
            kind=kind,
            collection=collection,
            attrs=orjson.loads(attrs),
            plan=decode_plan(plan),
            events=tuple(event_from_data(e) for e in orjson.loads(events)),
            serial_base=serial_base,
            credits_remaining=credits,
            clock_id=clock,
        )

    async def create_job(
        self, tenant_id: str, job: NewJob, *, cap: int | None = None
    ) -> tuple[JobRecord, bool]:
        """Group commit: a create joins the creates waiting for the writer thread, which
        stores them in one transaction (each in a savepoint of its own, so one refused
        rolls back only itself) and commits them with one fsync; each is answered once
        that commit returned. Under concurrency the fsync, not the work, bounds creates a
        second: this shares it."""
        executor = self._executor
        if executor is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        pending = _PendingCreate(tenant_id, job, cap, loop, loop.create_future())
        with self._creates_lock:
            self._creates.append(pending)
            first = not self._creates_scheduled
            self._creates_scheduled = True
        if first:
            try:
                executor.submit(self._commit_creates)
            except RuntimeError:  # the store closed meanwhile: no create will be stored
                with self._creates_lock:
                    stranded, self._creates = self._creates, []
                    self._creates_scheduled = False
                for other in stranded:
                    other.answer(RuntimeError("the store is not open"))
        return await pending.future

    def _commit_creates(self) -> None:
        """On the writer thread: store the creates waiting now, at most ``CREATE_BATCH``,
        and answer each; more waiting are the next call's, queued behind other writes."""
        with self._creates_lock:
            batch = self._creates[:CREATE_BATCH]
            del self._creates[:CREATE_BATCH]
            more = bool(self._creates)
            self._creates_scheduled = more
        if more:
            executor = self._executor
            try:
                assert executor is not None
                executor.submit(self._commit_creates)
            except (AssertionError, RuntimeError):  # closing: finish them on this call
                with self._creates_lock:
                    batch += self._creates
                    self._creates.clear()
                    self._creates_scheduled = False
        try:
            outcomes = self._create_batch(batch)
        except BaseException as exc:  # nothing was stored; nobody may wait for ever
            for pending in batch:
                pending.answer(exc)
            raise
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.answer(outcome)

    def _create_batch(
        self, batch: Sequence[_PendingCreate]
    ) -> list[tuple[JobRecord, bool] | BaseException]:
        """Each create's record or error, all committed in one transaction. A create that
        SQLite cannot undo alone (its error rolled the whole transaction back: a full disk,
        an I/O error) gets that error, and the others are stored again without it. If the
        transaction fails as a whole (to begin, or to commit), nothing of it was stored and
        every create gets that error."""
        outcomes: list[tuple[JobRecord, bool] | BaseException] = []

        def work(db: sqlite3.Connection) -> None:
            for index, pending in enumerate(batch):
                db.execute("SAVEPOINT create_job")
                try:
                    outcome: tuple[JobRecord, bool] | BaseException = self._create_job(
                        db, pending.tenant_id, pending.job, pending.cap
                    )
                except Exception as exc:
                    if not db.in_transaction:
                        raise _TransactionLost(index, exc) from exc
                    db.execute("ROLLBACK TO create_job")
                    outcome = exc
                db.execute("RELEASE create_job")
                outcomes.append(outcome)

        try:
            self._transaction(work)
        except _TransactionLost as lost:
            rest = [*batch[: lost.index], *batch[lost.index + 1 :]]
            answers = self._create_batch(rest) if rest else []
            answers.insert(lost.index, lost.error)
            return answers
        except Exception as exc:
            return [exc, *(copy.copy(exc) for _ in batch[1:])]
        return outcomes

    async def idempotent_job(self, tenant_id: str, idempotency: Idempotency) -> JobRecord | None:
        return self._idempotent_job(self._db, tenant_id, idempotency)

    def _idempotent_job(
        self, db: sqlite3.Connection, tenant_id: str, idempotency: Idempotency
    ) -> JobRecord | None:
        seen = db.execute(
            "SELECT fingerprint, job_id FROM idempotency WHERE tenant_id = ? AND key = ?",
            (tenant_id, idempotency.key),
        ).fetchone()
        if seen is None:
            return None
        if seen[0] != idempotency.fingerprint:
            raise IdempotencyMismatch("idempotency key reused with a different body")
        return self._get_job(db, tenant_id, seen[1])

    def _create_job(
        self, db: sqlite3.Connection, tenant_id: str, job: NewJob, cap: int | None
    ) -> tuple[JobRecord, bool]:
        plan = job.plan
        if job.clock_id is not None:
            self._get_clock(db, tenant_id, job.clock_id)
        if job.idempotency is not None:
            earlier = self._idempotent_job(db, tenant_id, job.idempotency)
            if earlier is not None:
                return earlier, False
            db.execute(
                "INSERT INTO idempotency VALUES (?, ?, ?, ?)",
                (tenant_id, job.idempotency.key, job.idempotency.fingerprint, plan.job_id),
            )
        remaining = self._count(db, tenant_id, job_size(job), cap, job.credits)
        serial_base = self._advance(db, tenant_id, "item", len(job.items)) - len(job.items)
        started_at, ends_at, final = milestones(plan)
        try:
            db.execute(
                "INSERT INTO jobs (tenant_id, job_id, api, kind, collection, attrs, plan, events, "
                "serial_base, credits_remaining, created_at, started_at, ends_at, final_status, "
                "clock_id) VALUES (?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    plan.job_id,
                    job.api,
                    job.kind,
                    job.collection,
                    _dumps(dict(job.attrs)),
                    _dumps(plan_to_data(plan)),
                    serial_base,
                    remaining,
                    plan.created_at,
                    started_at,
                    ends_at,
                    final.value,
                    job.clock_id,
                ),
            )
        except sqlite3.IntegrityError:
            raise Conflict("job id already exists") from None
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self._item_rows(plan, tenant_id, job.items),
        )
        record = JobRecord(
            tenant_id,
            job.api,
            job.kind,
            job.collection,
            dict(job.attrs),
            plan,
            (),
            serial_base,
            remaining,
            job.clock_id,
        )
        return record, True

    @staticmethod
    def _item_rows(plan: Plan, tenant_id: str, items: Sequence[Item]) -> Iterator[tuple[Any, ...]]:
        for item, tally in zip(items, running_tallies(items), strict=True):
            yield (
                tenant_id,
                plan.job_id,
                item.ordinal,
                item.key,
                item.outcome.value,
                item.units,
                item.fail_stage.value if item.fail_stage else None,
                item.error_code,
                item.error_message,
                _dumps(dict(item.extra)) if item.extra else None,
                tally.failed,
                tally.skipped,
                tally.units,
                completes_at(plan, item),
            )

    def _get_job(self, db: sqlite3.Connection, tenant_id: str, job_id: str) -> JobRecord:
        row = db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE tenant_id = ? AND job_id = ?",
            (tenant_id, job_id),
        ).fetchone()
        if row is None:
            raise NotFound("job not found")
        return self._record(row)

    async def get_job(self, tenant_id: str, job_id: str) -> JobRecord:
        return self._get_job(self._db, tenant_id, job_id)

    async def items(
        self, tenant_id: str, job_id: str, *, after: int = -1, limit: int
    ) -> list[Item]:
        rows = self._db.execute(
            "SELECT ordinal, key, outcome, units, fail_stage, error_code, error_message, extra "
            "FROM items WHERE tenant_id = ? AND job_id = ? AND ordinal > ? "
            "ORDER BY ordinal LIMIT ?",
            (tenant_id, job_id, after, limit),
        ).fetchall()
        return [
            Item(
                ordinal,
                key,
                _OUTCOMES[outcome],
                units,
                _STAGES[stage],
                code,
                message,
                orjson.loads(extra) if extra else NO_EXTRA,
            )
            for ordinal, key, outcome, units, stage, code, message, extra in rows
        ]

    async def tally(self, tenant_id: str, job_id: str, k: int) -> Tally:
        # The running totals of the last item before ``k``: one step down the primary key.
        row = self._db.execute(
            "SELECT cum_failed, cum_skipped, cum_units FROM items "
            "WHERE tenant_id = ? AND job_id = ? AND ordinal < ? ORDER BY ordinal DESC LIMIT 1",
            (tenant_id, job_id, k),
        ).fetchone()
        return Tally() if row is None else Tally(*row)

    async def append_event(
        self, tenant_id: str, job_id: str, event: Event, *, refund: float = 0.0
    ) -> tuple[JobRecord, bool]:
        return await self._write(
            lambda db: self._append_event(db, tenant_id, job_id, event, refund)
        )

    def _append_event(
        self, db: sqlite3.Connection, tenant_id: str, job_id: str, event: Event, refund: float
    ) -> tuple[JobRecord, bool]:
        # The transaction holds the write lock from its start (BEGIN IMMEDIATE), so no
        # other connection, in this process or another, can append between check and write.
        record = self._get_job(db, tenant_id, job_id)
        if not applies(record.plan, record.events, event):
            return record, False
        record = replace(record, events=(*record.events, event))
        started_at, ends_at, final = milestones(record.plan, record.events)
        db.execute(
            "UPDATE jobs SET events = ?, started_at = ?, ends_at = ?, final_status = ? "
            "WHERE tenant_id = ? AND job_id = ?",
            (
                _dumps([event_to_data(e) for e in record.events]),
                started_at,
                ends_at,
                final.value,
                tenant_id,
                job_id,
            ),
        )
        if refund:
            db.execute("UPDATE tenants SET credits = credits + ? WHERE id = ?", (refund, tenant_id))
        return record, True

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
        source = "jobs"
        where = "jobs.tenant_id = :tenant"
        params: dict[str, Any] = {"tenant": tenant_id, "now": now}
        if api is not None:
            where += " AND jobs.api = :api"
            params["api"] = api
        if clock_id is not None:
            where += " AND jobs.clock_id = :clock"
            params["clock"] = clock_id
        if collection is not None:
            where += " AND jobs.collection = :collection"
            params["collection"] = collection
        if status is not None:
            source = f"jobs {CLOCK_JOIN_SQL}"
            where += f" AND ({STATUS_SQL}) = :status"
            params["status"] = status.value
        total = self._db.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchone()[
            0
        ]
        rows = self._db.execute(
            f"SELECT {_JOBS_DOT_COLUMNS} FROM {source} WHERE {where} "
            "ORDER BY jobs.created_at DESC, jobs.rowid DESC LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        ).fetchall()
        return JobPage([self._record(row) for row in rows], int(total))

    async def indexed_keys(
        self, tenant_id: str, collection: str, keys: Sequence[str], *, at: float
    ) -> set[str]:
        def lookup(db: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ", ".join("?" * len(chunk))
                # ``ends_at`` is when the job ends given its events: a cancel or failure
                # before an item's completion means the item was never indexed.
                rows = db.execute(
                    "SELECT DISTINCT i.key FROM items i JOIN jobs j "
                    "ON j.tenant_id = i.tenant_id AND j.job_id = i.job_id "
                    f"WHERE i.tenant_id = ? AND i.key IN ({marks}) AND i.completes_at <= ? "
                    "AND i.completes_at <= j.ends_at AND j.collection = ?",
                    (tenant_id, *chunk, at, collection),
                )
                found.update(row[0] for row in rows)
            return found

        # Up to 100,000 keys: a long read, run off the event loop like a write.
        return await self._off_loop(lookup)

    @staticmethod
    def _advance(db: sqlite3.Connection, tenant_id: str, name: str, by: int) -> int:
        row = db.execute(
            "INSERT INTO sequences VALUES (?, ?, ?) "
            "ON CONFLICT (tenant_id, name) DO UPDATE SET value = value + excluded.value "
            "RETURNING value",
            (tenant_id, name, by),
        ).fetchone()
        return int(row[0])

    async def next_sequence(self, tenant_id: str, name: str, *, cap: int | None = None) -> int:
        def advance(db: sqlite3.Connection) -> int:
            value = self._advance(db, tenant_id, f"seq:{name}", 1)
            if value == 1:  # a new counter
                self._count(db, tenant_id, 1, cap)
            return value

        return await self._write(advance)

    # -- request log --------------------------------------------------------------------

    async def append_requests(self, entries: Sequence[RequestEntry]) -> None:
        """A batch in one transaction, on the log's own thread and connection.

        The event loop only turns entries into rows; the inserts (a few multi-row
        statements), the commit and any checkpoint run on the log's thread, whose
        ``execute`` calls release the GIL while SQLite works, so the loop goes on serving.
        (``executemany`` would hand the GIL back and forth with the loop at every row, which
        cost more than the insert. ``json_each`` over one JSON array of rows was tried: on
        SQLite 3.40 each ``->>`` parses its row again, three times slower for 12 KB bodies.)
        Commits are not fsynced (``synchronous=NORMAL``: an entry is never acknowledged to
        anyone; WAL keeps the file consistent).
        """
        rows = [log_rows.to_row(entry) for entry in entries]
        if len(rows) <= log_rows.ROWS_PER_INSERT:  # one statement: a transaction of its own
            await self._on_log_thread(lambda db: self._insert_requests(db, rows), begin=False)
        else:
            await self._on_log_thread(lambda db: self._insert_requests(db, rows))

    @staticmethod
    def _insert_requests(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        one = "(" + ", ".join("?" * len(log_rows.COLUMNS)) + ")"
        for start in range(0, len(rows), log_rows.ROWS_PER_INSERT):
            chunk = rows[start : start + log_rows.ROWS_PER_INSERT]
            db.execute(
                f"INSERT INTO requests ({log_rows.NAMES}) VALUES " + ", ".join([one] * len(chunk)),
                [value for row in chunk for value in row],
            )

    async def _on_log_thread(
        self, work: Callable[[sqlite3.Connection], T], *, begin: bool = True
    ) -> T:
        """``work`` on the log's thread and connection, in one transaction (with ``begin``
        False, ``work`` is a single statement, which SQLite runs as a transaction of its own:
        each ``execute`` hands the GIL to the loop and back, so fewer is faster)."""
        if self._log_executor is None or self._log is None:
            raise RuntimeError("the store is not open")
        conn = self._log

        def transaction() -> T:
            self._check_files()
            if not begin:
                return work(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                self._check_files()
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
            return result

        return await asyncio.get_running_loop().run_in_executor(self._log_executor, transaction)

    async def list_requests(
        self,
        tenant_id: str | None,
        where: RequestFilter = EVERY_REQUEST,
        *,
        before: RequestCursor | None = None,
        limit: int,
    ) -> list[RequestEntry]:
        sql, params = log_rows.where_sql(tenant_id, where)
        if before is not None:
            sql += " AND (at, id) < (:before_at, :before_id)"
            params.update(before_at=before[0], before_id=before[1])
        rows = self._db.execute(
            f"SELECT {log_rows.NAMES} FROM requests WHERE {sql} "
            "ORDER BY at DESC, id DESC LIMIT :limit",
            {**params, "limit": limit},
        ).fetchall()
        return [log_rows.from_row(row) for row in rows]

    async def count_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        sql, params = log_rows.where_sql(tenant_id, where)
        return int(
            self._db.execute(f"SELECT count(*) FROM requests WHERE {sql}", params).fetchone()[0]
        )

    async def get_request(self, tenant_id: str | None, request_id: str) -> RequestEntry:
        row = self._db.execute(
            f"SELECT {log_rows.NAMES} FROM requests WHERE id = ? AND tenant_id = ?",
            (request_id, tenant_id or ""),
        ).fetchone()
        if row is None:
            raise NotFound("request not found")
        return log_rows.from_row(row)

    async def delete_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        sql, params = log_rows.where_sql(tenant_id, where)
        return await self._write(
            lambda db: int(db.execute(f"DELETE FROM requests WHERE {sql}", params).rowcount)
        )

    async def prune_requests(
        self, *, keep: int, older_than: float, tenants: Collection[str | None] | None = None
    ) -> int:
        def prune(db: sqlite3.Connection) -> int:
            deleted = int(db.execute("DELETE FROM requests WHERE at < ?", (older_than,)).rowcount)
            logs = (
                [row[0] for row in db.execute("SELECT DISTINCT tenant_id FROM requests")]
                if tenants is None
                else [tenant_id or "" for tenant_id in tenants]
            )
            for log in logs:
                # The newest entry past the ``keep`` newest: it and everything older go.
                bound = db.execute(
                    "SELECT at, id FROM requests WHERE tenant_id = ? "
                    "ORDER BY at DESC, id DESC LIMIT 1 OFFSET ?",
                    (log, keep),
                ).fetchone()
                if bound is not None:
                    deleted += db.execute(
                        "DELETE FROM requests WHERE tenant_id = ? AND (at, id) <= (?, ?)",
                        (log, *bound),
                    ).rowcount
            return deleted

        # Like appends, on the log's own thread and connection (no fsync).
        return await self._on_log_thread(prune)

    async def meta(self, name: str, default: str) -> str:
        def first_write_wins(db: sqlite3.Connection) -> str:
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (name, default))
            return str(db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])

        return await self._write(first_write_wins)


def _unavailable_on_failure(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def guarded(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        self._check_files()
        try:
            return await method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            # Raised by SQLite itself, an error has its code; one raised by Python has none.
            code = getattr(exc, "sqlite_errorcode", None)
            if code is None or code & 0xFF not in _UNAVAILABLE_CODES:
                raise
            log.warning("the SQLite store failed: %s", exc)
            raise Unavailable("the store cannot read or write its file") from exc

    return guarded


# Every operation of the interface: a file that cannot be read or written (disk full, made
# read-only or immutable, locked past the busy timeout) is ``Unavailable``, never a crash.
for _name, _member in list(vars(SQLiteStore).items()):
    if (
        not _name.startswith("_")
        and _name not in ("open", "close")
        and inspect.iscoroutinefunction(_member)
    ):
        setattr(SQLiteStore, _name, _unavailable_on_failure(_member))
