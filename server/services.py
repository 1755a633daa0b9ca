"""What handlers reach through the app's state: built once, in the lifespan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pollable.handlers.descriptor import ApiDescriptor
from pollable.handlers.replies import FinalReplies
from pollable.store.base import Store

from .auth import Authenticator
from .journal import Journal
from .settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    authenticator: Authenticator
    #: The current time, POSIX seconds.
    now: Callable[[], float]
    #: The request log's writer (``enabled`` False when the log is off).
    request_log: Journal
    #: The job APIs served (those that issue keys).
    job_apis: Sequence[ApiDescriptor] = ()
    #: The admin token, when this process generated it on a fresh store (to print once).
    new_admin_token: str | None = None
    #: Checked replies of finished jobs, reused while the job is as it was.
    final_replies: FinalReplies = field(default_factory=FinalReplies)
