"""What one served API is, in one record: the server derives everything it knows about an
API (routes, auth rules, required statuses, demo output, fixture checks) from these.

Adding a job API is one package under ``handlers/`` exporting an ``ApiDescriptor`` and
one line in ``handlers.registry``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.abc import Traversable
from typing import Any, TypeVar

from pollable.lifecycle.model import Stage, Status

from .api import Handler

T = TypeVar("T")


def hash_key(secret: str) -> str:
    """What is stored of a key or token: its SHA-256. Keys carry 256 random bits, so there is
    nothing to brute-force, and a slow password hash would only slow every request down."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRule:
    """How an API's keys look: one prefix per environment, the first the default
    (``{"dev": "cap_dev_", "prod": "cap_prod_"}``)."""

    prefixes: Mapping[str, str]

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(self.prefixes)

    @property
    def default_environment(self) -> str:
        return next(iter(self.prefixes))

    def new(self, environment: str | None = None) -> str:
        """A new key: the environment's prefix and 256 random bits."""
        return self.prefixes[environment or self.default_environment] + secrets.token_urlsafe(32)

    def issued(self, token: str) -> bool:
        """Whether ``token`` has the shape of one of this API's keys."""
        return any(
            token.startswith(prefix) and len(token) > len(prefix)
            for prefix in self.prefixes.values()
        )

    def label(self, key: str) -> str:
        """What may be shown of a key: its prefix and four more characters."""
        prefix = next((p for p in self.prefixes.values() if key.startswith(p)), "")
        return key[: len(prefix) + 4]


@dataclass(frozen=True)
class DemoCall:
    """A first call a newcomer can paste: create a job, then poll it."""

    summary: str
    create_path: str
    body: Mapping[str, Any]
    #: The job's URL, with ``JOB_ID`` where the id goes.
    poll_path: str


@dataclass(frozen=True, eq=False)
class ApiDescriptor:
    """One served API. Compared (and cached) by identity."""

    #: The API's name in job records, keys, fixtures and the CLI (``crosmos``).
    name: str
    title: str
    #: The served document: the first file, with each later one merged in by an add-only
    #: merge (a vendored document and pollable's additions).
    documents: tuple[Traversable, ...]
    #: Where the served document and Swagger UI beside it live.
    openapi_url: str
    docs_url: str
    #: Every operationId of the document, and its handler.
    handlers: Mapping[str, Handler]
    #: The keys this API issues; None for an API that issues none (the control plane).
    keys: KeyRule | None = None
    #: The operationId that reads one job (``GET .../jobs/{job_id}``), for a job API.
    status_operation: str | None = None
    #: A first call for the demo banner, for a job API.
    demo: DemoCall | None = None
    #: How errors look: ``fastapi`` (``{"detail": ...}``, as both upstream job APIs) or
    #: ``problem`` (RFC 9457 ``application/problem+json``).
    error_shape: str = "fastapi"
    #: Requests under this path that match no operation (404, 405) get this API's error
    #: shape; the longest prefix wins. Empty: every path, unless a longer prefix claims it.
    path_prefix: str = ""
    #: The control plane: authenticated by the admin token or any tenant's key of any API,
    #: instead of keys of its own.
    control_plane: bool = False
    #: Whether HS256 JWT access tokens (``sub`` = tenant name) are accepted besides keys.
    accepts_jwt: bool = False

    #: A request header that, when sent, must name the key's organization (else 403);
    #: fixtures send the tenant's own.
    organization_header: str | None = None
    #: The field of a job-creating operation's reply that holds the new job's id.
    job_id_field: str = "job_id"
    #: A job API's words for the engine's statuses (Crosmos says ``processing`` for
    #: running), as its presenter writes them: how the sandbox reads a status a user names.
    statuses: Mapping[str, Status] = field(default_factory=dict)
    #: Its words for the stages a job reports; empty for an API whose jobs report none.
    stages: Mapping[str, Stage] = field(default_factory=dict)
    #: JSON fields (at any depth, in requests and replies) and query parameters that hold
    #: credentials, and headers that do, besides those of every API (``Authorization``,
    #: cookies, ``password``, ``token``, ...): the request log keeps ``"[redacted]"``.
    secret_fields: frozenset[str] = frozenset()
    secret_headers: frozenset[str] = frozenset()
    #: Operations the request log does not record (reading the log would fill it).
    unlogged_operations: frozenset[str] = frozenset()

    @property
    def key_rule(self) -> KeyRule:
        """The keys of a job API; ``ValueError`` for an API that issues none."""
        if self.keys is None:
            raise ValueError(f"the {self.name} API issues no keys")
        return self.keys


def words_for(words: Mapping[T, str]) -> dict[str, T]:
    """A presenter's mapping from the engine's values to an API's words, read backwards."""
    return {word: value for value, word in words.items()}
