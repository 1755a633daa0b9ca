"""The peer: the Crosmos GET as a team would write it by hand in FastAPI, the upstream's own
stack. ``HTTPBearer``, the key looked up by its SHA-256 in SQLite, the job's row read from
SQLite, and a pydantic ``response_model``: the contract's ``IngestionJobResponse``; no
lifecycle (the row holds the finished job's fields), no request log, no polling headers.

    python -m bench.peer_fastapi --db peer.db --port 8125 [--sync]

``--sync`` declares the endpoint and its dependency ``def`` (FastAPI runs them on its
thread pool) instead of ``async def``. ``build_db`` writes the database: one key, and the
jobs pollable answered (``hot_path`` copies them from pollable's replies). It runs under
uvicorn exactly like ``bench.serve`` runs pollable.
"""

import argparse
import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import uvicorn

from .marks import marked


def build_db(path: Path, key: str, jobs: Mapping[str, Mapping[str, Any]]) -> None:
    """A SQLite file holding the hash of ``key`` (tenant ``bench``) and ``jobs`` by id."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, tenant_id TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE jobs (tenant_id TEXT NOT NULL, job_id TEXT NOT NULL, body TEXT NOT NULL,"
            " PRIMARY KEY (tenant_id, job_id))"
        )
        digest = hashlib.sha256(key.encode()).hexdigest()
        db.execute("INSERT INTO api_keys VALUES (?, ?)", (digest, "bench"))
        db.executemany(
            "INSERT INTO jobs VALUES ('bench', ?, ?)",
            [(job_id, json.dumps(body)) for job_id, body in jobs.items()],
        )


def build(db_path: str, *, sync: bool) -> Any:
    # Imported here: FastAPI is a benchmark-only dependency (the ``bench`` extra).
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel

    # The model the vendored schema was generated from (its titles and formats say so).
    class IngestionJobResponse(BaseModel):
        job_id: UUID
        status: str
        source_ids: list[int]
        result: dict[str, Any] | None = None
        error_message: str | None = None
        created_at: datetime
        started_at: datetime | None = None
        completed_at: datetime | None = None

    local = threading.local()

    def db() -> sqlite3.Connection:
        # One connection per thread: the sync variant runs on FastAPI's thread pool.
        connection = getattr(local, "db", None)
        if connection is None:
            connection = local.db = sqlite3.connect(db_path, check_same_thread=False)
        return connection

    bearer = HTTPBearer()
    Credentials = Annotated[HTTPAuthorizationCredentials, Depends(bearer)]

    def tenant_of(credentials: HTTPAuthorizationCredentials) -> str:
        digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
        row = (
            db().execute("SELECT tenant_id FROM api_keys WHERE key_hash = ?", (digest,)).fetchone()
        )
        if row is None:
            raise HTTPException(401, "Invalid API key")
        return str(row[0])

    def job_of(tenant: str, job_id: str) -> dict[str, Any]:
        row = (
            db()
            .execute("SELECT body FROM jobs WHERE tenant_id = ? AND job_id = ?", (tenant, job_id))
            .fetchone()
        )
        if row is None:
            raise HTTPException(404, "Job not found")
        body: dict[str, Any] = json.loads(row[0])
        return body

    app = FastAPI()
    route = app.get("/api/v1/jobs/{job_id}", response_model=IngestionJobResponse)
    if sync:

        def tenant_sync(credentials: Credentials) -> str:
            return tenant_of(credentials)

        @route
        def get_job_sync(job_id: str, tenant: Annotated[str, Depends(tenant_sync)]) -> Any:
            return job_of(tenant, job_id)

    else:

        async def tenant_async(credentials: Credentials) -> str:
            return tenant_of(credentials)

        @route
        async def get_job_async(job_id: str, tenant: Annotated[str, Depends(tenant_async)]) -> Any:
            return job_of(tenant, job_id)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_fastapi")
    parser.add_argument("--db", required=True, help="the SQLite file build_db wrote")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sync", action="store_true", help="def endpoints, not async def")
    parser.add_argument("--marks", action="store_true", help="see bench.serve --marks")
    args = parser.parse_args(argv)
    app = build(args.db, sync=args.sync)
    uvicorn.run(
        marked(app) if args.marks else app,
        host=args.host,
        port=args.port,
        loop="auto",
        http="auto",
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
