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
- Routes are looked up by the path's shape. Starlette tries every route of every API in
  turn (about 40 regular expressions for a Captain read, a fifth of its cost); here each
  router's routes are indexed once by segment count and first segment, and only those
  that could match are asked, with Starlette's own ``Route.matches``, in Starlette's order.
  What that finds is what Starlette's router would route to; anything else (no route, a
  405, a docs page) goes through Starlette's router as before.
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import unquote

from connexion.middleware.abstract import ROUTING_CONTEXT
from connexion.middleware.routing import RoutingMiddleware, RoutingOperation
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router
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


#: A path's shape: its number of segments and its first segment.
Shape = tuple[int, str]
#: A router's routes that may match a path: by its shape; by its segment count, whatever
#: its first segment; and whatever its shape.
Candidates = tuple[dict[Shape, list[BaseRoute]], dict[int, list[BaseRoute]], list[BaseRoute]]


class RouteIndex:
    """The operation routes of the APIs mounted at ``""``, router by router in the order
    Starlette tries them (an API's router, then the one chained as its default), each
    router's routes indexed by the shapes of path they can match."""

    def __init__(self, router: Router) -> None:
        self.routers: list[Candidates] = []
        mounts = [route for route in router.routes if isinstance(route, Mount)]
        if not mounts or mounts[0].path != "" or not isinstance(mounts[0].app, Router):
            return  # nothing this index can stand in for: Starlette routes everything
        inner: Any = mounts[0].app
        while isinstance(inner, Router):
            self.routers.append(self._index(inner.routes))
            inner = inner.default

    @staticmethod
    def _index(routes: list[BaseRoute]) -> Candidates:
        """Each shape's candidate routes in the router's order, and by segment count those a
        path of any first segment could match. A route of another kind, or with a ``path``
        parameter (any number of segments), is a candidate for every path."""
        shaped: list[tuple[Shape | None, BaseRoute]] = []
        for route in routes:
            if not isinstance(route, Route) or ":path}" in route.path:
                shaped.append((None, route))
                continue
            segments = route.path.split("/")
            first = "" if len(segments) < 2 or "{" in segments[1] else segments[1]
            shaped.append(((len(segments), first), route))
        counts = {shape[0] for shape, _ in shaped if shape is not None}
        firsts = {shape for shape, _ in shaped if shape is not None and shape[1]}

        def fits(shape: Shape | None, want: Shape) -> bool:
            return shape is None or (shape[0] == want[0] and shape[1] in ("", want[1]))

        by_shape = {want: [r for shape, r in shaped if fits(shape, want)] for want in firsts}
        by_count = {n: [r for shape, r in shaped if fits(shape, (n, ""))] for n in counts}
        return by_shape, by_count, [r for shape, r in shaped if shape is None]

    def find(self, scope: Scope) -> tuple[RoutingOperation, Scope] | None:
        """The operation Starlette's router would route ``scope`` to and the scope it would
        give it, or None where it would not route to an operation (no route matches, only
        another method's route does: a 405, or a route that is not an operation)."""
        segments = get_route_path(scope).split("/")
        want = (len(segments), segments[1] if len(segments) > 1 else "")
        for by_shape, by_count, anywhere in self.routers:
            partial = False
            for route in by_shape.get(want) or by_count.get(want[0], anywhere):
                match, child = route.matches(scope)
                if match is Match.FULL:
                    operation = getattr(route, "app", None)
                    return (operation, child) if isinstance(operation, RoutingOperation) else None
                partial = partial or match is Match.PARTIAL
            if partial:
                return None  # another method's route: Starlette answers this router's 405
        return None


class AnchoredRoutingMiddleware(RoutingMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(_DecodeSegments(app))
        self.index = RouteIndex(self.router)

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        chain(self.router)
        anchor(self.router)
        self.index = RouteIndex(self.router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routed = segment_path(scope.get("raw_path") or b"")
        if routed is not None:
            scope = {**scope, "path": routed, _DECODED_PATH: scope["path"]}
        found = self.index.find(scope)
        if found is None:
            await super().__call__(scope, receive, send)
            return
        # What Connexion's RoutingOperation does with the scope Starlette's router gives it.
        operation, child = found
        routed_scope = dict(scope)
        routed_scope.setdefault("path_params", {}).update(child["path_params"])
        context = routed_scope.setdefault("extensions", {}).setdefault(ROUTING_CONTEXT, {})
        context.update({"api_base_path": "", "operation_id": operation.operation_id})
        await operation.next_app(routed_scope, receive, send)
