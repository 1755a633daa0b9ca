"""``postgresql://user@host/db``: the store many servers share. psycopg 3, async, through
a ``psycopg_pool.AsyncConnectionPool``.

The URL is libpq's (``postgres://`` works too), plus two options of pollable's own, taken
out of the query before it reaches libpq: ``pool_size`` (most connections one process
opens; default ``DEFAULT_POOL_SIZE``) and ``connect_timeout`` (seconds to wait for a
connection; default ``DEFAULT_CONNECT_TIMEOUT``).

The schema mirrors SQLite's (``store.sqlite``), table for table, and is created on open
under an advisory lock, so servers starting together do not race. Its version is kept in
``schema_version``; ``MIGRATIONS`` takes an older store forward one step at a time, and a
store newer than this code is refused. Every text column collates bytewise (``"C"``), so
ids sort as they do in SQLite.

Atomicity comes from row locks and unique constraints, never from a process-local lock:
an idempotency key is claimed by ``INSERT ... ON CONFLICT DO NOTHING`` (a concurrent first
request waits for the winner's commit, then finds its job), a cancel reads the job
``FOR UPDATE``, a clock moves in one ``UPDATE``, and a tenant's credits and ``stored``
count are checked and moved by one guarded ``UPDATE ... RETURNING`` of its row in the
transaction that stores what they pay for (``_count``). A server that cannot reach the
database answers ``Unavailable`` (503) and the pool reconnects by itself once it is back.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.types.string import StrDumperUnknown, TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pollable.lifecycle.codec import event_from_data, event_to_data, plan_to_data
from pollable.lifecycle.engine import applies, completes_at
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

DEFAULT_POOL_SIZE = 10
DEFAULT_CONNECT_TIMEOUT = 5.0
#: How long the pool retries one lost connection before giving it up. Its retries back off
#: exponentially (1 s, 2 s, 4 s, ...): psycopg_pool's default of 300 s left a server 20 s
#: behind a database back from a 40 s outage. Given up, the connection is made afresh the
#: next time a request needs one, so a server is serving within about 2 s of the database.
RECONNECT_TIMEOUT = 5.0

#: The schema this code writes. ``MIGRATIONS[n]`` takes a store from version ``n`` to
#: ``n + 1``; a new table needs no step (``SCHEMA`` creates what is missing), a change to
#: an existing one does, with the version raised.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, Sequence[str]] = {}

TEXT = 'text COLLATE "C"'
REAL = "double precision"
_LOG_TYPES = {str: TEXT, float: REAL, int: "bigint"}

#: The whole schema, every statement idempotent. (``tenants.stored`` is in version 1: no
#: PostgreSQL store was written before it, unlike SQLite, where it is the step to 2.)
SCHEMA: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS tenants (
        id {TEXT} PRIMARY KEY, name {TEXT} NOT NULL UNIQUE, organization_id {TEXT} NOT NULL,
        credits {REAL} NOT NULL, default_scenario {TEXT}, created_at {REAL},
        initial_credits {REAL}, stored bigint NOT NULL DEFAULT 0)""",
    f"""CREATE TABLE IF NOT EXISTS clocks (
        tenant_id {TEXT} NOT NULL REFERENCES tenants (id), id {TEXT} NOT NULL, name {TEXT},
        now {REAL} NOT NULL, created_at {REAL}, PRIMARY KEY (tenant_id, id))""",
    f"""CREATE TABLE IF NOT EXISTS api_keys (
        api {TEXT} NOT NULL, key_hash {TEXT} NOT NULL,
        tenant_id {TEXT} NOT NULL REFERENCES tenants (id), label {TEXT},
        id {TEXT} NOT NULL UNIQUE, environment {TEXT}, created_at {REAL}, clock_id {TEXT},
        revoked_at {REAL}, PRIMARY KEY (api, key_hash))""",
    "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id)",
    f"""CREATE TABLE IF NOT EXISTS jobs (
        tenant_id {TEXT} NOT NULL REFERENCES tenants (id), job_id {TEXT} NOT NULL,
        api {TEXT} NOT NULL, kind {TEXT} NOT NULL, collection {TEXT}, attrs text,
        plan text NOT NULL, events text NOT NULL, serial_base bigint NOT NULL,
        credits_remaining {REAL}, created_at {REAL} NOT NULL, started_at {REAL},
        ends_at {REAL}, final_status {TEXT}, clock_id {TEXT},
        seq bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (tenant_id, job_id))""",
    "CREATE INDEX IF NOT EXISTS jobs_by_api ON jobs (tenant_id, api, created_at, seq)",
    "CREATE INDEX IF NOT EXISTS jobs_by_collection ON jobs (tenant_id, collection)",
    "CREATE INDEX IF NOT EXISTS jobs_by_clock ON jobs (tenant_id, clock_id)",
    f"""CREATE TABLE IF NOT EXISTS items (
        tenant_id {TEXT} NOT NULL, job_id {TEXT} NOT NULL, ordinal bigint NOT NULL,
        key {TEXT} NOT NULL, outcome {TEXT} NOT NULL, units bigint NOT NULL,
        fail_stage {TEXT}, error_code text, error_message text, extra text,
        cum_failed bigint, cum_skipped bigint, cum_units bigint, completes_at {REAL},
        PRIMARY KEY (tenant_id, job_id, ordinal))""",
    "CREATE INDEX IF NOT EXISTS items_by_key ON items (tenant_id, key)",
    f"""CREATE TABLE IF NOT EXISTS idempotency (
        tenant_id {TEXT} NOT NULL, key {TEXT} NOT NULL, fingerprint text NOT NULL,
        job_id {TEXT} NOT NULL, PRIMARY KEY (tenant_id, key))""",
    f"""CREATE TABLE IF NOT EXISTS sequences (
        tenant_id {TEXT} NOT NULL, name {TEXT} NOT NULL, value bigint NOT NULL,
        PRIMARY KEY (tenant_id, name))""",
    f"CREATE TABLE IF NOT EXISTS meta (name {TEXT} PRIMARY KEY, value text NOT NULL)",
    # The request log: tenant_id '' is the log of requests no tenant was found for.
    "CREATE TABLE IF NOT EXISTS requests ("
    + ", ".join(
        f"{name} {_LOG_TYPES[kind]}"
        + (" PRIMARY KEY" if name == "id" else "")
        + (" NOT NULL" if name in {"tenant_id", "at", "method", "path", "query", "status"} else "")
        for name, kind in log_rows.COLUMNS
    )
    + ")",
    "CREATE INDEX IF NOT EXISTS requests_by_tenant ON requests (tenant_id, at, id)",
    "CREATE INDEX IF NOT EXISTS requests_by_at ON requests (at)",
    "CREATE INDEX IF NOT EXISTS requests_by_job ON requests (tenant_id, job_id, at) "
    "WHERE job_id IS NOT NULL",
    # Fault rules: ``seq`` keeps the order they were created in; ``matched`` counts the
    # requests each matched, moved by one guarded UPDATE.
    f"""CREATE TABLE IF NOT EXISTS faults (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id {TEXT} NOT NULL,
        id {TEXT} NOT NULL, spec text NOT NULL, created_at {REAL} NOT NULL,
        matched bigint NOT NULL DEFAULT 0)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS faults_by_tenant ON faults (tenant_id, id)",
)

_JOB_COLUMNS = (
    "tenant_id, api, kind, collection, attrs, plan, events, serial_base, credits_remaining, "
    "clock_id"
)
_JOBS_DOT_COLUMNS = ", ".join(f"jobs.{column}" for column in _JOB_COLUMNS.split(", "))
_CLOCK_COLUMNS = "id, tenant_id, name, now, created_at"
_TENANT_COLUMNS = (
    "id, name, organization_id, credits, default_scenario, created_at, initial_credits, stored"
)
_TENANT = f"SELECT {_TENANT_COLUMNS} FROM tenants"
_KEY_COLUMNS = "id, tenant_id, api, environment, label, created_at, clock_id, revoked_at"
_KEY_FOR = (
    "SELECT "
    + ", ".join(f"t.{c}" for c in _TENANT_COLUMNS.split(", "))
    + ", "
    + ", ".join(f"k.{c}" for c in _KEY_COLUMNS.split(", "))
    + ", EXISTS (SELECT 1 FROM faults f WHERE f.tenant_id = t.id)"
    " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
    " WHERE k.api = %s AND k.key_hash = %s AND k.revoked_at IS NULL"
)
_INSERT_JOB = (
    "INSERT INTO jobs (tenant_id, job_id, api, kind, collection, attrs, plan, events, "
    "serial_base, credits_remaining, created_at, started_at, ends_at, final_status, "
    "clock_id) VALUES (%s, %s, %s, %s, %s, %s, %s, '[]', %s, %s, %s, %s, %s, %s, %s)"
)
#: The most creates one transaction stores (``PostgresStore.create_job``).
CREATE_BATCH = 256
#: A create waiting for the batch: tenant, job, cap, and the caller's future.
_PendingCreate = tuple[str, NewJob, "int | None", "asyncio.Future[tuple[JobRecord, bool]]"]
_ITEM_COLUMNS = (
    "tenant_id, job_id, ordinal, key, outcome, units, fail_stage, error_code, error_message, "
    "extra, cum_failed, cum_skipped, cum_units, completes_at"
)
#: What a reset forgets, table by table (every one is keyed by tenant_id).
_TENANT_HISTORY = ("items", "jobs", "idempotency", "sequences", "requests", "faults")

_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
_STAGES: dict[str | None, Stage | None] = {stage.value: stage for stage in Stage}
_STAGES[None] = None
#: ``pg_advisory_xact_lock`` key held while the schema is created or migrated.
_SCHEMA_LOCK = 0x706F6C6C61626C65  # "pollable"

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def named(sql: str) -> str:
    """SQLite's ``:name`` parameters (the SQL shared through ``store.base`` and
    ``store.sqlite_log``) as psycopg's ``%(name)s``."""
    return _NAMED.sub(r"%(\1)s", sql)


