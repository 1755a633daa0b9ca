"""What a handler receives and returns. The server builds these; handlers never see HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pollable.store.base import Store


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one API."""

    tenant_id: str
    tenant_name: str
    organization_id: str
    api: str


class Config(Protocol):
    @property
    def time_scale(self) -> float: ...
    @property
    def seed(self) -> str: ...
    @property
    def credit_rate(self) -> float: ...
    @property
    def currency(self) -> str: ...


class Services(Protocol):
    @property
    def settings(self) -> Config: ...
    @property
    def store(self) -> Store: ...
    @property
    def now(self) -> Callable[[], float]: ...


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
    """A status, a JSON body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Reply]]
