"""What one served API is, in one record: the server derives everything it knows about an
API (routes, auth rules, required statuses, demo output, fixture checks) from these.

Adding a job API is one package under ``handlers/`` exporting an ``ApiDescriptor`` and
one line in ``handlers.registry``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.abc import Traversable
from typing import Any

from .api import Handler


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
    keys: KeyRule
    #: The operationId that reads one job (``GET .../jobs/{job_id}``).
    status_operation: str
    demo: DemoCall
    #: Whether HS256 JWT access tokens (``sub`` = tenant name) are accepted besides keys.
    accepts_jwt: bool = False
    #: A request header that, when sent, must name the key's organization (else 403);
    #: fixtures send the tenant's own.
    organization_header: str | None = None
    #: The field of a job-creating operation's reply that holds the new job's id.
    job_id_field: str = "job_id"
