"""Stores, chosen by URL. Backends import their drivers lazily."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Store, StoreNotFound

__all__ = ["BACKENDS", "Backend", "Store", "StoreNotFound", "UnsupportedStore", "open_store"]


class UnsupportedStore(ValueError):
    pass


@dataclass(frozen=True)
class Backend:
    scheme: str
    #: A URL of this backend, as help texts and errors show it.
    example: str
    #: What it stores outlives the process, so other processes and later commands see it.
    persistent: bool


#: Every backend ``open_store`` opens; help texts and errors name only these.
BACKENDS = (
    Backend("memory", "memory://", persistent=False),
    Backend("sqlite", "sqlite:///path.db", persistent=True),
    Backend("postgresql", "postgresql://user@host/db", persistent=True),
)
#: Other spellings of a backend's scheme.
ALIASES = {"postgres": "postgresql"}


def open_store(url: str, *, create: bool = True) -> Store:
    """A (not yet opened) store for the URL of one of ``BACKENDS``. With ``create=False`` it
    only opens a store that exists (``StoreNotFound`` otherwise): commands that read must
    not leave an empty store behind a mistyped URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnsupportedStore(f"not a store URL: {url!r}")
    if scheme == "memory":
        if not create:
            raise StoreNotFound(f"{url} holds nothing before it is opened")
        from .memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise UnsupportedStore(
                f"expected sqlite:///relative.db or sqlite:////absolute.db, got {url!r}"
            )
        from .sqlite import SQLiteStore

        return SQLiteStore(rest[1:], create=create)
    if ALIASES.get(scheme, scheme) == "postgresql":
        if not rest.strip("/"):
            raise UnsupportedStore(f"expected postgresql://user@host/db, got {url!r}")
        try:
            from .postgres import PostgresStore
        except ImportError:
            raise UnsupportedStore(
                "the PostgreSQL store needs psycopg: pip install 'pollable[postgres]'"
            ) from None
        try:
            return PostgresStore(url, create=create)
        except ValueError as exc:
            raise UnsupportedStore(str(exc)) from None
    examples = ", ".join(backend.example for backend in BACKENDS)
    raise UnsupportedStore(f"unsupported store {scheme!r}: use {examples}")
