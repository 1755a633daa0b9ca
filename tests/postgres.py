"""The PostgreSQL server the tests use, for any test directory that needs one.

``POLLABLE_TEST_POSTGRES_URL`` (default ``postgresql://localhost/pollable_test``) names the
database; it is created when the server is reachable and it is missing. Outside CI a test
on PostgreSQL is skipped, with the reason, when no server is reachable; with
``POLLABLE_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it) it fails instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Iterator
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


def require() -> None:
    """Skip (fail in CI) the calling test when the server cannot be used."""
    why = unreachable()
    if why is None:
        return
    if REQUIRED:
        pytest.fail(f"POLLABLE_REQUIRE_POSTGRES is set but {why}", pytrace=False)
    pytest.skip(why)


@contextlib.contextmanager
def fresh_url() -> Iterator[str]:
    """The URL of a new, empty schema in the test database (as a SQLite test gets a new
    file), dropped afterwards: tests on PostgreSQL see only what they wrote, whatever
    runs beside them. Skips (fails in CI) when the server cannot be used."""
    require()
    import psycopg
    from psycopg import sql

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    parts = urlsplit(POSTGRES_URL)
    query = [*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    try:
        yield urlunsplit(parts._replace(query=urlencode(query)))
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
