"""The domain's errors. The server maps each to the contract's own error shape, in one place."""

from __future__ import annotations


class PollableError(Exception):
    """Base class of the errors a request can end in."""


class NotFound(PollableError):
    """The thing does not exist for this tenant (another tenant's thing does not exist either)."""


class Conflict(PollableError):
    """The request contradicts what is already stored."""


class InvalidInput(PollableError):
    """A value the contract's schema allows but the domain rejects.

    ``loc`` follows FastAPI: ``("body", "sources", 0, "content")``, ``("header", "prefer")``.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str, kind: str = "value_error"):
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.kind = kind


class Forbidden(PollableError):
    """The caller is known but may not do this (another organization; not the admin)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unavailable(PollableError):
    """Something the answer needs (the store) cannot be reached right now."""
