"""The dashboard: server-rendered pages over the control plane's operations.

Every page is one or more calls of control-plane operations through the gateway the
composition root hands in (``server.gateway``: ``dispatch.respond``, as HTTP), made as the
signed-in principal; nothing here reads the store. Templates are Jinja2 with autoescape,
so whatever came from a request (bodies, headers, names) is shown as text; the pages carry
a Content-Security-Policy that allows only the dashboard's own script and style.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from pollable.handlers.api import Principal, Reply

from . import session as sessions
from .session import Session

PATH = "/dashboard"
EXPIRED = "This form has expired or came from another site: reload the page and try again."
#: A form is a few fields: more than this is refused unread.
MAX_FORM_BYTES = 16 * 1024
ITEMS_PAGE = 50
PRESENTED_FILES = 10
LOG_PAGE = 50
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # "no-referrer" would make a browser send "Origin: null" with the forms it posts.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Gateway(Protocol):
    """What the dashboard may do (``server.gateway.Gateway``)."""

    async def sign_in(
        self, services: Any, token: str
    ) -> tuple[Principal, tuple[str | None, str]] | None: ...
    async def resume(
        self, services: Any, credential: tuple[str | None, str]
    ) -> Principal | None: ...
    def session_key(self, services: Any) -> bytes: ...
    async def call(
        self,
        services: Any,
        principal: Principal,
        operation_id: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Reply: ...
    async def read_job(
        self,
        services: Any,
        principal: Principal,
        job: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> Reply: ...


class Refused(Exception):
    """A control-plane operation refused the call: shown on the page with its status."""

    def __init__(self, reply: Reply) -> None:
        body = reply.body if isinstance(reply.body, dict) else {}
        detail = body.get("detail") or body.get("title") or f"status {reply.status}"
        errors = body.get("errors") or []
        if errors:
            detail += ": " + "; ".join(
                f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}" for e in errors
            )
        super().__init__(detail)
        self.status = reply.status if 400 <= reply.status < 600 else 502
        self.detail = detail


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _environment() -> jinja2.Environment:
    folder = resources.files("pollable.dashboard") / "templates"
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
    )
    environment.filters["pretty"] = _pretty
    return environment


@dataclass
class Visit:
    """One signed-in request: who, which tenant's data it shows, and its calls."""

    request: Request
    gateway: Gateway
    principal: Principal
    session: Session
    key: bytes
    #: The tenant shown: the key's own, or the one the admin picked (None: none yet).
    tenant_id: str | None

    @property
    def services(self) -> Any:
        return self.request.state.services

    @property
    def csrf(self) -> str:
        return sessions.token_for(self.key, self.session.nonce)

    def scoped(self, params: Mapping[str, Any], *, named: bool = True) -> dict[str, Any]:
        """Parameters of a call about the shown tenant (the admin names it, ``named``)."""
        given = {k: v for k, v in params.items() if v not in (None, "")}
        if named and self.principal.admin and self.tenant_id:
            given["tenant_id"] = self.tenant_id
        return given

    async def call(self, operation_id: str, body: Any = None, **params: Any) -> Any:
        """The body of a control-plane operation's answer, about the shown tenant (the
        admin's call names it: ``tenant_id``); ``Refused`` for an error."""
        return await self._call(operation_id, body, self.scoped(params))

    async def call_unscoped(self, operation_id: str, body: Any = None, **params: Any) -> Any:
        """``call`` for an operation that names no tenant in its parameters."""
        return await self._call(operation_id, body, self.scoped(params, named=False))

    async def _call(self, operation_id: str, body: Any, params: dict[str, Any]) -> Any:
        reply = await self.gateway.call(self.services, self.principal, operation_id, params, body)
        if reply.status >= 400:
            raise Refused(reply)
        return reply.data

    def url(self, path: str, **params: Any) -> str:
        given = {k: v for k, v in params.items() if v not in (None, "")}
        if self.principal.admin and self.tenant_id:
            given.setdefault("tenant", self.tenant_id)
        query = urlencode(given)
        return f"{PATH}{path}" + (f"?{query}" if query else "")


Page = Callable[[Visit], Awaitable[Response]]


