"""``store.open_store``: a backend is chosen by URL, and nothing is opened yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pollable.store import BACKENDS, StoreNotFound, UnsupportedStore, open_store
from pollable.store.memory import MemoryStore
from pollable.store.postgres import PostgresStore
from pollable.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]


def test_memory_url():
    assert isinstance(open_store("memory://"), MemoryStore)
    assert open_store("memory://") is not open_store("memory://")


def test_a_memory_store_never_exists_before_it_is_opened():
    with pytest.raises(StoreNotFound, match="memory://"):
        open_store("memory://", create=False)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///pollable.db", "pollable.db"),
        ("sqlite:///data/pollable.db", "data/pollable.db"),
        ("sqlite:////var/lib/pollable.db", "/var/lib/pollable.db"),
    ],
)
def test_sqlite_urls(url, path, tmp_path):
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == path
    assert not (tmp_path / path).exists()
    assert store.create
    assert not open_store(url, create=False).create


@pytest.mark.parametrize(
    "url", ["", "memory", "pollable.db", "sqlite://", "sqlite:///", "redis://localhost", "x://y"]
)
def test_unsupported_urls(url):
    with pytest.raises(UnsupportedStore) as caught:
        open_store(url)
    assert isinstance(caught.value, ValueError)


def test_backends_are_what_open_store_opens():
    assert [backend.scheme for backend in BACKENDS] == ["memory", "sqlite", "postgresql"]
    for backend in BACKENDS:
        assert backend.example.startswith(f"{backend.scheme}://")
        assert open_store(backend.example) is not None
    with pytest.raises(
        UnsupportedStore, match=r"use memory://, sqlite:///path\.db, postgresql://user@host/db$"
    ):
        open_store("mysql://localhost/pollable")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgresql_urls(scheme):
    store = open_store(f"{scheme}://me@db.example/pollable?pool_size=3&sslmode=disable")
    assert isinstance(store, PostgresStore)
    assert store.pool_size == 3
    assert store.conninfo == f"{scheme}://me@db.example/pollable?sslmode=disable"
    assert store.create
    assert not open_store(f"{scheme}://localhost/p", create=False).create


@pytest.mark.parametrize(
    "url", ["postgresql://", "postgresql:///", "postgresql://h/db?pool_size=0",
            "postgresql://h/db?pool_size=x", "postgresql://h/db?connect_timeout=-1"]
)  # fmt: skip
def test_unsupported_postgresql_urls(url):
    with pytest.raises(UnsupportedStore):
        open_store(url)


def test_memory_and_sqlite_never_import_psycopg(tmp_path):
    code = (
        "import asyncio, sys\n"
        "from pollable.store import open_store\n"
        "async def main():\n"
        "    async with open_store('memory://'): pass\n"
        f"    async with open_store('sqlite:///{tmp_path}/s.db'): pass\n"
        "asyncio.run(main())\n"
        "assert not [m for m in sys.modules if m.startswith('psycopg')], 'psycopg imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
