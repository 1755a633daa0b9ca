"""One typed Settings object, built once from CLI flags and ``POLLABLE_*`` variables.

Nothing else in pollable reads the environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "POLLABLE_"
KiB = 1024
MiB = 1024 * KiB


class SettingsError(ValueError):
    """A setting has a value pollable cannot use."""


@dataclass(frozen=True)
class Settings:
    """Secrets are left out of its ``repr``: uvicorn's trace log prints the app's state."""

    #: The URL of one of ``store.BACKENDS``: ``memory://``, ``sqlite:///path.db``
    #: or ``postgresql://user@host/db``.
    store: str = "sqlite:///pollable.db"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: Multiplies every duration in a job's plan: 0.01 runs plans 100x faster.
    time_scale: float = 1.0
    #: Request bodies above this many bytes are answered 413.
    max_body_bytes: int = 10 * MiB
    #: Check every response against the served contract before sending it.
    validate_responses: bool = True
    #: Seed of every synthetic choice (listings, failing items, timing jitter).
    seed: str = "0"
    #: HS256 secret for JWT access tokens; generated and kept in the store when unset.
    jwt_secret: str | None = dataclasses.field(default=None, repr=False)
    #: The control plane's admin token. Unset: generated on a fresh store, printed once,
    #: and kept hashed.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    #: Credit balance of a new tenant, and what a credit costs.
    tenant_credits: float = 1_000_000.0
    credit_rate: float = 0.01
    currency: str = "USD"
    log_level: str = "info"
    #: A seed fixture (YAML or JSON, see ``pollable seed --help``) loaded into the store when
    #: the server starts: tenants, fixed keys and jobs. Applied once per store.
    fixtures: str | None = None
    #: A request whose head (request line and header fields) is still incomplete after this
    #: many bytes is answered 431, and its connection closed. (It bounds what a client can
    #: make the server hold: a head that arrives whole in one socket read, at most 256 KiB,
    #: is read, as h11 reads one.)
    max_header_bytes: int = 32 * KiB
    #: Seconds a client has to send a request's head, from its first byte (or from
    #: connecting); then its connection is closed.
    header_timeout: float = 10.0
    #: Seconds an idle connection is kept open between requests (uvicorn's keep-alive).
    keep_alive_timeout: float = 5.0
    #: Per tenant: the most jobs, job items (Captain files, Crosmos sources), test clocks and
    #: named counters it may store. A job item costs about 375 bytes on SQLite (1,000,000
    #: files took 375 MB), so the default bounds a tenant at about 1.9 GB.
    max_stored_items: int = 5_000_000
    #: The request log: every request recorded for its tenant, credentials redacted.
    log_enabled: bool = True
    #: Per tenant (and for the log of requests no tenant was found for): the newest this
    #: many entries are kept, none older than ``log_max_age_seconds``.
    log_max_entries: int = 10_000
    log_max_age_seconds: float = 7 * 24 * 3600.0
    #: Request and response bodies are kept up to this many bytes (marked truncated).
    log_body_bytes: int = 64 * 1024
    #: Entries waiting for the log's writer; when full, the oldest is dropped and counted.
    log_queue_size: int = 10_000
    #: Requests a second each tenant may make of the job APIs, in each process (a token
    #: bucket: up to ``rate_burst`` at once); more are answered 429. 0: no limit.
    rate_limit: float = 100.0
    rate_burst: int = 500

    def __post_init__(self) -> None:
        for name in ("time_scale", "tenant_credits", "credit_rate", "rate_limit"):
            value = getattr(self, name)
            # nan passes every comparison below, and a plan scaled by it has no times.
            if not math.isfinite(value):
                raise SettingsError(f"{name} must be a finite number, not {value}")
            if value < 0:
                raise SettingsError(f"{name} cannot be negative")
        if self.max_body_bytes <= 0:
            raise SettingsError("max_body_bytes must be positive")
        if self.max_header_bytes < KiB:
            raise SettingsError("max_header_bytes must be at least 1024")
        for name in ("header_timeout", "keep_alive_timeout"):
            if not 0 < getattr(self, name) < math.inf:
                raise SettingsError(f"{name} must be a positive number of seconds")
        if self.max_stored_items < 1:
            raise SettingsError("max_stored_items must be positive")
        if self.rate_burst < 1:
            raise SettingsError("rate_burst must be at least 1")
        if self.workers < 1:
            raise SettingsError("workers must be at least 1")
        for name in ("log_max_entries", "log_max_age_seconds", "log_body_bytes", "log_queue_size"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if not 0 < self.port < 65536:
            raise SettingsError("port must be between 1 and 65535")
        if self.admin_token is not None and len(self.admin_token.encode()) < 16:
            raise SettingsError("admin_token must be at least 16 bytes")
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < 32:
            raise SettingsError(
                "jwt_secret must be at least 32 bytes (HS256, RFC 7518 section 3.2)"
            )
        if not self.store.partition("://")[1]:
            raise SettingsError(
                f"store must be a URL like sqlite:///pollable.db, not {self.store!r}"
            )

    @classmethod
    def build(cls, environ: Mapping[str, str], **flags: Any) -> Settings:
        """Defaults, overridden by ``POLLABLE_*`` variables, overridden by flags that are set."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field.name, raw, field.type)
        values.update({name: value for name, value in flags.items() if value is not None})
        try:
            return cls(**values)
        except TypeError as exc:
            raise SettingsError(str(exc)) from None

    def to_environ(self) -> dict[str, str]:
        """The settings as ``POLLABLE_*`` variables, for worker processes to rebuild them."""
        environ = {}
        for name, value in dataclasses.asdict(self).items():
            if value is not None:
                environ[ENV_PREFIX + name.upper()] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return environ


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("bool"):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
