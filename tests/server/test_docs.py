"""Each served document at its URL, Swagger UI beside it, FastAPI-shaped 404 and 405."""

from __future__ import annotations

from pollable.handlers.registry import APIS
from pollable.server import contract
from tests.conftest import Api


def test_documents_are_served_exactly(api: Api) -> None:
    for name, url in (("crosmos", "/openapi.json"), ("captain", "/v2/openapi.json")):
        response = api.client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == contract.load(APIS[name]).served


def test_swagger_ui_beside_each_document(api: Api) -> None:
    for name, docs, spec in (
        ("crosmos", "/docs", "/openapi.json"),
        ("captain", "/v2/docs", "/v2/openapi.json"),
    ):
        assert api.client.get(docs, follow_redirects=False).status_code in (302, 307)
        page = api.client.get(docs + "/")
        assert page.status_code == 200 and f'url: "{spec}"' in page.text
        assert f"<title>{contract.load(APIS[name]).title} - pollable</title>" in page.text
        assert api.client.get(docs + "/").content == page.content
        assert api.client.get(docs + "/swagger-ui-bundle.js").status_code == 200


def test_unknown_paths_and_methods(api: Api) -> None:
    missing = api.client.get("/nowhere")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = api.client.delete("/v2/jobs")
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    assert "GET" in wrong.headers["allow"]
