"""Stores, chosen by URL. Backends import their drivers lazily."""

from __future__ import annotations

from .base import Store


class UnsupportedStore(ValueError):
    pass


def open_store(url: str) -> Store:
    """A (not yet opened) store for ``memory://``, ``sqlite:///path.db`` or ``postgresql://``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnsupportedStore(f"not a store URL: {url!r}")
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise UnsupportedStore(
                f"expected sqlite:///relative.db or sqlite:////absolute.db, got {url!r}"
            )
        from .sqlite import SQLiteStore

        return SQLiteStore(rest[1:])
    raise UnsupportedStore(f"unsupported store {scheme!r}: use memory://, sqlite:///path.db")
