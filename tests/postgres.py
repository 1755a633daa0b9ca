"""The PostgreSQL server the tests use, for any test directory that needs one.

``POLLABLE_TEST_POSTGRES_URL`` (default ``postgresql://localhost/pollable_test``) names the
database; it is created when the server is reachable and it is missing. Outside CI a test
on PostgreSQL is skipped, with the reason, when no server is reachable; with
``POLLABLE_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it) it fails instead.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

POSTGRES_URL = os.environ.get("POLLABLE_TEST_POSTGRES_URL", "postgresql://localhost/pollable_test")
REQUIRED = os.environ.get("POLLABLE_REQUIRE_POSTGRES", "") not in ("", "0")


@functools.cache
def unreachable() -> str | None:
    """Why the tests cannot use ``POSTGRES_URL`` (None: they can), creating its database
    when the server is up and it is missing."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            return f"no PostgreSQL server reachable at {POSTGRES_URL}: {str(exc).strip()}"
    parts = urlsplit(POSTGRES_URL)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(server, connect_timeout=3, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.DuplicateDatabase:
        pass  # another test process made it meanwhile
    except psycopg.Error as exc:
        return f"cannot create the database {name!r} on {server}: {str(exc).strip()}"
    return None


def require_root() -> None:
    """Skip (fail in CI) the calling test unless it runs as root: ``chattr +i`` needs
    CAP_LINUX_IMMUTABLE, and CI runs as root, so there the outage proofs must run."""
    if os.geteuid() == 0:
        return
    why = "chattr +i needs CAP_LINUX_IMMUTABLE (run the tests as root)"
    if REQUIRED:
        pytest.fail(f"CI needs the immutable-file proofs but {why}", pytrace=False)
    pytest.skip(why)


def require() -> None:
    """Skip (fail in CI) the calling test when the server cannot be used."""
    why = unreachable()
    if why is None:
        return
    if REQUIRED:
        pytest.fail(f"POLLABLE_REQUIRE_POSTGRES is set but {why}", pytrace=False)
    pytest.skip(why)


#: The schemas this test process made, dropped when its session ends.
_made: set[str] = set()


def _admin(statement: Any) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(statement)


def schema_url(key: str) -> str:
    """The URL of an empty schema of its own (the same for the same ``key``, such as a
    test's ``tmp_path``) in the test database: a test on PostgreSQL sees only what it
    wrote, as a SQLite test has its own file, whatever runs beside it. Skips (fails in CI)
    when the server cannot be used."""
    require()
    from psycopg import sql

    schema = "t_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    if schema not in _made:
        _admin(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        _made.add(schema)
    parts = urlsplit(POSTGRES_URL)
    query = [*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def drop_schemas() -> None:
    """Drop the schemas ``schema_url`` made in this process."""
    from psycopg import sql

    while _made:
        _admin(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(_made.pop())))


@contextlib.contextmanager
def fresh_url() -> Iterator[str]:
    """``schema_url`` of a schema made for the caller alone, dropped afterwards."""
    from psycopg import sql

    url = schema_url(secrets.token_hex(8))
    schema = dict(parse_qsl(urlsplit(url).query))["options"].partition("=")[2]
    try:
        yield url
    finally:
        _made.discard(schema)
        _admin(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


class PrivateCluster:
    """A PostgreSQL server of the caller's own, in a temporary directory on a free port, for
    tests that stop and start it (the shared server is never touched). Made with the
    installed ``initdb`` and ``pg_ctl``, run as ``postgres`` when the tests run as root
    (PostgreSQL refuses root). Skips (fails in CI) when the binaries are missing."""

    def __init__(self, port: int) -> None:
        import glob
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            why = "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl)"
            if REQUIRED:
                pytest.fail(f"POLLABLE_REQUIRE_POSTGRES is set but {why}", pytrace=False)
            pytest.skip(why)
        self.bin = os.path.dirname(found[-1])
        self.port = port
        self.root = tempfile.mkdtemp(prefix="pollable-pg-")
        self.data = os.path.join(self.root, "data")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        import subprocess

        subprocess.run(
            [*self.as_user, os.path.join(self.bin, tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        log = os.path.join(self.root, "server.log")
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", log, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are ended at once, as in a restart."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        import shutil
        import subprocess

        subprocess.run(
            [*self.as_user, os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m",
             "immediate", "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