class Dashboard:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.templates = _environment()

    # -- plumbing -----------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(name).render(path=PATH, **context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def page(self, name: str, visit: Visit, status: int = 200, **context: Any) -> Response:
        return self.render(name, status, visit=visit, principal=visit.principal, **context)

    def redirect(self, location: str) -> Response:
        return RedirectResponse(location, status_code=303, headers=HEADERS)

    def signed_in(self, handler: Page, *, post: bool = False) -> Callable[[Request], Any]:
        """``handler`` for a signed-in visitor; others go to the sign-in page. A POST must
        come from this site and carry the session's CSRF token (else 403)."""

        async def endpoint(request: Request) -> Response:
            visit = await self._visit(request)
            if visit is None:
                if post:
                    return self._signin_again(request, "Sign in again.", 403)
                return self.redirect(f"{PATH}/signin")
            if post:
                form = await _form(request)
                token = None if form is None else form.get("csrf")
                if not _same_site(request) or not sessions.token_matches(
                    visit.key, visit.session.nonce, token
                ):
                    return self.page("error.html", visit, 403, error=EXPIRED)
                assert form is not None
                request.state.form = form
                visit.tenant_id = visit.principal.tenant_id or form.get("tenant") or None
            try:
                return await handler(visit)
            except Refused as refused:
                return self.page("error.html", visit, refused.status, error=refused.detail)

        return endpoint

    async def _visit(self, request: Request) -> Visit | None:
        """The signed-in visit of ``request``: a valid session whose key still works."""
        services = request.state.services
        key = self.gateway.session_key(services)
        held = Session.unseal(key, request.cookies.get(sessions.COOKIE), time.time())
        if held is None:
            return None
        principal = await self.gateway.resume(services, (held.issuer, held.digest))
        if principal is None:
            return None
        tenant = principal.tenant_id or request.query_params.get("tenant") or None
        return Visit(request, self.gateway, principal, held, key, tenant)

    def _signin_form(self, request: Request) -> dict[str, Any]:
        nonce = request.cookies.get(sessions.SIGNIN_COOKIE) or sessions.new_nonce()
        key = self.gateway.session_key(request.state.services)
        return {"signin_nonce": nonce, "csrf": sessions.token_for(key, nonce)}

    # -- sign-in ------------------------------------------------------------------------

    async def signin_page(self, request: Request) -> Response:
        form = self._signin_form(request)
        response = self.render("signin.html", csrf=form["csrf"], error=None)
        _set_cookie(request, response, sessions.SIGNIN_COOKIE, form["signin_nonce"], 600)
        return response

    async def signin(self, request: Request) -> Response:
        services = request.state.services
        key = self.gateway.session_key(services)
        form = await _form(request)
        nonce = request.cookies.get(sessions.SIGNIN_COOKIE)
        if (
            form is None
            or nonce is None
            or not _same_site(request)
            or not sessions.token_matches(key, nonce, form.get("csrf"))
        ):
            return self._signin_again(request, "This form has expired: try again.", 403)
        found = await self.gateway.sign_in(services, form.get("credential", "").strip())
        if found is None:
            return self._signin_again(request, "That is not a key or token of this sandbox.", 401)
        _principal, (issuer, digest) = found
        held = Session(issuer, digest, sessions.new_nonce(), time.time() + sessions.MAX_AGE)
        response = self.redirect(f"{PATH}/")
        _set_cookie(request, response, sessions.COOKIE, held.seal(key), sessions.MAX_AGE)
        response.delete_cookie(sessions.SIGNIN_COOKIE, path=PATH)
        return response

    def _signin_again(self, request: Request, error: str, status: int) -> Response:
        form = self._signin_form(request)
        response = self.render("signin.html", status, csrf=form["csrf"], error=error)
        _set_cookie(request, response, sessions.SIGNIN_COOKIE, form["signin_nonce"], 600)
        return response

    async def signout(self, visit: Visit) -> Response:
        response = self.redirect(f"{PATH}/signin")
        response.delete_cookie(sessions.COOKIE, path=PATH)
        return response

    async def home(self, visit: Visit) -> Response:
        if visit.principal.admin and not visit.tenant_id:
            return self.redirect(f"{PATH}/tenants")
        return self.redirect(visit.url("/jobs"))


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name, value, max_age=age, path=PATH, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def _same_site(request: Request) -> bool:
    """Whether a POST comes from the dashboard's own pages: a browser says where a request
    comes from (``Sec-Fetch-Site``, ``Origin``); a request saying another site is refused."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def _form(request: Request) -> dict[str, str] | None:
    """A urlencoded form of at most ``MAX_FORM_BYTES``, first value of each field."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def dashboard_app(gateway: Gateway) -> Router:
    """The dashboard's routes, mounted at ``PATH`` by the composition root."""
    from . import pages

    board = Dashboard(gateway)

    def get(page: Page) -> Callable[[Request], Any]:
        return board.signed_in(page)

    def post(page: Page) -> Callable[[Request], Any]:
        return board.signed_in(page, post=True)

    static = resources.files("pollable.dashboard") / "static"
    routes: list[BaseRoute] = [
        Route("/", get(board.home)),
        Route("/signin", board.signin_page, methods=["GET"]),
        Route("/signin", board.signin, methods=["POST"]),
        Route("/signout", post(board.signout), methods=["POST"]),
        *pages.routes(board, get, post),
        Mount("/static", app=StaticFiles(directory=str(static))),
    ]
    return Router(routes=routes, redirect_slashes=False)


def root_page(links: list[tuple[str, str]]) -> Callable[[Request], Awaitable[Response]]:
    """``/``: where the dashboard and each contract's documents are."""
    environment = _environment()

    async def root(_request: Request) -> Response:
        html = environment.get_template("root.html").render(path=PATH, links=links)
        return HTMLResponse(html, headers=HEADERS)

    return root


__all__ = ["PATH", "Dashboard", "Gateway", "Refused", "Visit", "dashboard_app", "root_page"]
