"""What a handler receives and returns. The server builds these; handlers never see HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from pollable.store.base import Store

if TYPE_CHECKING:
    from .descriptor import ApiDescriptor
    from .replies import FinalRead, FinalReplies


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one API; or the sandbox's admin (``admin``, with
    no tenant), on the control plane."""

    tenant_id: str
    tenant_name: str
    organization_id: str
    api: str
    admin: bool = False
    #: The key's id, when a key authenticated the call.
    key_id: str | None = None
    #: The test clock the key is bound to, if any: jobs it creates run on that clock.
    clock_id: str | None = None
    #: Whether the tenant had fault rules when the key was looked up (None: unknown).
    has_fault_rules: bool | None = None


class Config(Protocol):
    @property
    def time_scale(self) -> float: ...
    @property
    def seed(self) -> str: ...
    @property
    def credit_rate(self) -> float: ...
    @property
    def currency(self) -> str: ...
    @property
    def tenant_credits(self) -> float: ...
    @property
    def max_stored_items(self) -> int: ...


class RequestLog(Protocol):
    """The request log's writer, as handlers see it."""

    @property
    def enabled(self) -> bool: ...
    @property
    def queued(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    async def flush(self) -> None:
        """Write what this process has queued (so a read sees every finished request)."""


class NoRequestLog:
    """The request log of calls that are no HTTP requests (fixtures, the CLI): nothing is
    recorded, nothing to flush."""

    enabled = False
    queued = 0
    dropped = 0

    async def flush(self) -> None:
        return None


class Services(Protocol):
    @property
    def settings(self) -> Config: ...
    @property
    def store(self) -> Store: ...
    @property
    def now(self) -> Callable[[], float]: ...
    @property
    def job_apis(self) -> Sequence[ApiDescriptor]: ...
    @property
    def request_log(self) -> RequestLog: ...
    @property
    def final_replies(self) -> FinalReplies: ...


@dataclass(frozen=True)
class Call:
    """The validated request (parameters by lower-case key, the JSON body), the caller, and
    the app's services."""

    params: Mapping[str, Any]
    body: Any
    principal: Principal
    services: Services


@dataclass(frozen=True)
class Reply:
    """A status, a JSON body (None: no body, as for 204) and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    #: The time the reply was computed at, when the job it is about runs on a test clock
    #: (the request log keeps it beside the real time).
    clock_time: float | None = None
    #: ``body`` already encoded as JSON, when the handler needed the bytes (to tag them):
    #: sent as they are rather than encoded again. Only ever set together with ``body``.
    payload: bytes | None = None
    #: A reply that can never change (a finished job's read), and what it was made of:
    #: once checked against the contract it is kept and reused (``handlers.replies``).
    final: FinalRead | None = None
    #: Already checked against the contract (a kept reply): not checked again.
    checked: bool = False

    @property
    def data(self) -> Any:
        """The body as data: a kept reply holds only its bytes (``body`` is an
        ``orjson.Fragment`` of them), which are decoded for whoever reads it as data."""
        if isinstance(self.body, orjson.Fragment):
            return orjson.loads(self.payload or b"null")
        return self.body


Handler = Callable[[Call], Awaitable[Reply]]
