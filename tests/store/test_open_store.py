"""``store.open_store``: a backend is chosen by URL, and nothing is opened yet."""

from __future__ import annotations

import pytest

from pollable.store import BACKENDS, StoreNotFound, UnsupportedStore, open_store
from pollable.store.memory import MemoryStore
from pollable.store.sqlite import SQLiteStore


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
    assert [backend.scheme for backend in BACKENDS] == ["memory", "sqlite"]
    for backend in BACKENDS:
        assert backend.example.startswith(f"{backend.scheme}://")
        assert open_store(backend.example) is not None
    with pytest.raises(UnsupportedStore, match=r"use memory://, sqlite:///path\.db$"):
        open_store("postgresql://localhost/pollable")
