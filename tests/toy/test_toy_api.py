"""A toy job API, defined entirely under tests/, served end to end by the unchanged
server: auth with its own key prefixes, request and response validation from its own
document, the shared lifecycle on a moved clock, fixtures, the CLI's demo banner, and
Schemathesis' CLI against it over a real socket."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from pollable.server import banner as banners
from pollable.server.app import create_app
from pollable.server.provision import TenantKeys, provision_tenant
from pollable.server.settings import Settings
from pollable.store.base import Store
from tests.conformance.live import free_port
from tests.conftest import on_store
from tests.toy.api import TOY

ROOT = Path(__file__).resolve().parents[2]
KEY = "toy_test_fixture_key_0001"
FIXTURE = f"""
tenants:
  - name: toyco
    keys: [{{api: toy, key: {KEY}}}, {{api: toy, env: live}}]
jobs:
  - name: seeded
    tenant: toyco
    operation: create_batch
    body: {{items: [one, two, three]}}
    scenario: instant
"""
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    fixture = tmp_path / "toy.yaml"
    fixture.write_text(FIXTURE)
    return Settings(store=f"sqlite:///{tmp_path / 'toy.db'}", fixtures=str(fixture))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, apis=[TOY])) as client:
        yield client


def test_the_toy_api_is_served_with_its_own_auth_and_validation(client: TestClient) -> None:
    assert client.get("/toy/openapi.json").json()["info"]["title"] == "Toy Batch API"
    assert client.get("/toy/docs").status_code == 200
    assert client.post("/toy/v1/batches", json={"items": ["a"]}).status_code == 401
    assert client.post("/toy/v1/batches", json={"items": ["a"]},
                       headers={"Authorization": "Bearer csk_not_a_toy_key"}).status_code == 401  # fmt: skip
    invalid = client.post("/toy/v1/batches", json={"items": []}, headers=AUTH)
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "items"]
    assert client.get("/toy/v1/batches/not-a-uuid", headers=AUTH).status_code == 422
    # The registered APIs are not served by this app.
    assert client.get("/v2/jobs", headers=AUTH).status_code == 404


def test_a_toy_job_moves_through_the_shared_lifecycle(client: TestClient) -> None:
    services = client.app_state["services"]
    now = [time.time()]
    client.app_state["services"] = dataclasses.replace(services, now=lambda: now[0])
    created = client.post("/toy/v1/batches", json={"items": ["a", "b"]}, headers=AUTH)
    assert created.status_code == 202, created.text
    url = f"/toy/v1/batches/{created.json()['batch_id']}"
    assert client.get(url, headers=AUTH).json()["state"] == "queued"
    now[0] += 3600
    assert client.get(url, headers=AUTH).json() == {**created.json(), "state": "done", "done": 2}
    with_prefer = {**AUTH, "Prefer": "scenario=failed"}
    failed = client.post("/toy/v1/batches", json={"items": ["x"]}, headers=with_prefer)
    assert failed.headers["preference-applied"] == "scenario=failed"
    now[0] += 3600
    assert (
        client.get(f"/toy/v1/batches/{failed.json()['batch_id']}", headers=AUTH).json()["state"]
        == "failed"
    )


def test_fixtures_name_the_toy_api_and_its_operations(client: TestClient) -> None:
    store = client.app_state["services"].store
    tenant = client.portal.call(store.find_tenant, "toyco")
    page = client.portal.call(
        lambda: store.list_jobs(tenant.id, api="toy", now=time.time() + 60, limit=10)
    )
    assert page.total == 1 and page.jobs[0].plan.n_items == 3


def test_the_demo_banner_shows_the_toy_call(settings: Settings) -> None:
    async def provision(store: Store) -> TenantKeys:
        return await provision_tenant(store, "demo", [TOY], credits=10)

    demo = on_store(settings.store, provision)
    banner = banners.demo_banner(demo, settings)
    assert f"Toy key          {demo.toy_key}" in banner
    assert f"-d {shlex.quote(json.dumps(TOY.demo.body))}" in banner
    assert f"{banners.base_url(settings)}/toy/v1/batches/JOB_ID" in banner


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings, apis=[TOY]), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/toy/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the toy server did not start"
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.mark.slow
def test_schemathesis_cli_finds_nothing_in_the_toy_api(live: str, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "run", f"{live}/toy/openapi.json", "--checks", "all",
         "--header", f"Authorization: Bearer {KEY}", "--max-examples", "30", "--seed", "1",
         "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
