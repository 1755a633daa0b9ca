"""Fault rules over HTTP on every backend: managed through the control plane (isolated per
tenant, validated), applied before a job API's handler (in its own error shape, with the
headers the SDKs read; a faulted create stores nothing), per request with ``Prefer:
fault=...``, counted (every Nth, next N, seeded probability, one job's polls), forgotten
by reset; and the per-tenant rate limit."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

ADMIN_TOKEN = "an-admin-token-for-the-fault-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAULTS = "/sandbox/v1/faults"
SOURCES = {
    "space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "sources": [{"content": "Ada met Alan."}],
}
URL = {"url": "https://example.com/a.pdf", "processing_type": "basic"}
CROSMOS_GET = "get_job_status_api_v1_jobs__job_id__get"


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Any:
    yield from start(Settings(store=store_url(backend, tmp_path), admin_token=ADMIN_TOKEN))


def rule(server: Api, tenant: Tenant, **body: Any) -> dict[str, Any]:
    made = server.client.post(FAULTS, json=body, headers=tenant.crosmos)
    assert made.status_code == 201, made.text
    return dict(made.json())


def ingest(api: Api, tenant: Tenant, **headers: str) -> Any:
    return api.client.post("/api/v1/sources", json=SOURCES, headers={**tenant.crosmos, **headers})


def job_ids(server: Api, tenant: Tenant) -> list[str]:
    """The tenant's stored jobs of both APIs, read from the store (no request to fault)."""
    store, found = server.services.store, []
    for name in ("crosmos", "captain"):
        page = server.run(store.list_jobs, tenant.tenant.id, api=name, now=time.time(), limit=50)
        found += [record.job_id for record in page.jobs]
    return found


def statuses(api: Api, tenant: Tenant, path: str, n: int) -> list[int]:
    return [api.client.get(path, headers=tenant.crosmos).status_code for _ in range(n)]


# -- the control plane ----------------------------------------------------------------


def test_rules_are_created_listed_read_and_deleted(api: Api, acme: Tenant) -> None:
    made = rule(api, acme, api="captain", operation="get_job_status_v2",
                action={"status": 429, "retry_after": 2}, trigger={"next": 2})  # fmt: skip
    assert made["id"].startswith("flt_") and made["matched"] == 0
    assert (made["api"], made["operation"], made["job_id"]) == (
        "captain", "get_job_status_v2", None,
    )  # fmt: skip
    assert made["action"] == {"status": 429, "retry_after": 2}
    assert made["trigger"] == {"next": 2}
    other = rule(api, acme, action={"latency_ms": 5})
    assert other["trigger"] is None and other["api"] is None
    listed = api.client.get(FAULTS, headers=acme.crosmos).json()["data"]
    assert [r["id"] for r in listed] == [made["id"], other["id"]]
    got = api.client.get(f"{FAULTS}/{made['id']}", headers=acme.captain)
    assert got.status_code == 200 and got.json() == made
    assert api.client.delete(f"{FAULTS}/{made['id']}", headers=acme.crosmos).status_code == 204
    assert api.client.get(f"{FAULTS}/{made['id']}", headers=acme.crosmos).status_code == 404
    assert [r["id"] for r in api.client.get(FAULTS, headers=acme.crosmos).json()["data"]] == [
        other["id"]
    ]


def test_another_tenants_rule_is_not_found(api: Api, acme: Tenant, globex: Tenant) -> None:
    made = rule(api, acme, action={"status": 503})
    for method in ("get", "delete"):
        response = api.client.request(method, f"{FAULTS}/{made['id']}", headers=globex.crosmos)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert api.client.get(FAULTS, headers=globex.crosmos).json() == {"data": []}
    named = api.client.get(FAULTS, params={"tenant_id": acme.tenant.id}, headers=globex.crosmos)
    assert named.status_code == 404
    # ... and globex's requests are not faulted by acme's rule.
    assert ingest(api, globex).status_code == 202


