"""Route patterns end at the end of the path, newline or not."""

from __future__ import annotations

from starlette.routing import Mount, Route, Router

from pollable.server.routing import anchor
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
