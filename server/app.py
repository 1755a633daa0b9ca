"""The composition root: ``create_app(settings)`` is the only place the app is built.

The request path through the stack::

    ServerError -> Exception (contract-shaped errors) -> Routing -> Security (bearer)
      -> Lifespan -> Dispatcher (read + check request, handler, check + write reply)

Connexion routes and authenticates from the served documents; request and response
checking is pollable's (``server.operation``), compiled here, once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Mapping
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

from pollable.handlers.api import Handler
from pollable.store import open_store
from pollable.store.base import Store

from . import contract
from .auth import Authenticator, Forbidden, Unauthorized, bearer_handler
from .contract import Contract, ContractError
from .dispatch import Bound, Dispatcher
from .docs import docs_app
from .errors import connexion_error_handler
from .operation import Operation, compile_operations
from .routes import HANDLERS
from .routing import AnchoredRoutingMiddleware
from .seed import Fixture, Operations, load_fixture, seed
from .services import Services
from .settings import Settings

APIS = ("crosmos", "captain")


def required_statuses(operation: Operation) -> set[int]:
    """Statuses the server can answer for this operation, which its contract must declare."""
    statuses = {500}
    if operation.secured:
        statuses.add(401)
    if any(p.name.lower() == "x-organization-id" for p in operation.params):
        statuses.add(403)
    if operation.params or operation.body is not None:
        statuses.add(422)
    if operation.body is not None:
        statuses.add(413)
    return statuses


def bind(contracts: list[Contract], handlers: Mapping[str, Handler]) -> dict[str, Bound]:
    """Every operation of every contract, with its handler; any gap is a ``ContractError``."""
    bound: dict[str, Bound] = {}
    for served in contracts:
        for operation in compile_operations(served.document):
            if operation.operation_id not in handlers:
                raise ContractError(f"no handler for operation {operation.operation_id}")
            missing = required_statuses(operation) - set(operation.responses)
            if missing:
                raise ContractError(
                    f"{operation.operation_id} can answer {sorted(missing)} but does not declare it"
                )
            bound[operation.operation_id] = Bound(operation, handlers[operation.operation_id])
    unused = set(handlers) - set(bound)
    if unused:
        raise ContractError(f"handlers no operation reaches: {sorted(unused)}")
    return bound


async def _apply_fixture(store: Store, settings: Settings, fixture: Fixture) -> None:
    """Seed the fixture once per store, even when several workers start together: the one
    whose token the store keeps does it."""
    token = secrets.token_hex(16)
    if await store.meta(f"fixture:{fixture.digest}", token) == token:
        await seed(store, settings, fixture, Operations(), now=time.time())


def _lifespan(settings: Settings, fixture: Fixture | None) -> Any:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        store = open_store(settings.store)
        await store.open()
        try:
            secret = settings.jwt_secret or await store.meta(
                "jwt_secret", secrets.token_urlsafe(32)
            )
            if fixture is not None:
                await _apply_fixture(store, settings, fixture)
            services = Services(settings, store, Authenticator(store, secret), time.time)
            yield {"services": services}
        finally:
            await store.close()

    return lifespan


def create_app(settings: Settings) -> ConnexionMiddleware:
    contracts = [contract.load(name) for name in APIS]
    dispatcher = Dispatcher(
        bind(contracts, HANDLERS),
        fallback=docs_app(contracts),
        max_body_bytes=settings.max_body_bytes,
        validate_responses=settings.validate_responses,
    )
    fixture = load_fixture(settings.fixtures) if settings.fixtures else None
    app = ConnexionMiddleware(
        dispatcher,
        lifespan=_lifespan(settings, fixture),
        middlewares=[
            partial(ServerErrorMiddleware, handler=connexion_error_handler),
            ExceptionMiddleware,
            AnchoredRoutingMiddleware,
            SecurityMiddleware,
            LifespanMiddleware,
        ],
    )
    # Connexion resolves handlers for its own routing; pollable's dispatcher calls them.
    resolver = Resolver(function_resolver=HANDLERS.__getitem__)
    for served in contracts:
        # ConnexionMiddleware.add_api would re-read the document and check it as 3.0; the
        # API record it appends is built here from the 3.1 Specification instead.
        options = app.options.replace(
            resolver=resolver, security_map={"bearer": bearer_handler(served.name)}
        )
        app.apis.append(
            API(served.specification(), base_path="", name=served.name, **options.__dict__)
        )
    for error in (Exception, HTTPException, ProblemException, Unauthorized, Forbidden):
        app.add_error_handler(error, connexion_error_handler)
    return app