def test_the_admin_names_the_tenant(api: Api, acme: Tenant) -> None:
    body = {"action": {"status": 500}}
    assert api.client.post(FAULTS, json=body, headers=ADMIN).status_code == 422
    made = api.client.post(FAULTS, json=body, params={"tenant_id": acme.tenant.id}, headers=ADMIN)
    assert made.status_code == 201
    listed = api.client.get(FAULTS, headers=acme.crosmos).json()["data"]
    assert [r["id"] for r in listed] == [made.json()["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": {}},
        {"action": {"status": 404}},
        {"action": {"status": 500, "retry_after": 3}},
        {"action": {"status": 429, "latency_ms": 10}},
        {"action": {"latency_ms": 0}},
        {"action": {"latency_ms": 60001}},
        {"action": {"close": False}},
        {"action": {"status": 429, "retry_after": 3601}},
        {"action": {"status": 429}, "trigger": {"every": 0}},
        {"action": {"status": 429}, "trigger": {"next": 1, "every": 2}},
        {"action": {"status": 429}, "trigger": {"probability": 0.5}},
        {"action": {"status": 429}, "trigger": {"probability": 1.5, "seed": 1}},
        {"action": {"status": 429}, "api": "nope"},
        {"action": {"status": 429}, "api": "crosmos", "operation": "get_job_status_v2"},
        {"action": {"status": 429}, "operation": "create_tenant"},
        {"action": {"status": 429}, "surprise": 1},
    ],
)
def test_invalid_rules_are_refused(api: Api, acme: Tenant, body: dict[str, Any]) -> None:
    response = api.client.post(FAULTS, json=body, headers=acme.crosmos)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert api.client.get(FAULTS, headers=acme.crosmos).json() == {"data": []}


def test_a_tenant_has_at_most_100_rules(api: Api, acme: Tenant) -> None:
    for _ in range(100):
        rule(api, acme, action={"latency_ms": 1}, operation="list_jobs_v2")
    refused = api.client.post(FAULTS, json={"action": {"status": 500}}, headers=acme.crosmos)
    assert refused.status_code == 409


def test_reset_forgets_the_rules(api: Api, acme: Tenant) -> None:
    rule(api, acme, action={"status": 503})
    assert ingest(api, acme).status_code == 503
    assert api.client.post("/sandbox/v1/reset", json={}, headers=acme.crosmos).status_code == 200
    assert api.client.get(FAULTS, headers=acme.crosmos).json() == {"data": []}
    assert ingest(api, acme).status_code == 202


# -- what a rule does -------------------------------------------------------------------


def test_a_429_has_the_headers_both_sdks_read(api: Api, acme: Tenant) -> None:
    rule(api, acme, action={"status": 429, "retry_after": 3})
    before = time.time()
    response = ingest(api, acme)
    assert response.status_code == 429
    assert response.json() == {"detail": "Too Many Requests (a sandbox fault)"}
    headers = response.headers
    assert headers["retry-after"] == "3" and headers["retry-after-ms"] == "3000"
    assert headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-limit"]) >= 1
    # Epoch seconds, as Fern reads it: when a retry is welcome.
    assert before + 3 <= int(headers["x-ratelimit-reset"]) <= time.time() + 4
    assert headers["request-id"].startswith("req_")


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_in_each_apis_own_shape(api: Api, acme: Tenant, status: int) -> None:
    rule(api, acme, action={"status": status})
    crosmos = ingest(api, acme)
    captain = api.client.post("/v2/collections/docs/index/url", json=URL, headers=acme.captain)
    for response in (crosmos, captain):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"detail"}
        assert ("retry-after" in response.headers) is (status == 503)
    # The control plane is never faulted.
    assert api.client.get(FAULTS, headers=acme.crosmos).status_code == 200


def test_a_faulted_create_stores_nothing(api: Api, acme: Tenant) -> None:
    credits = api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}", headers=ADMIN).json()
    rule(api, acme, api="captain", action={"status": 503}, trigger={"next": 1})
    faulted = api.client.post("/v2/collections/docs/index/url", json=URL, headers=acme.captain)
    assert faulted.status_code == 503
    assert job_ids(api, acme) == []
    after = api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}", headers=ADMIN).json()
    assert after["credits"] == credits["credits"]
    made = api.client.post("/v2/collections/docs/index/url", json=URL, headers=acme.captain)
    assert made.status_code == 202
    assert job_ids(api, acme) == [made.json()["job_id"]]


