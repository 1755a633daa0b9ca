"""The control plane's tenants, keys, reset and health, over HTTP on every backend: the
admin manages every tenant, a tenant's key only its own, and errors are problem details."""

from __future__ import annotations

from typing import Any

import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

SOURCES = {
    "space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "sources": [{"content": "Ada met Alan."}],
}
ADMIN_TOKEN = "an-admin-token-for-the-tests"


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Any:
    yield from start(Settings(store=store_url(backend, tmp_path), admin_token=ADMIN_TOKEN))


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def create(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    response = api.client.post("/sandbox/v1/tenants", json={"name": name, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_admin_creates_a_tenant_with_a_key_for_each_job_api(api: Api) -> None:
    created = create(api, "acme", credits=500)
    tenant = created["tenant"]
    assert tenant["name"] == "acme" and tenant["credits"] == 500
    assert sorted(k["api"] for k in created["keys"]) == ["captain", "crosmos"]
    keys = {k["api"]: k["key"] for k in created["keys"]}
    captain = {**bearer(keys["captain"]), "X-Organization-ID": tenant["organization_id"]}
    assert api.client.get("/v2/jobs", headers=captain).status_code == 200
    made = api.client.post("/api/v1/sources", json=SOURCES, headers=bearer(keys["crosmos"]))
    assert made.status_code == 202
    again = api.client.post("/sandbox/v1/tenants", json={"name": "acme"}, headers=ADMIN)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["status"] == 409 and again.json()["title"] == "Conflict"


def test_errors_are_problem_details(api: Api, acme: Tenant) -> None:
    missing = api.client.get("/sandbox/v1/tenants")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {"type": "about:blank", "title": "Unauthorized", "status": 401,
                              "detail": "Not authenticated"}  # fmt: skip
    invalid = api.client.post("/sandbox/v1/tenants", json={"name": ""}, headers=ADMIN)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["loc"] == ["body", "name"]
    nowhere = api.client.get("/sandbox/v1/nothing-here", headers=ADMIN)
    assert nowhere.status_code == 404
    assert nowhere.headers["content-type"] == "application/problem+json"
    # The job APIs keep FastAPI's shape.
    assert api.client.get("/v2/nothing-here").json() == {"detail": "Not Found"}


def test_a_tenant_key_sees_its_own_tenant_only(api: Api, acme: Tenant, globex: Tenant) -> None:
    own = api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}", headers=acme.crosmos)
    assert own.status_code == 200 and own.json()["name"] == "acme"
    # Either API's key will do.
    by_captain = api.client.get(
        f"/sandbox/v1/tenants/{acme.tenant.id}", headers=bearer(acme.captain_key)
    )
    assert by_captain.status_code == 200
    other = api.client.get(f"/sandbox/v1/tenants/{globex.tenant.id}", headers=acme.crosmos)
    assert other.status_code == 404
    listed = api.client.get("/sandbox/v1/tenants", headers=acme.crosmos).json()
    assert [t["name"] for t in listed["data"]] == ["acme"]
    everyone = api.client.get("/sandbox/v1/tenants", headers=ADMIN).json()
    assert {t["name"] for t in everyone["data"]} == {"acme", "globex"}
    for path in (f"/sandbox/v1/tenants/{globex.tenant.id}/keys",):
        assert api.client.get(path, headers=acme.crosmos).status_code == 404
    assert api.client.post("/sandbox/v1/tenants", json={"name": "x"},
                           headers=acme.crosmos).status_code == 403  # fmt: skip
    assert api.client.delete(f"/sandbox/v1/tenants/{acme.tenant.id}",
                             headers=acme.crosmos).status_code == 403  # fmt: skip


def test_tenants_are_paged(api: Api) -> None:
    for n in range(5):
        create(api, f"t{n}")
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/sandbox/v1/tenants", params=params, headers=ADMIN).json()
        seen += [t["name"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"t{n}" for n in range(5)]


def test_keys_are_listed_by_label_and_a_revoked_key_is_refused_at_once(
    api: Api, acme: Tenant
) -> None:
    path = f"/sandbox/v1/tenants/{acme.tenant.id}/keys"
    made = api.client.post(path, json={"api": "captain", "environment": "prod"},
                           headers=acme.crosmos)  # fmt: skip
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("cap_prod_") and key["label"] == key["key"][:13]
    listed = api.client.get(path, headers=acme.crosmos).json()["data"]
    assert len(listed) == 3 and all("key" not in entry for entry in listed)
    assert key["key"] not in str(listed)
    headers = {**bearer(key["key"]), "X-Organization-ID": acme.organization_id}
    assert api.client.get("/v2/jobs", headers=headers).status_code == 200
    revoked = api.client.delete(f"{path}/{key['id']}", headers=acme.crosmos)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.client.get("/v2/jobs", headers=headers).status_code == 401
    again = api.client.delete(f"{path}/{key['id']}", headers=acme.crosmos)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    bad = api.client.post(path, json={"api": "crosmos", "environment": "prod"}, headers=ADMIN)
    assert bad.status_code == 422
    assert api.client.post(path, json={"api": "sandbox"}, headers=ADMIN).status_code == 422


def test_reset_forgets_jobs_and_restores_credits_but_keeps_keys(api: Api) -> None:
    created = create(api, "acme", credits=1000)
    tenant_id = created["tenant"]["id"]
    keys = {k["api"]: k["key"] for k in created["keys"]}
    org = created["tenant"]["organization_id"]
    captain = {**bearer(keys["captain"]), "X-Organization-ID": org}
    body = {"url": "https://example.com/a.pdf", "processing_type": "basic"}
    for _ in range(2):
        made = api.client.post("/v2/collections/docs/index/url", json=body, headers=captain)
        assert made.status_code == 202
    job_id = made.json()["job_id"]
    api.clock.advance(3600)
    spent = api.client.get(f"/sandbox/v1/tenants/{tenant_id}", headers=ADMIN).json()["credits"]
    assert spent < 1000
    reset = api.client.post("/sandbox/v1/reset", json={}, headers=captain)
    assert reset.status_code == 200 and reset.json() == {"tenants": [tenant_id]}
    assert api.client.get(f"/v2/jobs/{job_id}", headers=captain).status_code == 404
    assert api.client.get("/v2/jobs", headers=captain).json()["total"] == 0
    assert (
        api.client.get(f"/sandbox/v1/tenants/{tenant_id}", headers=ADMIN).json()["credits"] == 1000
    )


def test_only_the_admin_resets_others_or_everyone(api: Api, acme: Tenant, globex: Tenant) -> None:
    for body in ({"all": True}, {"tenant_id": globex.tenant.id}):
        assert api.client.post("/sandbox/v1/reset", json=body,
                               headers=acme.crosmos).status_code == 403  # fmt: skip
    assert api.client.post("/sandbox/v1/reset", json={}, headers=ADMIN).status_code == 422
    everyone = api.client.post("/sandbox/v1/reset", json={"all": True}, headers=ADMIN)
    assert set(everyone.json()["tenants"]) == {acme.tenant.id, globex.tenant.id}


def test_the_admin_deletes_a_tenant_and_its_keys(api: Api, acme: Tenant) -> None:
    gone = api.client.delete(f"/sandbox/v1/tenants/{acme.tenant.id}", headers=ADMIN)
    assert gone.status_code == 204 and gone.content == b""
    assert api.client.get("/api/v1/jobs/3c90c3cc-0d44-4b50-8888-8dd25736052a",
                          headers=acme.crosmos).status_code == 401  # fmt: skip
    assert api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}",
                          headers=ADMIN).status_code == 404  # fmt: skip


def test_a_tenant_sets_its_own_credits_and_default_scenario(api: Api, acme: Tenant) -> None:
    path = f"/sandbox/v1/tenants/{acme.tenant.id}"
    updated = api.client.patch(path, json={"credits": 3, "default_scenario": "partial"},
                               headers=acme.crosmos)  # fmt: skip
    assert updated.status_code == 200, updated.text
    assert updated.json()["credits"] == 3 and updated.json()["default_scenario"] == "partial"
    unknown = api.client.patch(path, json={"default_scenario": "nope"}, headers=acme.crosmos)
    assert unknown.status_code == 422


def test_health_needs_no_credentials(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["store"] == "reachable"


def test_a_generated_admin_token_is_kept_hashed_and_works(tmp_path: Any) -> None:
    url = store_url("sqlite", tmp_path)
    for api in start(Settings(store=url)):
        token = api.services.new_admin_token
        assert token and token.startswith("pat_")
        assert api.client.get("/sandbox/v1/tenants", headers=bearer(token)).status_code == 200
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("pollable.db*"))
    assert token.encode() not in raw
    for api in start(Settings(store=url)):
        assert api.services.new_admin_token is None
        assert api.client.get("/sandbox/v1/tenants", headers=bearer(token)).status_code == 200


def test_a_key_cannot_revoke_itself(api: Api, acme: Tenant) -> None:
    path = f"/sandbox/v1/tenants/{acme.tenant.id}/keys"
    own = next(k for k in api.client.get(path, headers=acme.crosmos).json()["data"]
               if k["api"] == "crosmos")  # fmt: skip
    refused = api.client.delete(f"{path}/{own['id']}", headers=acme.crosmos)
    assert refused.status_code == 409
    assert api.client.get(path, headers=acme.crosmos).status_code == 200
    by_other = api.client.delete(f"{path}/{own['id']}", headers={
        "Authorization": f"Bearer {acme.captain_key}"})  # fmt: skip
    assert by_other.status_code == 200
    assert api.client.get(path, headers=acme.crosmos).status_code == 401
