"""What handlers reach through the app's state: built once, in the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pollable.store.base import Store

from .auth import Authenticator
from .settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    authenticator: Authenticator
    #: The current time, POSIX seconds.
    now: Callable[[], float]