def test_next_n_then_every_nth(api: Api, acme: Tenant) -> None:
    job = ingest(api, acme).json()["job_id"]
    path = f"/api/v1/jobs/{job}"
    made = rule(api, acme, operation=CROSMOS_GET, action={"status": 429}, trigger={"next": 2})
    assert statuses(api, acme, path, 4) == [429, 429, 200, 200]
    assert api.client.get(f"{FAULTS}/{made['id']}", headers=acme.crosmos).json()["matched"] == 4
    api.client.delete(f"{FAULTS}/{made['id']}", headers=acme.crosmos)
    rule(api, acme, operation=CROSMOS_GET, action={"status": 500}, trigger={"every": 3})
    assert statuses(api, acme, path, 7) == [200, 200, 500, 200, 200, 500, 200]
    # Creates match no rule of the read operation.
    assert ingest(api, acme).status_code == 202


def test_a_seeded_probability_is_deterministic(api: Api, acme: Tenant, globex: Tenant) -> None:
    sequences = []
    for tenant in (acme, globex, acme):
        api.client.post("/sandbox/v1/reset", json={}, headers=tenant.crosmos)
        rule(api, tenant, operation="list_jobs_v2", action={"status": 503},
             trigger={"probability": 0.5, "seed": 7})  # fmt: skip
        sequences.append(
            [api.client.get("/v2/jobs", headers=tenant.captain).status_code for _ in range(24)]
        )
    assert sequences[0] == sequences[1] == sequences[2]
    assert {200, 503} == set(sequences[0])


def test_a_rule_for_one_jobs_polls(api: Api, acme: Tenant) -> None:
    one, other = (ingest(api, acme).json()["job_id"] for _ in range(2))
    rule(api, acme, job_id=one, action={"status": 503})
    assert api.client.get(f"/api/v1/jobs/{one}", headers=acme.crosmos).status_code == 503
    assert api.client.get(f"/api/v1/jobs/{other}", headers=acme.crosmos).status_code == 200
    assert ingest(api, acme).status_code == 202


def test_latency_then_the_usual_answer(api: Api, acme: Tenant) -> None:
    rule(api, acme, operation="list_jobs_v2", action={"latency_ms": 300})
    started = time.perf_counter()
    response = api.client.get("/v2/jobs", headers=acme.captain)
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_without_pollables_protocol_a_close_is_a_503_that_closes(api: Api, acme: Tenant) -> None:
    rule(api, acme, api="crosmos", action={"close": True})
    response = ingest(api, acme)
    assert response.status_code == 503 and response.headers["connection"] == "close"
    assert job_ids(api, acme) == []


# -- Prefer: fault=... -------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_prefer_asks_for_a_fault(api: Api, acme: Tenant, status: int) -> None:
    response = ingest(api, acme, Prefer=f"fault={status}")
    assert response.status_code == status
    assert response.headers["preference-applied"] == f"fault={status}"
    assert job_ids(api, acme) == []


def test_prefer_on_a_read_with_retry_after(api: Api, acme: Tenant) -> None:
    made = api.client.post("/v2/collections/docs/index/url", json=URL, headers=acme.captain)
    job = made.json()["job_id"]
    response = api.client.get(
        f"/v2/jobs/{job}", headers={**acme.captain, "Prefer": "fault=429; retry-after=4"}
    )
    assert response.status_code == 429 and response.headers["retry-after"] == "4"
    assert api.client.get(f"/v2/jobs/{job}", headers=acme.captain).status_code == 200


def test_prefer_latency_and_scenario_together(api: Api, acme: Tenant) -> None:
    started = time.perf_counter()
    response = ingest(api, acme, Prefer="scenario=slow, fault=latency-200, respond-async")
    assert response.status_code == 202, response.text
    assert time.perf_counter() - started >= 0.2
    assert response.headers["preference-applied"] == "scenario=slow, fault=latency-200"


