"""Connexion's routing, made to route every path the way the contracts mean it.

- Path patterns end at the true end of the path. Starlette compiles routes to ``^...$``,
  and ``$`` also matches just before a trailing newline; the API mounts use ``.*``, which
  stops at one. A path like ``/v2/jobs%0A`` then resolved to an operation under a
  different mount path, past the security check that is keyed by it. Anchoring with
  ``\\Z`` (and letting ``.`` match newlines) routes such paths like any other.
- An encoded slash is data, not a separator (RFC 3986 section 2.2). The ASGI server
  decodes ``%2F`` into the path, so ``GET /v2/jobs/abc%2Fcancel`` routed as the cancel
  path (405) and ``POST /v2/jobs/X%2Fcancel`` cancelled job X. Such paths are routed on
  their segments instead, and the parameters decoded after: the job id is ``abc/cancel``.
- No redirects: Starlette answers a path with a trailing slash too many (or too few) with
  a 307 whose ``Location`` is built from the client's ``Host`` header. The contracts
  declare no redirect; such a path is no operation, and is answered 404 like any other.
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import unquote

from connexion.middleware.routing import RoutingMiddleware
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

#: The escapes that must survive routing: a slash and the percent sign itself.
_KEPT_ESCAPES = re.compile(r"(%2[fF5])")
#: Where the decoded path is kept while the segment path is routed.
_DECODED_PATH = "pollable.decoded_path"


def anchor(router: Router, seen: set[int] | None = None) -> None:
    """Re-anchor every route reachable from ``router`` (mounts and chained defaults too),
    and stop every router on the way from redirecting."""
    seen = set() if seen is None else seen
    if id(router) in seen:
        return
    seen.add(id(router))
    router.redirect_slashes = False
    for route in router.routes:
        _anchor_route(route)
        inner = getattr(route, "app", None)
        if isinstance(inner, Router):
            anchor(inner, seen)
    if isinstance(router.default, Router):
        anchor(router.default, seen)


def _anchor_route(route: BaseRoute) -> None:
    if isinstance(route, Route | Mount) and route.path_regex.pattern.endswith("$"):
        route.path_regex = re.compile(route.path_regex.pattern[:-1] + r"\Z", re.DOTALL)


def chain(router: Router) -> None:
    """Chain the APIs mounted on one base path in the order they were added: a request no
    route of one matches goes on to the next. (Connexion 3.3 points every earlier API at
    the newest, so with three APIs on one base path the second became unreachable.)"""
    by_path: dict[str, list[Router]] = {}
    for route in router.routes:
        if isinstance(route, Mount) and isinstance(route.app, Router):
            by_path.setdefault(route.path, []).append(route.app)
    for routers in by_path.values():
        for earlier, later in itertools.pairwise(routers):
            earlier.default = later


def segment_path(raw_path: bytes) -> str | None:
    """The path to route on when ``raw_path`` holds an encoded slash, else None.

    Everything is decoded as the ASGI server decodes it, except ``%2F`` and ``%25`` (and a
    ``%`` the decoding produces), which stay escaped: so a slash stays inside its segment,
    and ``unquote`` of a matched parameter gives exactly the decoded segment."""
    text = raw_path.decode("latin-1")
    if "%2f" not in text.lower():
        return None
    parts = _KEPT_ESCAPES.split(text)
    return "".join(
        part.upper() if index % 2 else unquote(part).replace("%", "%25")
        for index, part in enumerate(parts)
    )


class _DecodeSegments:
    """After routing on a segment path: the decoded path back, and each parameter decoded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        decoded = scope.pop(_DECODED_PATH, None)
        if decoded is not None:
            scope["path"] = decoded
            scope["path_params"] = {
                name: unquote(value) if isinstance(value, str) else value
                for name, value in scope.get("path_params", {}).items()
            }
        await self.app(scope, receive, send)


class AnchoredRoutingMiddleware(RoutingMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(_DecodeSegments(app))

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        chain(self.router)
        anchor(self.router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            routed = segment_path(scope.get("raw_path") or b"")
            if routed is not None:
                scope = {**scope, "path": routed, _DECODED_PATH: scope["path"]}
        await super().__call__(scope, receive, send)
