"""Route patterns end at the end of the path, newline or not."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from connexion.middleware.abstract import ROUTING_CONTEXT
from connexion.middleware.routing import RoutingMiddleware
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route, Router

from pollable.server.routing import anchor, segment_path
from tests.conformance.live import LiveServer
from tests.conftest import Api, Tenant

JOB = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def test_anchor_reaches_mounts_and_chained_defaults() -> None:
    async def endpoint(_: object) -> None:
        return None

    second = Router(routes=[Route("/b/{x}", endpoint)])
    first = Router(routes=[Route("/a", endpoint)], default=second)
    outer = Router(routes=[Mount("", app=first)])
    anchor(outer)
    patterns = [r.path_regex for r in (*outer.routes, *first.routes, *second.routes)]
    assert all(p.pattern.endswith(r"\Z") for p in patterns)
    assert first.routes[0].path_regex.match("/a\n") is None
    assert second.routes[0].path_regex.match("/b/x\n") is not None  # the newline is the param's


def test_a_trailing_newline_never_skips_authentication(api: Api, acme: Tenant) -> None:
    assert api.client.get(f"/api/v1/jobs/{JOB}%0A").status_code == 401
    with_key = api.client.get(f"/api/v1/jobs/{JOB}%0A", headers=acme.crosmos)
    assert with_key.status_code == 422
    assert with_key.json()["detail"][0]["loc"] == ["path", "job_id"]
    body = {"space_id": JOB, "sources": [{"content": "x"}]}
    assert api.client.post("/api/v1/sources%0A", json=body).status_code == 404
    # A collection name is any string upstream: the newline is the name's, after the key.
    index = {"url": "https://example.com/a.pdf", "processing_type": "basic"}
    assert api.client.post("/v2/collections/a%0Ab/index/url", json=index).status_code == 401
    collection = api.client.post(
        "/v2/collections/a%0Ab/index/url", headers=acme.captain, json=index
    )
    assert collection.status_code == 202
    job = api.client.get(f"/v2/jobs/{collection.json()['job_id']}", headers=acme.captain)
    assert job.json()["collection_name"] == "a\nb"


def test_segment_paths_decode_like_the_server_except_slashes() -> None:
    """Routing on a segment path, then decoding each parameter, gives exactly what the
    ASGI server's decoding gives for that segment, with %2F kept inside it."""
    assert segment_path(b"/v2/jobs/abc") is None
    assert segment_path(b"/v2/jobs/abc%252F") is None  # an encoded "%2F", no encoded slash
    assert segment_path(b"/v2/jobs/a%2Fb/cancel") == "/v2/jobs/a%2Fb/cancel"
    assert segment_path(b"/v2/jobs/a%2fb%C3%A9") == "/v2/jobs/a%2Fb\u00e9"
    for segment in (
        "a%2Fb", "a%2fb", "%252F%2F", "%2%35%2F", "a%%2Fb", "%2%2F", "%C3%2F", "%zz%2F", "1%%2F",
        "%E2%82%AC%2F%25", "%2F%2F", "x%00%2F",
    ):  # fmt: skip
        routed = segment_path(f"/v2/jobs/{segment}".encode())
        assert routed is not None and routed.count("/") == 3, segment
        assert unquote(routed.removeprefix("/v2/jobs/")) == unquote(segment), segment


def test_an_encoded_slash_stays_inside_its_segment(api: Api, acme: Tenant) -> None:
    """``%2F`` is data: ``X%2Fcancel`` is a job id, not the cancel path of job X."""
    created = api.client.post(
        "/v2/collections/docs/index/url",
        headers=acme.captain,
        json={"url": "https://example.com/a.pdf", "processing_type": "basic"},
    )
    job = created.json()["job_id"]
    for slash in ("%2F", "%2f"):
        read = api.client.get(f"/v2/jobs/{job}{slash}cancel", headers=acme.captain)
        assert (read.status_code, read.json()) == (404, {"detail": "Job not found"})
        cancel = api.client.post(f"/v2/jobs/{job}{slash}cancel", headers=acme.captain)
        assert cancel.status_code == 405, cancel.text
        assert cancel.json() == {"detail": "Method Not Allowed"}
        assert set(cancel.headers["allow"].split(", ")) == {"GET", "HEAD"}
        crosmos = api.client.get(f"/api/v1/jobs/{JOB}{slash}x", headers=acme.crosmos)
        assert crosmos.status_code == 422
        assert crosmos.json()["detail"][0]["loc"] == ["path", "job_id"]
        collection = api.client.post(
            f"/v2/collections/a{slash}b/index/url",
            headers=acme.captain,
            json={"url": "https://example.com/a.pdf", "processing_type": "basic"},
        )
        # Upstream bounds no collection name's characters: "a/b" is a name, kept whole.
        assert collection.status_code == 202, collection.text
        indexed = api.client.get(f"/v2/jobs/{collection.json()['job_id']}", headers=acme.captain)
        assert indexed.json()["collection_name"] == "a/b"
        assert api.client.get(f"/v2{slash}jobs", headers=acme.captain).status_code == 404
    status = api.client.get(f"/v2/jobs/{job}", headers=acme.captain).json()["status"]
    assert status == "pending", "a GET-shaped path cancelled the job"
    assert api.client.get(f"/v2/jobs/{job}", headers=acme.captain).status_code == 200


