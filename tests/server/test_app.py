"""The composition root: every operation bound, every status declared, nothing compiled or
inspected per request."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from pollable.handlers.api import Call, Reply
from pollable.handlers.registry import REGISTRY
from pollable.server import app as app_module
from pollable.server import contract
from pollable.server.contract import ContractError
from pollable.server.dispatch import bind, required_statuses
from pollable.server.operation import compile_operations
from pollable.server.seed import SeedError
from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

UUID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"

SOURCES = {
    "space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "sources": [{"content": "Ada met Alan."}],
}


def contracts() -> list[contract.Contract]:
    return [contract.load(api) for api in REGISTRY]


def test_every_operation_resolves_and_every_handler_is_reached() -> None:
    for served in contracts():
        operation_ids = {op.operation_id for op in compile_operations(served.document)}
        assert operation_ids == set(served.api.handlers), served.name
    assert set(bind(contracts())) == {op for c in contracts() for op in c.api.handlers}


def with_handlers(served: contract.Contract, handlers: dict[str, Any]) -> contract.Contract:
    api = dataclasses.replace(served.api, handlers=handlers)
    return dataclasses.replace(served, api=api)


def test_a_missing_or_unused_handler_stops_the_start() -> None:
    crosmos, captain, *_ = contracts()
    handlers = dict(captain.api.handlers)
    handlers.pop("cancel_job_v2")
    with pytest.raises(ContractError, match="no handler for operation cancel_job_v2"):
        bind([crosmos, with_handlers(captain, handlers)])
    extra = {**captain.api.handlers, "nobody": captain.api.handlers["cancel_job_v2"]}
    with pytest.raises(ContractError, match="reaches"):
        bind([crosmos, with_handlers(captain, extra)])


def test_every_status_the_server_can_answer_is_declared() -> None:
    for served in contracts():
        for operation in compile_operations(served.document):
            required = required_statuses(served.api, operation)
            assert required <= set(operation.responses), operation.operation_id


def test_no_schema_is_compiled_and_no_signature_inspected_per_request(
    api: Api, acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.client.post("/api/v1/sources", headers=acme.crosmos, json=SOURCES)
    assert created.status_code == 202

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("called on the request path")

    for name in ("Draft202012Validator", "validator_for", "Draft4Validator"):
        monkeypatch.setattr(jsonschema_rs, name, forbidden)
    monkeypatch.setattr(inspect, "signature", forbidden)
    job_id = created.json()["job_id"]
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos).status_code == 200
    assert api.client.post("/api/v1/sources", headers=acme.crosmos, json=SOURCES).status_code == 202
    assert api.client.get("/v2/jobs", headers=acme.captain).status_code == 200


def test_a_reply_that_breaks_the_contract_is_never_sent(
    api: Api, acme: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(call: Call) -> Reply:
        return Reply(200, {"jobs": "not a list"})

    dispatcher = list(api.client.app.middleware_stack)[-1]  # the innermost app
    bound = dispatcher.bound
    target = bound["list_jobs_v2"]
    monkeypatch.setitem(bound, "list_jobs_v2", dataclasses.replace(target, handler=broken))
    response = api.client.get("/v2/jobs", headers=acme.captain)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "breaks the contract" in caplog.text


FIXTURE = """
tenants:
  - name: ci
    organization_id: 0b9c2a6e-39f1-4a47-9a58-0d1a1bd4a001
    keys: [{api: crosmos, key: csk_fixture_ci_0001}, {api: captain, key: cap_dev_fixture_ci_0001}]
jobs:
  - name: done
    tenant: ci
    operation: index_url_v2
    params: {collection_name: docs}
    body: {url: "https://example.com/a.pdf", processing_type: basic}
    scenario: instant
"""
CI_CAPTAIN = {
    "Authorization": "Bearer cap_dev_fixture_ci_0001",
    "X-Organization-ID": "0b9c2a6e-39f1-4a47-9a58-0d1a1bd4a001",
}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_fixtures_are_loaded_once_per_store_at_start_up(backend: str, tmp_path: Path) -> None:
    fixture = tmp_path / "ci.yaml"
    fixture.write_text(FIXTURE)
    settings = Settings(store=store_url(backend, tmp_path), fixtures=str(fixture))
    for _ in range(2):
        for api in start(settings):
            api.clock.advance(60)  # the test clock was read before the fixture was seeded
            listed = api.client.get("/v2/jobs", headers=CI_CAPTAIN).json()
            assert listed["total"] == 1 and listed["jobs"][0]["status"] == "completed"
            crosmos = {"Authorization": "Bearer csk_fixture_ci_0001"}
            assert api.client.get(f"/api/v1/jobs/{UUID}", headers=crosmos).status_code == 404


def test_a_broken_fixture_stops_the_start(tmp_path: Path) -> None:
    fixture = tmp_path / "bad.yaml"
    fixture.write_text("tenants: [{name: ci, colour: blue}]")
    with pytest.raises(SeedError, match="colour"):
        app_module.create_app(Settings(store="memory://", fixtures=str(fixture)))
