"""The composition root: ``create_app(settings)`` is the only place the app is built.

The request path through the stack::

    Recording (Request-Id, request log) -> ServerError -> Exception (contract-shaped errors)
      -> Routing -> Security (bearer) -> Lifespan -> Dispatcher (read + check request,
      handler, check + write reply)

Connexion routes and authenticates from the served documents; request and response
checking is pollable's (``server.operation``), compiled here, once.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from connexion.exceptions import ProblemException
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.exceptions import ExceptionMiddleware
from connexion.middleware.lifespan import LifespanMiddleware
from connexion.middleware.main import API
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.server_error import ServerErrorMiddleware
from connexion.resolver import Resolver
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp

from pollable.dashboard import PATH as DASHBOARD
from pollable.dashboard import dashboard_app, root_page
from pollable.handlers.descriptor import ApiDescriptor
from pollable.handlers.registry import REGISTRY, by_name
from pollable.lifecycle.errors import Forbidden
from pollable.store import open_store
from pollable.store.base import Store

from . import contract
from .auth import (
    Authenticator,
    Unauthorized,
    bearer_handler,
    ensure_admin_token,
    jwt_secret,
)
from .dispatch import Dispatcher, bind
from .docs import docs_app
from .errors import error_handler
from .faults import FaultGate
from .gateway import Gateway
from .journal import Journal
from .recording import RecordingMiddleware
from .routing import AnchoredRoutingMiddleware
from .seed import Fixture, Operations, Seeded, apply_once, load_fixture
from .services import Services
from .settings import Settings

#: Told, on the store, what the fixture seeded there, or None when the store had it already.
OnSeeded = Callable[[Store, Seeded | None], Awaitable[None]]


def _lifespan(
    settings: Settings,
    apis: Sequence[ApiDescriptor],
    fixture: Fixture | None,
    operations: Operations,
    on_seeded: OnSeeded | None,
) -> Any:
    job_apis = [api for api in apis if api.keys is not None]

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        async with open_store(settings.store) as store:
            secret = await jwt_secret(settings.jwt_secret, store)
            admin_hash, new_admin_token = await ensure_admin_token(store, settings.admin_token)
            if fixture is not None:
                seeded = await apply_once(store, settings, fixture, operations, now=time.time())
                if on_seeded is not None:
                    await on_seeded(store, seeded)
            authenticator = Authenticator(
                store, jwt_secret=secret, admin_hash=admin_hash, job_apis=job_apis
            )
            journal = Journal(
                store,
                enabled=settings.log_enabled,
                max_entries=settings.log_max_entries,
                max_age_seconds=settings.log_max_age_seconds,
                queue_size=settings.log_queue_size,
                body_bytes=settings.log_body_bytes,
            )
            services = Services(
                settings, store, authenticator, time.time, journal, job_apis, new_admin_token
            )
            journal.start()
            try:
                yield {"services": services}
            finally:
                await journal.close()

    return lifespan


def _pages(contracts: Sequence[contract.Contract], operations: Operations) -> ASGIApp:
    """What answers requests no operation matches: ``/`` (where things are), the dashboard
    (over the control plane, when one is served), and the documents with Swagger UI."""
    documents = docs_app(contracts)
    control = next((c.api for c in contracts if c.api.control_plane), None)
    if control is None:
        return documents
    links = [(f"{c.title} API: documents and Swagger UI", c.docs_url + "/") for c in contracts]
    routes = [
        Route("/", root_page(links), methods=["GET"]),
        Route(DASHBOARD, lambda _: RedirectResponse(DASHBOARD + "/"), methods=["GET"]),
        Mount(DASHBOARD, app=dashboard_app(Gateway(operations, control))),
    ]
    return Router(routes=routes, default=documents, redirect_slashes=False)


def create_app(
    settings: Settings,
    *,
    apis: Sequence[ApiDescriptor] = REGISTRY,
    on_seeded: OnSeeded | None = None,
) -> ConnexionMiddleware:
    """The app serving ``apis`` (every registered API unless told otherwise). With
    ``settings.fixtures``, its start-up seeds the fixture into the store (once per store)
    and tells ``on_seeded``: what the CLI shows the user of a memory:// store."""
    contracts = [contract.load(api) for api in apis]
    bound = bind(contracts)
    operations = Operations(bound, validate_responses=settings.validate_responses)
    dispatcher = Dispatcher(
        bound,
        fallback=_pages(contracts, operations),
        max_body_bytes=settings.max_body_bytes,
        validate_responses=settings.validate_responses,
        faults=FaultGate(rate_limit=settings.rate_limit, rate_burst=settings.rate_burst),
    )
    fixture = load_fixture(settings.fixtures, by_name(apis)) if settings.fixtures else None
    by_prefix = sorted(apis, key=lambda api: len(api.path_prefix), reverse=True)

    def shape_for(scope: Any) -> str:
        """The error shape of the API a request went to: its operation's, else the API
        whose ``path_prefix`` is the longest match."""
        routing = (scope.get("extensions") or {}).get("connexion_routing", {})
        target = bound.get(routing.get("operation_id") or "")
        if target is not None:
            return target.api.error_shape
        path = scope.get("path", "")
        return next((a.error_shape for a in by_prefix if path.startswith(a.path_prefix)), "fastapi")

    templates: dict[str, set[str]] = {}
    for target in bound.values():
        templates.setdefault(target.operation.path, set()).add(target.operation.method)
    methods_at = [
        (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + r"\Z"), found)
        for path, found in templates.items()
    ]

    def allowed(path: str) -> str | None:
        """Every method the operations at ``path`` take (GET implies HEAD), for a 405."""
        found = set().union(*(m for pattern, m in methods_at if pattern.match(path)))
        if "GET" in found:
            found.add("HEAD")
        return ", ".join(sorted(found)) or None

    on_error = error_handler(shape_for, allowed)
    app = ConnexionMiddleware(
        dispatcher,
        lifespan=_lifespan(settings, apis, fixture, operations, on_seeded),
        middlewares=[
            partial(RecordingMiddleware, contracts=contracts, unlogged_paths=(DASHBOARD,)),
            partial(ServerErrorMiddleware, handler=on_error),
            ExceptionMiddleware,
            AnchoredRoutingMiddleware,
            SecurityMiddleware,
            LifespanMiddleware,
        ],
    )
    # Connexion resolves handlers for its own routing; pollable's dispatcher calls them.
    resolver = Resolver(function_resolver=lambda operation_id: bound[operation_id].handler)
    for served in contracts:
        # ConnexionMiddleware.add_api would re-read the document and check it as 3.0; the
        # API record it appends is built here from the 3.1 Specification instead.
        options = app.options.replace(
            resolver=resolver, security_map={"bearer": bearer_handler(served.api)}
        )
        app.apis.append(
            API(served.specification(), base_path="", name=served.name, **options.__dict__)
        )
    for error in (Exception, HTTPException, ProblemException, Unauthorized, Forbidden):
        app.add_error_handler(error, on_error)
    return app
