"""Connexion's routing, with path patterns anchored at the true end of the path.

Starlette compiles routes to ``^...$``, and ``$`` also matches just before a trailing
newline; the API mounts use ``.*``, which stops at one. A path like ``/v2/jobs%0A`` then
resolved to an operation under a different mount path, past the security check that is
keyed by it. Anchoring with ``\\Z`` (and letting ``.`` match newlines) routes such paths
like any other, so they meet authentication and validation like any other.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from connexion.middleware.routing import RoutingMiddleware
from starlette.routing import BaseRoute, Mount, Route, Router


def anchor(router: Router, seen: set[int] | None = None) -> None:
    """Re-anchor every route reachable from ``router`` (mounts and chained defaults too)."""
    seen = set() if seen is None else seen
    if id(router) in seen:
        return
    seen.add(id(router))
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


class AnchoredRoutingMiddleware(RoutingMiddleware):
    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        chain(self.router)
        anchor(self.router)
