"""The served documents and Swagger UI beside them, for requests no operation matches.

Each contract is published exactly as the server validates against it, serialised once
at start-up. Swagger UI 5 is used because it renders OpenAPI 3.1; its page is rendered when
it is first asked for, not at every start.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jinja2
import swagger_ui_bundle
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from .contract import Contract

_ASSETS = StaticFiles(directory=swagger_ui_bundle.swagger_ui_path)


@functools.cache
def _template() -> jinja2.Template:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(swagger_ui_bundle.swagger_ui_path), autoescape=True
    ).get_template("index.j2")


def _swagger_page(openapi_url: str, title: str) -> bytes:
    html = _template().render(openapi_spec_url=openapi_url)
    return html.replace("<title>Swagger UI</title>", f"<title>{title} - pollable</title>").encode()


def _routes(contract: Contract) -> list[BaseRoute]:
    served, docs = contract.served, contract.docs_url
    page = functools.cache(functools.partial(_swagger_page, contract.openapi_url, contract.title))

    async def document(_: Request) -> Response:
        return Response(served, media_type="application/json")

    async def ui(_: Request) -> Response:
        return HTMLResponse(page())

    async def to_ui(_: Request) -> Response:
        return RedirectResponse(docs + "/")

    return [
        Route(contract.openapi_url, document, methods=["GET"]),
        Route(docs, to_ui, methods=["GET"]),
        Route(docs + "/", ui, methods=["GET"]),
        Mount(docs, app=_ASSETS),
    ]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    raise HTTPException(status_code=404)


def docs_app(contracts: Iterable[Contract]) -> Router:
    """Routes for every contract's document and UI; anything else is a 404 (never a
    redirect to another slash: it would be built from the client's Host header)."""
    routes = [route for contract in contracts for route in _routes(contract)]
    return Router(routes=routes, default=_not_found, redirect_slashes=False)