def test_no_redirect_and_no_host_reflected(api: Api, acme: Tenant) -> None:
    """A path with a slash too many is no operation: 404 in the contracts' shape, not a 307
    to a Location built from the Host header."""
    evil = {"host": "evil.example"}
    for method, path, auth in (
        ("GET", "/v2/jobs/", acme.captain),
        ("GET", f"/v2/jobs/{JOB}/", acme.captain),
        ("POST", "/api/v1/sources/", acme.crosmos),
        ("POST", "/v2/collections/docs/index/url/", acme.captain),
        ("GET", f"/api/v1/jobs/{JOB}/", acme.crosmos),
        ("GET", "/openapi.json/", {}),
        ("GET", "/v2/openapi.json/", {}),
        ("GET", "/api/v1/sources//", acme.crosmos),
    ):
        response = api.client.request(
            method, path, headers={**auth, **evil}, follow_redirects=False
        )
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json() == {"detail": "Not Found"}
        assert "location" not in response.headers
    # The docs' own redirect (to the UI's folder) is relative: no host in it.
    docs = api.client.get("/docs", headers=evil, follow_redirects=False)
    assert docs.status_code == 307 and docs.headers["location"] == "/docs/"


def test_over_a_real_socket(tmp_path: Path) -> None:
    """What httpx would normalise, sent as bytes to ``pollable serve``: an encoded slash
    reaches the operation of its path (and its authentication), a trailing slash with a
    foreign Host gets a 404 in JSON, never a redirect there."""
    server = LiveServer("memory://", tmp_path / "serve.log").start()
    try:

        def ask(target: str, host: str = "127.0.0.1") -> tuple[str, str]:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                reply = b""
                while b"\r\n\r\n" not in reply:
                    reply += sock.recv(65536)
            head = reply.decode("latin-1").split("\r\n\r\n")[0]
            return head.split("\r\n")[0], head.lower()

        status, _ = ask(f"/v2/jobs/{JOB}%2Fcancel")
        assert status == "HTTP/1.1 401 Unauthorized"  # the GET of job "X/cancel"
        for target in ("/v2/jobs/", f"/api/v1/jobs/{JOB}/", "/api/v1/sources/"):
            status, head = ask(target, host="evil.example")
            assert status == "HTTP/1.1 404 Not Found", (target, status)
            assert "content-type: application/json" in head and "evil" not in head
    finally:
        server.stop()


# -- the route index ----------------------------------------------------------------------


def _served_routing() -> Any:
    """The app's routing middleware, with every served API added, as create_app builds it."""
    from pollable.server.app import create_app
    from pollable.server.routing import AnchoredRoutingMiddleware
    from pollable.server.settings import Settings

    app = create_app(Settings(store="memory://"))
    _, stack = app._build_middleware_stack()
    (routing,) = [layer for layer in stack if isinstance(layer, AnchoredRoutingMiddleware)]
    return routing


ROUTING = _served_routing()
TEMPLATES = sorted(
    {
        (method, route.path)
        for by_shape, by_count, anywhere in ROUTING.index.routers
        for routes in (*by_shape.values(), *by_count.values(), anywhere)
        for route in routes
        for method in route.methods or ()
    }
)
SEGMENT = st.text(st.characters(blacklist_characters="/"), min_size=0, max_size=6)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str]:
    """A method and a path: an operation's template filled in, then perhaps bent (another
    method, a segment more or less, a trailing slash or newline, a literal changed)."""
    method, template = draw(st.sampled_from(TEMPLATES))
    segments = [
        draw(SEGMENT.filter(bool)) if part.startswith("{") else part for part in template.split("/")
    ]
    bend = draw(st.sampled_from(["none", "method", "more", "less", "slash", "newline", "literal"]))
    if bend == "method":
        method = draw(st.sampled_from(["GET", "POST", "DELETE", "PATCH", "HEAD", "PUT"]))
    elif bend == "more":
        segments.append(draw(SEGMENT))
    elif bend == "less" and len(segments) > 2:
        segments.pop()
    elif bend == "literal":
        segments[draw(st.integers(1, len(segments) - 1))] = draw(SEGMENT)
    path = "/".join(segments) + {"slash": "/", "newline": "\n"}.get(bend, "")
    return method, path


def _starlette_routes(method: str, path: str) -> tuple[str | None, dict[str, Any]] | int:
    """Where Connexion's own router sends the request: (operation_id, path params) of the
    scope its operation gets, or the status it answers itself."""
    seen: list[Any] = []
    decode = ROUTING.app
    inner, decode.app = decode.app, lambda scope, receive, send: _record(seen, scope)
    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    try:
        asyncio.run(RoutingMiddleware.__call__(ROUTING, _scope(method, path), _receive, send))
    finally:
        decode.app = inner
    if statuses:
        return statuses[0]
    (scope,) = seen
    return scope["extensions"][ROUTING_CONTEXT]["operation_id"], scope.get("path_params", {})


async def _record(seen: list[Any], scope: Any) -> None:
    seen.append(scope)


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_index_routes_as_starlettes_router_does(request: tuple[str, str]) -> None:
    """Whatever the index finds is where Starlette's router goes, with the same parameters;
    and it finds every request Starlette routes to an operation of a path's own shape."""
    method, path = request
    found = ROUTING.index.find(_scope(method, path))
    starlette = _starlette_routes(method, path)
    if found is None:
        assert isinstance(starlette, int) or starlette[0] is None, (method, path, starlette)
    else:
        operation, child = found
        assert starlette == (operation.operation_id, child["path_params"]), (method, path)


def test_every_operation_is_found_by_the_index() -> None:
    for method, template in TEMPLATES:
        path = re.sub(r"\{[^}]+\}", "x", template)
        found = ROUTING.index.find(_scope(method, path))
        assert found is not None, (method, template)
        assert _starlette_routes(method, path) == (found[0].operation_id, found[1]["path_params"])
