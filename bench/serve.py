"""Run pollable under uvicorn for a benchmark: one worker, loop/http "auto" (uvloop and
httptools when installed) with the bounds ``pollable serve`` sets (server/protocol.py), no
access log.

    python -m bench.serve --store sqlite:////tmp/x.db --port 8123 [--no-validate-responses]
        [--no-request-log] [--no-polling-headers]

Settings are built from the flags only (no ``POLLABLE_*`` variables), so a benchmark is not
changed by the caller's environment. This stands in for the server CLI: what runs is the
same ``create_app(Settings)``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Hashable
from typing import Any

import orjson
import uvicorn

from pollable.handlers.api import Call, Reply
from pollable.handlers.common import read_reply
from pollable.handlers.descriptor import ApiDescriptor
from pollable.handlers.registry import REGISTRY
from pollable.lifecycle.model import JobState
from pollable.server.app import create_app
from pollable.server.protocol import PROTOCOLS, uvicorn_options
from pollable.server.settings import Settings
from pollable.store.base import JobRecord

from .marks import marked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--store", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=None)
    parser.add_argument("--no-validate-responses", action="store_true")
    parser.add_argument("--no-request-log", action="store_true")
    parser.add_argument(
        "--no-polling-headers",
        action="store_true",
        help="the baseline of bench.hot_path only: job reads as before polling headers",
    )
    parser.add_argument(
        "--one-commit-per-create",
        action="store_true",
        help="the baseline of bench.scale only: each create in a transaction of its own, as "
        "before group commit",
    )
    parser.add_argument(
        "--plan-on-thread",
        action="store_true",
        help="the baseline of bench.scale only: every create planned on a thread, as before "
        "small ones were planned on the event loop",
    )
    parser.add_argument(
        "--marks",
        action="store_true",
        help="bench.cost only: GET /__bench_mark marks a window for callgrind (os.getppid)",
    )
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto", choices=sorted(PROTOCOLS))
    args = parser.parse_args(argv)
    settings = Settings.build(
        {},
        store=args.store,
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        validate_responses=False if args.no_validate_responses else None,
        log_enabled=False if args.no_request_log else None,
        log_level="warning",
        # One tenant's load is the benchmark: its rate limit never refuses, but is checked.
        rate_limit=1e9,
        rate_burst=10**9,
    )
    apis = _without_polling_headers() if args.no_polling_headers else REGISTRY
    if args.one_commit_per_create:
        _one_commit_per_create()
    if args.plan_on_thread:
        _plan_on_thread()
    app = create_app(settings, apis=apis)
    uvicorn.run(
        marked(app) if args.marks else app,
        host=settings.host,
        port=settings.port,
        loop=args.loop,
        workers=1,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        **uvicorn_options(settings, args.http),
    )


def _without_polling_headers() -> tuple[ApiDescriptor, ...]:
    """The APIs as they were before polling headers: job reads answer the body alone, and
    the contracts leave out ``openapi/*.polling.json`` (so response validation does not ask
    for the headers). A baseline for measuring what the headers cost, in this process only."""
    from pollable.handlers.captain import jobs as captain_jobs
    from pollable.handlers.crosmos import jobs as crosmos_jobs

    def body_alone(
        call: Call,
        record: JobRecord,
        state: JobState,
        now: float,
        body: Any,
        *,
        items: bool,
        page: tuple[Hashable, ...] = (),
    ) -> Reply:
        # As job_read, finished jobs' replies kept, without the headers.
        return read_reply(call, record, state, now, body, orjson.dumps(body), {}, page)

    for module in (crosmos_jobs, captain_jobs):
        module.job_read = body_alone  # type: ignore[attr-defined]
    return tuple(
        dataclasses.replace(
            api,
            documents=tuple(d for d in api.documents if not d.name.endswith(".polling.json")),
        )
        for api in REGISTRY
    )


def _one_commit_per_create() -> None:
    """Creates as they were before group commit, in this process only: each in a write
    transaction of its own (SQLite: one fsync each, on the writer thread; PostgreSQL: one
    transaction each from the pool)."""
    from pollable.store.base import NewJob
    from pollable.store.sqlite import SQLiteStore

    async def sqlite_create(
        self: SQLiteStore, tenant_id: str, job: NewJob, *, cap: int | None = None
    ) -> tuple[JobRecord, bool]:
        return await self._write(lambda db: self._create_job(db, tenant_id, job, cap))

    SQLiteStore.create_job = sqlite_create  # type: ignore[method-assign]
    try:
        from pollable.store.postgres import PostgresStore
    except ImportError:  # no psycopg: no PostgreSQL store to change
        return

    async def postgres_create(
        self: PostgresStore, tenant_id: str, job: NewJob, *, cap: int | None = None
    ) -> tuple[JobRecord, bool]:
        return await self._create_alone(tenant_id, job, cap)

    PostgresStore.create_job = postgres_create  # type: ignore[method-assign]


def _plan_on_thread() -> None:
    """Every create planned on a thread, as before small ones ran on the event loop."""
    from pollable.handlers.captain import jobs as captain_jobs
    from pollable.handlers.crosmos import jobs as crosmos_jobs

    crosmos_jobs.INLINE_TEXT = -1  # no content is this short
    captain_jobs.INLINE_FILES = -1


if __name__ == "__main__":
    main()
