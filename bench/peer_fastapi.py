"""The peer: the Crosmos GET as a team would write it by hand in FastAPI, the upstream's own
stack. ``HTTPBearer``, the key looked up by its SHA-256 in SQLite, the job's row read from
SQLite, and a pydantic ``response_model``: the contract's ``IngestionJobResponse``; no
lifecycle (the row holds the finished job's fields), no request log, no polling headers.

    python -m bench.peer_fastapi --db peer.db --port 8125 [--sync] [--style lean]

Two styles of the same app:

- ``tutorial`` (the default): as FastAPI's own "SQL (Relational) Databases" tutorial
  writes it: a SQLAlchemy engine (pooled), a ``Session`` per request from a ``yield``
  dependency, the key and the job read as mapped rows with ``select`` and ``Session.get``;
- ``lean``: one ``sqlite3`` connection per thread and two hand-written queries, the least
  a FastAPI app can do for this GET.

``--sync`` declares the endpoint and its dependencies ``def`` (FastAPI runs them on its
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
from typing import Annotated, Any, Protocol
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


def build(db_path: str, *, sync: bool, style: str = "tutorial") -> Any:
    # Imported here: FastAPI is a benchmark-only dependency (the ``bench`` extra).
    from fastapi import FastAPI, HTTPException
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

    def not_found() -> HTTPException:
        return HTTPException(404, "Job not found")

    def unauthorized() -> HTTPException:
        return HTTPException(401, "Invalid API key")

    read = _tutorial(db_path) if style == "tutorial" else _lean(db_path)
    app = FastAPI()
    route = app.get("/api/v1/jobs/{job_id}", response_model=IngestionJobResponse)
    read.routes(route, sync=sync, not_found=not_found, unauthorized=unauthorized)
    return app


class _Style(Protocol):
    """How a style reads the tenant of a key and a tenant's job, and declares its route."""

    def routes(self, route: Any, *, sync: bool, not_found: Any, unauthorized: Any) -> None: ...


def _lean(db_path: str) -> _Style:
    from fastapi import Depends
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    local = threading.local()

    def db() -> sqlite3.Connection:
        # One connection per thread: the sync variant runs on FastAPI's thread pool.
        connection = getattr(local, "db", None)
        if connection is None:
            connection = local.db = sqlite3.connect(db_path, check_same_thread=False)
        return connection

    bearer = HTTPBearer()

    class Lean(_Style):
        def routes(self, route: Any, *, sync: bool, not_found: Any, unauthorized: Any) -> None:
            def tenant_of(credentials: HTTPAuthorizationCredentials) -> str:
                digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
                row = (
                    db()
                    .execute("SELECT tenant_id FROM api_keys WHERE key_hash = ?", (digest,))
                    .fetchone()
                )
                if row is None:
                    raise unauthorized()
                return str(row[0])

            def job_of(tenant: str, job_id: str) -> dict[str, Any]:
                row = (
                    db()
                    .execute(
                        "SELECT body FROM jobs WHERE tenant_id = ? AND job_id = ?", (tenant, job_id)
                    )
                    .fetchone()
                )
                if row is None:
                    raise not_found()
                body: dict[str, Any] = json.loads(row[0])
                return body

            credentials = Annotated[HTTPAuthorizationCredentials, Depends(bearer)]
            if sync:

                def tenant_sync(c: credentials) -> str:
                    return tenant_of(c)

                @route
                def get_job_sync(job_id: str, tenant: Annotated[str, Depends(tenant_sync)]) -> Any:
                    return job_of(tenant, job_id)

            else:

                async def tenant_async(c: credentials) -> str:
                    return tenant_of(c)

                @route
                async def get_job_async(
                    job_id: str, tenant: Annotated[str, Depends(tenant_async)]
                ) -> Any:
                    return job_of(tenant, job_id)

    return Lean()


def _tutorial(db_path: str) -> _Style:
    from fastapi import Depends
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from sqlalchemy import String, create_engine, select
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class ApiKey(Base):
        __tablename__ = "api_keys"
        key_hash: Mapped[str] = mapped_column(String, primary_key=True)
        tenant_id: Mapped[str]

    class Job(Base):
        __tablename__ = "jobs"
        tenant_id: Mapped[str] = mapped_column(String, primary_key=True)
        job_id: Mapped[str] = mapped_column(String, primary_key=True)
        body: Mapped[str]

    # A pool as large as the load's connections: with the default (5 + 10 overflow), async
    # endpoints that check out on the event loop while sessions close on the thread pool
    # stall the loop once 32 requests are in flight.
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"check_same_thread": False},
        pool_size=64,
        max_overflow=0,
    )
    bearer = HTTPBearer()

    def get_session() -> Any:
        with Session(engine) as session:
            yield session

    class Tutorial(_Style):
        def routes(self, route: Any, *, sync: bool, not_found: Any, unauthorized: Any) -> None:
            def tenant_of(session: Session, credentials: HTTPAuthorizationCredentials) -> str:
                digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
                key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
                if key is None:
                    raise unauthorized()
                return key.tenant_id

            def job_of(session: Session, tenant: str, job_id: str) -> dict[str, Any]:
                job = session.get(Job, (tenant, job_id))
                if job is None:
                    raise not_found()
                body: dict[str, Any] = json.loads(job.body)
                return body

            sessions = Annotated[Session, Depends(get_session)]
            credentials = Annotated[HTTPAuthorizationCredentials, Depends(bearer)]
            if sync:

                def tenant_sync(session: sessions, c: credentials) -> str:
                    return tenant_of(session, c)

                @route
                def get_job_sync(
                    job_id: str, session: sessions, tenant: Annotated[str, Depends(tenant_sync)]
                ) -> Any:
                    return job_of(session, tenant, job_id)

            else:

                async def tenant_async(session: sessions, c: credentials) -> str:
                    return tenant_of(session, c)

                @route
                async def get_job_async(
                    job_id: str, session: sessions, tenant: Annotated[str, Depends(tenant_async)]
                ) -> Any:
                    return job_of(session, tenant, job_id)

    return Tutorial()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_fastapi")
    parser.add_argument("--db", required=True, help="the SQLite file build_db wrote")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sync", action="store_true", help="def endpoints, not async def")
    parser.add_argument("--style", choices=("tutorial", "lean"), default="tutorial")
    parser.add_argument("--marks", action="store_true", help="see bench.serve --marks")
    args = parser.parse_args(argv)
    app = build(args.db, sync=args.sync, style=args.style)
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