@pytest.mark.parametrize("value", ["fault=418", "fault=latency-0", "fault=latency-x", "fault="])
def test_an_unknown_fault_is_refused(api: Api, acme: Tenant, value: str) -> None:
    response = ingest(api, acme, Prefer=value)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "prefer"]
    assert job_ids(api, acme) == []


def test_other_preferences_are_ignored(api: Api, acme: Tenant) -> None:
    response = api.client.get("/v2/jobs", headers={**acme.captain, "Prefer": "return=minimal"})
    assert response.status_code == 200 and "preference-applied" not in response.headers


# -- the rate limit ----------------------------------------------------------------------


@pytest.fixture
def limited(backend: str, tmp_path: Any) -> Any:
    settings = Settings(
        store=store_url(backend, tmp_path), admin_token=ADMIN_TOKEN, rate_limit=2, rate_burst=3
    )
    yield from start(settings)


def test_the_rate_limit_is_per_tenant(limited: Api) -> None:
    acme, globex = limited.tenant("acme"), limited.tenant("globex")
    seen = [limited.client.get("/v2/jobs", headers=acme.captain) for _ in range(5)]
    assert [r.status_code for r in seen][:3] == [200, 200, 200]
    refused = [r for r in seen if r.status_code == 429]
    assert refused, [r.status_code for r in seen]
    headers = refused[0].headers
    assert headers["x-ratelimit-limit"] == "3" and headers["x-ratelimit-remaining"] == "0"
    assert headers["retry-after"] == "1" and 0 < int(headers["retry-after-ms"]) <= 500
    assert refused[0].json()["detail"].startswith("Too Many Requests")
    # Another tenant is not held back, and the control plane is not limited.
    assert [limited.client.get("/v2/jobs", headers=globex.captain).status_code
            for _ in range(3)] == [200, 200, 200]  # fmt: skip
    assert limited.client.get(FAULTS, headers=acme.crosmos).status_code == 200
    time.sleep(int(headers["retry-after-ms"]) / 1000)
    assert limited.client.get("/v2/jobs", headers=acme.captain).status_code == 200


def test_a_refused_request_is_answered_as_refused_at_any_rate(limited: Api) -> None:
    """Over the limit, what the contract refuses is still refused as such (a missing
    required header, another organization's, a bad parameter or body), and takes no token:
    the limit meets only requests the API would carry out."""
    acme = limited.tenant("acme")
    for _ in range(5):
        limited.client.get("/v2/jobs", headers=acme.captain)
    assert limited.client.get("/v2/jobs", headers=acme.captain).status_code == 429
    no_org = {"Authorization": acme.captain["Authorization"]}
    assert limited.client.get("/v2/jobs", headers=no_org).status_code == 422
    other_org = {**acme.captain, "X-Organization-ID": "00000000-0000-4000-8000-000000000000"}
    assert limited.client.get("/v2/jobs", headers=other_org).status_code == 403
    assert limited.client.get("/v2/jobs?limit=0", headers=acme.captain).status_code == 422
    bad_body = limited.client.post(
        "/api/v1/sources", headers=acme.crosmos, json={"sources": "not a list"}
    )
    assert bad_body.status_code == 422, bad_body.text
    # Refusals took no token: a valid request waits only for what the valid ones spent.
    assert limited.client.get("/v2/jobs", headers=acme.captain).status_code == 429


def test_the_contract_names_every_job_apis_operations() -> None:
    """The document lists the job APIs and their operations; it must follow the registry."""
    from pollable.handlers.registry import APIS, JOB_APIS
    from pollable.server import contract

    schema = contract.load(APIS["sandbox"]).document["components"]["schemas"]["FaultCreate"]
    assert schema["properties"]["api"]["enum"] == [api.name for api in JOB_APIS]
    every = sorted(op for api in JOB_APIS for op in api.handlers)
    assert schema["properties"]["operation"]["enum"] == every
    per_api = {
        branch["if"]["properties"]["api"]["const"]: branch["then"]["properties"]["operation"][
            "enum"
        ]
        for branch in schema["allOf"]
    }
    assert per_api == {api.name: sorted(api.handlers) for api in JOB_APIS}