_STATUS = named(STATUS_SQL)


#: PostgreSQL text cannot hold NUL, which SQLite stores (a job id ``%00`` in a URL, a body
#: in the request log). Text goes in with NUL as ``_MARK`` + "0" (and ``_MARK`` itself as
#: ``_MARK`` + "m", a private-use character nothing real contains), and comes out as it was.
_MARK = "\ue000"
_UNESCAPE = re.compile(_MARK + "(.)", re.DOTALL)


def _escape(text: str) -> str:
    if "\x00" not in text and _MARK not in text:
        return text
    return text.replace(_MARK, _MARK + "m").replace("\x00", _MARK + "0")


def _unescape(text: str) -> str:
    if _MARK not in text:
        return text
    return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "0" else _MARK, text)


class _NulSafeDumper(StrDumperUnknown):
    def dump(self, obj: str) -> Any:
        return super().dump(_escape(obj))


class _NulSafeLoader(TextLoader):
    def load(self, data: Any) -> str:
        return _unescape(str(super().load(data)))


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_dumper(str, _NulSafeDumper)
    conn.adapters.register_loader("text", _NulSafeLoader)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def split_url(url: str) -> tuple[str, int, float]:
    """The libpq URL, the pool size and the connect timeout of a store URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {"pool_size": str(DEFAULT_POOL_SIZE), "connect_timeout": str(DEFAULT_CONNECT_TIMEOUT)}
    rest = []
    for name, value in query:
        if name in options:
            options[name] = value
        else:
            rest.append((name, value))
    try:
        size, timeout = int(options["pool_size"]), float(options["connect_timeout"])
    except ValueError:
        raise ValueError(f"pool_size and connect_timeout must be numbers in {url!r}") from None
    if size < 1 or not timeout > 0:
        raise ValueError(f"pool_size must be at least 1 and connect_timeout positive: {url!r}")
    return urlunsplit(parts._replace(query=urlencode(rest))), size, timeout


class PostgresStore(Store):
    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.conninfo, self.pool_size, self.connect_timeout = split_url(url)
        self.create = create
        self._pool: AsyncConnectionPool[Any] | None = None
        #: Creates waiting to be stored together, and the task storing them (``create_job``).
        self._creates: list[_PendingCreate] = []
        self._committer: asyncio.Task[None] | None = None

    # -- connection and schema ----------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            timeout=self.connect_timeout,
            reconnect_timeout=RECONNECT_TIMEOUT,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout))},
            # A connection that died with its server is replaced before it is handed out.
            check=AsyncConnectionPool.check_connection,
            configure=_configure,
            name="pollable",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except PoolTimeout:
            await pool.close()
            raise Unavailable(f"cannot reach PostgreSQL at {self._safe_url()}") from None
        self._pool = pool
        try:
            async with self._transaction() as conn:
                await self._create_schema(conn)
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    def _safe_url(self) -> str:
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        return f"{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"

    async def close(self) -> None:
        if self._committer is not None:  # the creates already waiting are stored first
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    async def _create_schema(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        exists = await self._one(conn, "SELECT to_regclass('schema_version') IS NOT NULL")
        if not exists[0]:
            if not self.create:
                raise StoreNotFound(f"no pollable store in {self._safe_url()}")
            await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            await conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            version = SCHEMA_VERSION
        else:
            version = int((await self._one(conn, "SELECT version FROM schema_version"))[0])
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(self._safe_url(), version, SCHEMA_VERSION)
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                await conn.execute(statement)
        for statement in SCHEMA:
            await conn.execute(statement)
        if version < SCHEMA_VERSION:
            await conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in autocommit; a database that cannot be reached is
        ``Unavailable``."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("the store is not open")
        try:
            async with pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise Unavailable("the store cannot be reached") from None
        except psycopg.OperationalError as exc:
            raise Unavailable("the store cannot be reached") from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    @staticmethod
    async def _one(
        conn: psycopg.AsyncConnection[Any], sql: str, params: Any = None
    ) -> tuple[Any, ...]:
        row: tuple[Any, ...] | None = await (await conn.execute(sql, params)).fetchone()
        assert row is not None
        return row

    @staticmethod
    async def _maybe(
        conn: psycopg.AsyncConnection[Any], sql: str, params: Any = None
    ) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = await (await conn.execute(sql, params)).fetchone()
        return row

    @staticmethod
    async def _all(
        conn: psycopg.AsyncConnection[Any], sql: str, params: Any = None
    ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = await (await conn.execute(sql, params)).fetchall()
        return rows

    async def _read_one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        async with self._connection() as conn:
            return await self._maybe(conn, sql, params)

    async def _read_all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            return await self._all(conn, sql, params)

    # -- tenants and keys -------------------------------------------------------------

    @staticmethod
    def _tenant(row: Sequence[Any], has_fault_rules: bool | None = None) -> Tenant:
        return Tenant(
            row[0], row[1], row[2], row[3], row[4], row[5] or 0.0, row[6] or 0.0, int(row[7]),
            has_fault_rules,
        )  # fmt: skip

    @staticmethod
    def _key(row: Sequence[Any]) -> KeyRecord:
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
        async with self._connection() as conn:
            inserted = await self._maybe(
                conn,
                f"INSERT INTO tenants ({_TENANT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                row,
            )
        if inserted is None:
            raise Conflict(f"tenant {name!r} already exists")
        return tenant

    async def find_tenant(self, name: str) -> Tenant | None:
        row = await self._read_one(f"{_TENANT} WHERE name = %s", (name,))
        return None if row is None else self._tenant(row)

    async def get_tenant(self, tenant_id: str) -> Tenant:
        row = await self._read_one(f"{_TENANT} WHERE id = %s", (tenant_id,))
        if row is None:
            raise NotFound("tenant not found")
        return self._tenant(row)

    async def count_tenants(self) -> int:
        row = await self._read_one("SELECT count(*) FROM tenants")
        assert row is not None
        return int(row[0])

    async def set_default_scenario(self, tenant_id: str, scenario: str | None) -> Tenant:
        row = await self._read_one(
            f"UPDATE tenants SET default_scenario = %s WHERE id = %s RETURNING {_TENANT_COLUMNS}",
            (scenario, tenant_id),
        )
        if row is None:
            raise NotFound("tenant not found")
        return self._tenant(row)

    async def list_tenants(self, *, after: str | None = None, limit: int) -> list[Tenant]:
        rows = await self._read_all(
            f"{_TENANT} WHERE id > %s ORDER BY id LIMIT %s", (after or "", limit)
        )
        return [self._tenant(row) for row in rows]

    async def set_credits(self, tenant_id: str, credits: float) -> Tenant:
        row = await self._read_one(
            "UPDATE tenants SET credits = %s, initial_credits = %s WHERE id = %s "
            f"RETURNING {_TENANT_COLUMNS}",
            (credits, credits, tenant_id),
        )
        if row is None:
            raise NotFound("tenant not found")
        return self._tenant(row)

    async def _forget(self, conn: psycopg.AsyncConnection[Any], tenant_id: str) -> None:
        # Locking the tenant's row orders this after (and before) its concurrent writes.
        if (
            await self._maybe(conn, "SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))
            is None
        ):
            raise NotFound("tenant not found")
        for table in _TENANT_HISTORY:
            await conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s", (tenant_id,))
        await conn.execute("UPDATE api_keys SET clock_id = NULL WHERE tenant_id = %s", (tenant_id,))
        await conn.execute("DELETE FROM clocks WHERE tenant_id = %s", (tenant_id,))

    async def delete_tenant(self, tenant_id: str) -> None:
        async with self._transaction() as conn:
            await self._forget(conn, tenant_id)
            await conn.execute("DELETE FROM api_keys WHERE tenant_id = %s", (tenant_id,))
            await conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))

    async def reset_tenant(self, tenant_id: str) -> None:
        async with self._transaction() as conn:
            await self._forget(conn, tenant_id)
            await conn.execute(
                "UPDATE tenants SET credits = initial_credits, "
                "stored = (SELECT count(*) FROM api_keys WHERE tenant_id = tenants.id) "
                "WHERE id = %s",
                (tenant_id,),
            )

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
        try:
            async with self._transaction() as conn:
                if clock_id is not None:
                    await self._get_clock(conn, tenant_id, clock_id)
                await self._count(conn, tenant_id, 1, cap)
                await conn.execute(
                    "INSERT INTO api_keys (api, key_hash, tenant_id, label, id, environment, "
                    "created_at, clock_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    row,
                )
        except pg_errors.ForeignKeyViolation:
            raise NotFound("tenant not found") from None
        except pg_errors.UniqueViolation:
            raise Conflict("this key is already stored") from None
        return record

    async def key_for(self, api: str, key_hash: str) -> tuple[Tenant, KeyRecord] | None:
        # Every authenticated request asks this: its SQL is built once.
        row = await self._read_one(_KEY_FOR, (api, key_hash))
        if row is None:
            return None
        return self._tenant(row[:8], bool(row[16])), self._key(row[8:16])

    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        await self.get_tenant(tenant_id)
        rows = await self._read_all(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id",
            (tenant_id,),
        )
        return [self._key(row) for row in rows]

    async def revoke_key(self, tenant_id: str, key_id: str, *, at: float) -> KeyRecord:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = %s "
                "WHERE tenant_id = %s AND id = %s AND revoked_at IS NULL",
                (at, tenant_id, key_id),
            )
            row = await self._maybe(
                conn,
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = %s AND id = %s",
                (tenant_id, key_id),
            )
        if row is None:
            raise NotFound("key not found")
        return self._key(row)

    # -- test clocks ----------------------------------------------------------------------

    async def _get_clock(
        self, conn: psycopg.AsyncConnection[Any], tenant_id: str, clock_id: str
    ) -> Clock:
        row = await self._maybe(
            conn,
            f"SELECT {_CLOCK_COLUMNS} FROM clocks WHERE tenant_id = %s AND id = %s",
            (tenant_id, clock_id),
        )
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
        async with self._transaction() as conn:
            await self._count(conn, tenant_id, 1, cap)
            await conn.execute(
                f"INSERT INTO clocks ({_CLOCK_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                (clock.id, tenant_id, name, now, created_at),
            )
        return clock

    @staticmethod
    async def _count(
        conn: psycopg.AsyncConnection[Any],
        tenant_id: str,
        size: int,
        cap: int | None,
        credits: float = 0.0,
    ) -> float:
        """Count ``size`` more stored items and spend ``credits`` in one guarded ``UPDATE``
        in the caller's transaction. The row lock it takes holds until that transaction
        ends, and a concurrent ``UPDATE`` of the row (in any process) waits for it, then
        checks the guard again against the committed row: no two can pass the same guard.
        Raises, for the caller's transaction to roll back, if the tenant is missing, cannot
        afford it or is full. Returns the balance."""
        row = await PostgresStore._maybe(
            conn,
            "UPDATE tenants SET credits = credits - %(credits)s, stored = stored + %(size)s "
            "WHERE id = %(id)s AND (%(credits)s <= 0 OR credits >= %(credits)s) "
            "AND (%(cap)s::bigint IS NULL OR stored + %(size)s <= %(cap)s::bigint) "
            "RETURNING credits",
            {"credits": float(credits), "size": size, "id": tenant_id, "cap": cap},
        )
        if row is not None:
            return float(row[0])
        found = await PostgresStore._maybe(
            conn, "SELECT credits FROM tenants WHERE id = %s", (tenant_id,)
        )
        if found is None:
            raise NotFound("tenant not found")
        if credits > 0 and found[0] < credits:
            raise InsufficientCredits(credits, found[0])
        assert cap is not None
        raise StorageFull(cap)

    async def get_clock(self, tenant_id: str, clock_id: str) -> Clock:
        async with self._connection() as conn:
            return await self._get_clock(conn, tenant_id, clock_id)

    async def list_clocks(
        self, tenant_id: str, *, after: str | None = None, limit: int
    ) -> list[Clock]:
        rows = await self._read_all(
            f"SELECT {_CLOCK_COLUMNS} FROM clocks WHERE tenant_id = %s AND id > %s "
            "ORDER BY id LIMIT %s",
            (tenant_id, after or "", limit),
        )
        return [Clock(*row) for row in rows]

    async def advance_clock(
        self, tenant_id: str, clock_id: str, *, to: float | None = None, by: float | None = None
    ) -> Clock:
        if (to is None) == (by is None):
            raise ValueError("advance a clock to an instant or by seconds")
        if by is not None and not by > 0:
            raise ValueError("a clock advances by a positive number of seconds")
        async with self._transaction() as conn:
            # One statement: monotonic whoever else advances it, in any process.
            key = (tenant_id, clock_id)
            row = (
                await self._maybe(
                    conn,
                    "UPDATE clocks SET now = now + %s WHERE tenant_id = %s AND id = %s "
                    f"RETURNING {_CLOCK_COLUMNS}",
                    (by, *key),
                )
                if by is not None
                else await self._maybe(
                    conn,
                    "UPDATE clocks SET now = %s WHERE tenant_id = %s AND id = %s AND now <= %s "
                    f"RETURNING {_CLOCK_COLUMNS}",
                    (to, *key, to),
                )
            )
            if row is None:
                raise ClockWouldGoBack(await self._get_clock(conn, tenant_id, clock_id))
            return Clock(*row)

    async def delete_clock(self, tenant_id: str, clock_id: str) -> None:
        async with self._transaction() as conn:
            if (
                await self._maybe(
                    conn,
                    "SELECT 1 FROM clocks WHERE tenant_id = %s AND id = %s FOR UPDATE",
                    (tenant_id, clock_id),
                )
                is None
            ):
                raise NotFound("clock not found")
            bound = "SELECT job_id FROM jobs WHERE tenant_id = %s AND clock_id = %s"
            freed = 1  # the clock
            for table in ("items", "idempotency"):
                cursor = await conn.execute(
                    f"DELETE FROM {table} WHERE tenant_id = %s AND job_id IN ({bound})",
                    (tenant_id, tenant_id, clock_id),
                )
                freed += cursor.rowcount if table == "items" else 0
            cursor = await conn.execute(
                "DELETE FROM jobs WHERE tenant_id = %s AND clock_id = %s", (tenant_id, clock_id)
            )
            freed += cursor.rowcount
            await conn.execute(
                "UPDATE tenants SET stored = stored - %s WHERE id = %s", (freed, tenant_id)
            )
            await conn.execute(
                "UPDATE api_keys SET clock_id = NULL WHERE tenant_id = %s AND clock_id = %s",
                (tenant_id, clock_id),
            )
            await conn.execute(
                "DELETE FROM clocks WHERE tenant_id = %s AND id = %s", (tenant_id, clock_id)
            )

    # -- jobs ---------------------------------------------------------------------------

    @staticmethod
    def _record(row: Sequence[Any]) -> JobRecord:
        tenant_id, api, kind, collection, attrs, plan, events, serial_base, credits, clock = row
        return JobRecord(
            tenant_id=tenant_id,
            api=api,
            kind=kind,
            collection=collection,
            attrs=orjson.loads(attrs),
            plan=decode_plan(plan),
            events=tuple(event_from_data(e) for e in orjson.loads(events)),
            serial_base=int(serial_base),
            credits_remaining=credits,
            clock_id=clock,
        )

    async def _get_job(
        self,
        conn: psycopg.AsyncConnection[Any],
        tenant_id: str,
        job_id: str,
        *,
        lock: bool = False,
    ) -> JobRecord:
        row = await self._maybe(
            conn,
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE tenant_id = %s AND job_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (tenant_id, job_id),
        )
        if row is None:
            raise NotFound("job not found")
        return self._record(row)

    async def get_job(self, tenant_id: str, job_id: str) -> JobRecord:
        async with self._connection() as conn:
            return await self._get_job(conn, tenant_id, job_id)

    async def idempotent_job(self, tenant_id: str, idempotency: Idempotency) -> JobRecord | None:
        async with self._connection() as conn:
            return await self._idempotent_job(conn, tenant_id, idempotency)

    async def _idempotent_job(
        self, conn: psycopg.AsyncConnection[Any], tenant_id: str, idempotency: Idempotency
    ) -> JobRecord | None:
        seen = await self._maybe(
            conn,
            "SELECT fingerprint, job_id FROM idempotency WHERE tenant_id = %s AND key = %s",
            (tenant_id, idempotency.key),
        )
        if seen is None:
            return None
        if seen[0] != idempotency.fingerprint:
            raise IdempotencyMismatch("idempotency key reused with a different body")
        return await self._get_job(conn, tenant_id, seen[1])

    async def create_job(
        self, tenant_id: str, job: NewJob, *, cap: int | None = None
    ) -> tuple[JobRecord, bool]:
        """Group commit: a create without an idempotency key or a clock joins the creates
        waiting in this process, and one task stores them in one transaction
        (``_create_together``) while the next ones gather; each is answered once that
        commit returned. A tenant's creates all lock its row until they commit, so one at
        a time they are bounded by a round trip and an fsync each; together they share
        them. The others, and a batch of one, go alone (``_create_alone``)."""
        if job.idempotency is not None or job.clock_id is not None:
            return await self._create_alone(tenant_id, job, cap)
        if self._pool is None:
            raise RuntimeError("the store is not open")
        future: asyncio.Future[tuple[JobRecord, bool]] = asyncio.get_running_loop().create_future()
        self._creates.append((tenant_id, job, cap, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_creates())
        return await future

    async def _commit_creates(self) -> None:
        while self._creates:
            batch = self._creates[:CREATE_BATCH]
            del self._creates[:CREATE_BATCH]
            try:
                outcomes = await self._create_batch(batch)
            except BaseException as exc:  # cancelled: nobody may wait for ever
                for *_, future in [*batch, *self._creates]:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                self._creates.clear()
                raise
            for (*_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller was cancelled
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _create_batch(
        self, batch: Sequence[_PendingCreate]
    ) -> list[tuple[JobRecord, bool] | BaseException]:
        """Each create's record or error. If the transaction fails as a whole, nothing of
        it was stored: every create gets that error, except a job id already taken (never
        by chance: ids are random), after which each create runs alone for its own answer."""
        if len(batch) == 1:
            return [await self._outcome_alone(batch[0])]
        try:
            async with self._transaction() as conn:
                return await self._create_together(conn, batch)
        except pg_errors.UniqueViolation:
            return [await self._outcome_alone(pending) for pending in batch]
        except Exception as exc:
            return [exc, *(copy.copy(exc) for _ in batch[1:])]

    async def _outcome_alone(self, pending: _PendingCreate) -> tuple[JobRecord, bool] | Exception:
        try:
            return await self._create_alone(*pending[:3])
        except Exception as exc:
            return exc

    async def _create_alone(
        self, tenant_id: str, job: NewJob, cap: int | None
    ) -> tuple[JobRecord, bool]:
        try:
            async with self._transaction() as conn:
                return await self._create_job(conn, tenant_id, job, cap)
        except _Replay as replay:
            return replay.record, False
        except pg_errors.UniqueViolation:
            raise Conflict("job id already exists") from None

    async def _create_together(
        self, conn: psycopg.AsyncConnection[Any], batch: Sequence[_PendingCreate]
    ) -> list[tuple[JobRecord, bool] | BaseException]:
        """Creates without idempotency keys or clocks, in the caller's transaction, as
        ``_create_job`` would store them one after the other: each tenant's row is locked
        once (``FOR UPDATE``), and each create is checked against its balance and cap as
        the previous ones left them, in the same float arithmetic as ``_count``'s guarded
        ``UPDATE``; one refused stores nothing and leaves the others alone. Then one
        ``UPDATE`` per tenant, one step of its item counter, one ``INSERT`` of the jobs and
        one ``COPY`` of their items."""
        tenant_ids = sorted({pending[0] for pending in batch})
        rows = await (
            await conn.execute(
                "SELECT id, credits, stored FROM tenants WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (tenant_ids,),
            )
        ).fetchall()
        balances = {tenant_id: [float(credits), int(stored)] for tenant_id, credits, stored in rows}
        outcomes: list[tuple[JobRecord, bool] | BaseException | None] = []
        accepted: list[tuple[int, str, NewJob, float]] = []
        for index, (tenant_id, job, cap, _) in enumerate(batch):
            balance = balances.get(tenant_id)
            size, credits = job_size(job), float(job.credits)
            if balance is None:
                outcomes.append(NotFound("tenant not found"))
            elif not (credits <= 0 or balance[0] >= credits):
                outcomes.append(InsufficientCredits(credits, balance[0]))
            elif cap is not None and balance[1] + size > cap:
                outcomes.append(StorageFull(cap))
            else:
                balance[0] -= credits
                balance[1] += size
                accepted.append((index, tenant_id, job, balance[0]))
                outcomes.append(None)  # its record, once written
        if not accepted:
            return [outcome for outcome in outcomes if outcome is not None]
        touched = sorted({tenant_id for _, tenant_id, _, _ in accepted})
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "UPDATE tenants SET credits = %s, stored = %s WHERE id = %s",
                [(*balances[tenant_id], tenant_id) for tenant_id in touched],
            )
        serial = {}
        for tenant_id in touched:
            total = sum(len(job.items) for _, t, job, _ in accepted if t == tenant_id)
            serial[tenant_id] = await self._advance(conn, tenant_id, "item", total) - total
        job_rows: list[tuple[Any, ...]] = []
        item_rows: list[tuple[Any, ...]] = []
        for index, tenant_id, job, remaining in accepted:
            plan, serial_base = job.plan, serial[tenant_id]
            serial[tenant_id] += len(job.items)
            started_at, ends_at, final = milestones(plan)
            job_rows.append(
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
                    None,
                )
            )
            item_rows.extend(self._item_rows(plan, tenant_id, job.items))
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
                None,
            )
            outcomes[index] = (record, True)
        async with conn.cursor() as cursor:
            await cursor.executemany(_INSERT_JOB, job_rows)
        if item_rows:
            async with conn.cursor().copy(f"COPY items ({_ITEM_COLUMNS}) FROM STDIN") as rows_in:
                for item_row in item_rows:
                    await rows_in.write_row(item_row)
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(batch)
        return done

    async def _create_job(
        self, conn: psycopg.AsyncConnection[Any], tenant_id: str, job: NewJob, cap: int | None
    ) -> tuple[JobRecord, bool]:
        plan = job.plan
        if job.clock_id is not None:
            await self._get_clock(conn, tenant_id, job.clock_id)
        if job.idempotency is not None:
            # Claiming the key decides races between first requests: a concurrent claim
            # waits for this transaction, then finds the key taken.
            claimed = await self._maybe(
                conn,
                "INSERT INTO idempotency VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, key) DO NOTHING RETURNING 1",
                (tenant_id, job.idempotency.key, job.idempotency.fingerprint, plan.job_id),
            )
            if claimed is None:
                earlier = await self._idempotent_job(conn, tenant_id, job.idempotency)
                if earlier is None:  # the key's job went with its clock meanwhile
                    raise Conflict("idempotency key is being reused")
                raise _Replay(earlier)
        # Refused (no credits, full, no tenant): the raise rolls back the claim above.
        remaining = await self._count(conn, tenant_id, job_size(job), cap, job.credits)
        serial_base = await self._advance(conn, tenant_id, "item", len(job.items)) - len(job.items)
        started_at, ends_at, final = milestones(plan)
        await conn.execute(
            _INSERT_JOB,
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
        if job.items:
            async with conn.cursor().copy(f"COPY items ({_ITEM_COLUMNS}) FROM STDIN") as copy:
                for item_row in self._item_rows(plan, tenant_id, job.items):
                    await copy.write_row(item_row)
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
    def _item_rows(plan: Plan, tenant_id: str, items: Sequence[Item]) -> Iterable[tuple[Any, ...]]:
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

    async def items(
        self, tenant_id: str, job_id: str, *, after: int = -1, limit: int
    ) -> list[Item]:
        rows = await self._read_all(
            "SELECT ordinal, key, outcome, units, fail_stage, error_code, error_message, extra "
            "FROM items WHERE tenant_id = %s AND job_id = %s AND ordinal > %s "
            "ORDER BY ordinal LIMIT %s",
            (tenant_id, job_id, after, limit),
        )
        return [
            Item(
                int(ordinal),
                key,
                _OUTCOMES[outcome],
                int(units),
                _STAGES[stage],
                code,
                message,
                orjson.loads(extra) if extra else NO_EXTRA,
            )
            for ordinal, key, outcome, units, stage, code, message, extra in rows
        ]

    async def tally(self, tenant_id: str, job_id: str, k: int) -> Tally:
        # The running totals of the last item before ``k``: one step down the primary key.
        row = await self._read_one(
            "SELECT cum_failed, cum_skipped, cum_units FROM items WHERE tenant_id = %s "
            "AND job_id = %s AND ordinal < %s ORDER BY ordinal DESC LIMIT 1",
            (tenant_id, job_id, k),
        )
        return Tally() if row is None else Tally(*(int(n) for n in row))

    async def append_event(
        self, tenant_id: str, job_id: str, event: Event, *, refund: float = 0.0
    ) -> tuple[JobRecord, bool]:
        async with self._transaction() as conn:
            # The row lock makes check and append one step across every server.
            record = await self._get_job(conn, tenant_id, job_id, lock=True)
            if not applies(record.plan, record.events, event):
                return record, False
            record = replace(record, events=(*record.events, event))
            started_at, ends_at, final = milestones(record.plan, record.events)
            await conn.execute(
                "UPDATE jobs SET events = %s, started_at = %s, ends_at = %s, final_status = %s "
                "WHERE tenant_id = %s AND job_id = %s",
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
                await conn.execute(
                    "UPDATE tenants SET credits = credits + %s WHERE id = %s", (refund, tenant_id)
                )
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
        where = "jobs.tenant_id = %(tenant)s"
        params: dict[str, Any] = {"tenant": tenant_id, "now": now}
        if api is not None:
            where += " AND jobs.api = %(api)s"
            params["api"] = api
        if clock_id is not None:
            where += " AND jobs.clock_id = %(clock)s"
            params["clock"] = clock_id
        if collection is not None:
            where += " AND jobs.collection = %(collection)s"
            params["collection"] = collection
        if status is not None:
            source = f"jobs {CLOCK_JOIN_SQL}"
            where += f" AND ({_STATUS}) = %(status)s"
            params["status"] = status.value
        async with self._connection() as conn:
            total = await self._one(conn, f"SELECT count(*) FROM {source} WHERE {where}", params)
            rows = await self._all(
                conn,
                f"SELECT {_JOBS_DOT_COLUMNS} FROM {source} WHERE {where} "
                "ORDER BY jobs.created_at DESC, jobs.seq DESC LIMIT %(limit)s OFFSET %(offset)s",
                {**params, "limit": limit, "offset": offset},
            )
        return JobPage([self._record(row) for row in rows], int(total[0]))

    async def indexed_keys(
        self, tenant_id: str, collection: str, keys: Sequence[str], *, at: float
    ) -> set[str]:
        # ``ends_at`` is when the job ends given its events: a cancel or failure before an
        # item's completion means the item was never indexed.
        rows = await self._read_all(
            "SELECT DISTINCT i.key FROM items i JOIN jobs j "
            "ON j.tenant_id = i.tenant_id AND j.job_id = i.job_id "
            "WHERE i.tenant_id = %s AND i.key = ANY(%s) AND i.completes_at <= %s "
            "AND i.completes_at <= j.ends_at AND j.collection = %s",
            (tenant_id, list(keys), at, collection),
        )
        return {row[0] for row in rows}

    @staticmethod
    async def _advance(
        conn: psycopg.AsyncConnection[Any], tenant_id: str, name: str, by: int
    ) -> int:
        row = await PostgresStore._one(
            conn,
            "INSERT INTO sequences VALUES (%s, %s, %s) ON CONFLICT (tenant_id, name) "
            "DO UPDATE SET value = sequences.value + excluded.value RETURNING value",
            (tenant_id, name, by),
        )
        return int(row[0])

    async def next_sequence(self, tenant_id: str, name: str, *, cap: int | None = None) -> int:
        async with self._transaction() as conn:
            value = await self._advance(conn, tenant_id, f"seq:{name}", 1)
            if value == 1:  # a new counter: a refusal rolls its row back
                await self._count(conn, tenant_id, 1, cap)
            return value

    # -- request log --------------------------------------------------------------------

    async def append_requests(self, entries: Sequence[RequestEntry]) -> None:
        if not entries:
            return
        async with (
            self._transaction() as conn,
            conn.cursor().copy(f"COPY requests ({log_rows.NAMES}) FROM STDIN") as copy,
        ):
            for entry in entries:
                await copy.write_row(log_rows.to_row(entry))

    @staticmethod
    def _where(tenant_id: str | None, where: RequestFilter) -> tuple[str, dict[str, Any]]:
        sql, params = log_rows.where_sql(tenant_id, where)
        return named(sql), params

    async def list_requests(
        self,
        tenant_id: str | None,
        where: RequestFilter = EVERY_REQUEST,
        *,
        before: RequestCursor | None = None,
        limit: int,
    ) -> list[RequestEntry]:
        sql, params = self._where(tenant_id, where)
        if before is not None:
            sql += " AND (at, id) < (%(before_at)s, %(before_id)s)"
            params.update(before_at=before[0], before_id=before[1])
        rows = await self._read_all(
            f"SELECT {log_rows.NAMES} FROM requests WHERE {sql} "
            "ORDER BY at DESC, id DESC LIMIT %(limit)s",
            {**params, "limit": limit},
        )
        return [log_rows.from_row(row) for row in rows]

    async def count_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        sql, params = self._where(tenant_id, where)
        row = await self._read_one(f"SELECT count(*) FROM requests WHERE {sql}", params)
        assert row is not None
        return int(row[0])

    async def get_request(self, tenant_id: str | None, request_id: str) -> RequestEntry:
        row = await self._read_one(
            f"SELECT {log_rows.NAMES} FROM requests WHERE id = %s AND tenant_id = %s",
            (request_id, tenant_id or ""),
        )
        if row is None:
            raise NotFound("request not found")
        return log_rows.from_row(row)

    async def delete_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        sql, params = self._where(tenant_id, where)
        async with self._connection() as conn:
            cursor = await conn.execute(f"DELETE FROM requests WHERE {sql}", params)
            return int(cursor.rowcount)

    async def prune_requests(
        self, *, keep: int, older_than: float, tenants: Collection[str | None] | None = None
    ) -> int:
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM requests WHERE at < %s", (older_than,))
            deleted = int(cursor.rowcount)
            logs = (
                [row[0] for row in await self._all(conn, "SELECT DISTINCT tenant_id FROM requests")]
                if tenants is None
                else [tenant_id or "" for tenant_id in tenants]
            )
            for log in logs:
                # The newest entry past the ``keep`` newest: it and everything older go.
                bound = await self._maybe(
                    conn,
                    "SELECT at, id FROM requests WHERE tenant_id = %s "
                    "ORDER BY at DESC, id DESC LIMIT 1 OFFSET %s",
                    (log, keep),
                )
                if bound is not None:
                    cursor = await conn.execute(
                        "DELETE FROM requests WHERE tenant_id = %s AND (at, id) <= (%s, %s)",
                        (log, *bound),
                    )
                    deleted += int(cursor.rowcount)
            return deleted

    async def meta(self, name: str, default: str) -> str:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, default)
            )
            row = await self._one(conn, "SELECT value FROM meta WHERE name = %s", (name,))
        return str(row[0])

    # -- fault rules --------------------------------------------------------------------

    _FAULT_COLUMNS = "id, tenant_id, spec, created_at, matched"

    @staticmethod
    def _fault(row: Sequence[Any]) -> FaultRule:
        return FaultRule(row[0], row[1], orjson.loads(row[2]), row[3], int(row[4]))

    async def create_fault(
        self, tenant_id: str, spec: Mapping[str, Any], *, limit: int, created_at: float = 0.0
    ) -> FaultRule:
        rule = FaultRule(new_fault_id(), tenant_id, dict(spec), created_at)
        async with self._transaction() as conn:
            # The tenant's row, locked, orders concurrent creates: the count below holds.
            if (
                await self._maybe(
                    conn, "SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,)
                )
                is None
            ):
                raise NotFound("tenant not found")
            (count,) = await self._one(
                conn, "SELECT count(*) FROM faults WHERE tenant_id = %s", (tenant_id,)
            )
            if count >= limit:
                raise Conflict(f"a tenant has at most {limit} fault rules")
            await conn.execute(
                "INSERT INTO faults (id, tenant_id, spec, created_at) VALUES (%s, %s, %s, %s)",
                (rule.id, tenant_id, orjson.dumps(rule.spec).decode(), created_at),
            )
        return rule

    async def list_faults(self, tenant_id: str) -> list[FaultRule]:
        rows = await self._read_all(
            f"SELECT {self._FAULT_COLUMNS} FROM faults WHERE tenant_id = %s ORDER BY seq",
            (tenant_id,),
        )
        return [self._fault(row) for row in rows]

    async def get_fault(self, tenant_id: str, fault_id: str) -> FaultRule:
        row = await self._read_one(
            f"SELECT {self._FAULT_COLUMNS} FROM faults WHERE tenant_id = %s AND id = %s",
            (tenant_id, fault_id),
        )
        if row is None:
            raise NotFound("fault rule not found")
        return self._fault(row)

    async def delete_fault(self, tenant_id: str, fault_id: str) -> None:
        row = await self._read_one(
            "DELETE FROM faults WHERE tenant_id = %s AND id = %s RETURNING id",
            (tenant_id, fault_id),
        )
        if row is None:
            raise NotFound("fault rule not found")

    async def match_fault(self, tenant_id: str, fault_id: str) -> int:
        row = await self._read_one(
            "UPDATE faults SET matched = matched + 1 WHERE tenant_id = %s AND id = %s "
            "RETURNING matched",
            (tenant_id, fault_id),
        )
        if row is None:
            raise NotFound("fault rule not found")
        return int(row[0])


class _Replay(Exception):
    """Roll back a creation whose idempotency key was already used, and answer the earlier
    job."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__("replay")
        self.record = record
