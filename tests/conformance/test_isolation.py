"""Tenancy over HTTP, on each backend: another tenant's job is answered exactly like a job
that does not exist (get, cancel, files pages, listings), and a key works only on its API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from pollable.server.auth import new_jwt
from tests.conformance.bodies import CAPTAIN_TARGETS, CROSMOS_CREATES, captain_body
from tests.conftest import Api, Tenant


def created(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert isinstance(job_id, str)
    return job_id


def crosmos_job(api: Api, owner: Tenant, path: str = "/api/v1/sources") -> str:
    return created(api.client.post(path, json=CROSMOS_CREATES[path], headers=owner.crosmos))


def captain_job(api: Api, owner: Tenant, target: str = "s3", collection: str = "docs") -> str:
    return created(
        api.client.post(
            f"/v2/collections/{collection}/index/{target}",
            json=captain_body(target),
            headers={**owner.captain, "Prefer": "scenario=slow"},
        )
    )


def same_answer(foreign: httpx.Response, missing: httpx.Response) -> None:
    """Indistinguishable: status, body and the headers a client could tell apart by."""
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content == b'{"detail":"Job not found"}'
    for header in ("content-type", "content-length", "www-authenticate"):
        assert foreign.headers.get(header) == missing.headers.get(header)


def listing(api: Api, who: Tenant, **params: Any) -> dict[str, Any]:
    response = api.client.get("/v2/jobs", headers=who.captain, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_foreign_crosmos_job_is_a_missing_job(api: Api, acme: Tenant, globex: Tenant) -> None:
    for path in CROSMOS_CREATES:
        job_id = crosmos_job(api, acme, path)
        missing = api.client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=globex.crosmos)
        for shown in (job_id, job_id.upper()):
            foreign = api.client.get(f"/api/v1/jobs/{shown}", headers=globex.crosmos)
            same_answer(foreign, missing)
        assert api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos).status_code == 200


@pytest.mark.parametrize("target", sorted(CAPTAIN_TARGETS))
def test_a_foreign_captain_job_is_a_missing_job(
    api: Api, acme: Tenant, globex: Tenant, target: str
) -> None:
    job_id = captain_job(api, acme, target)
    mine = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain, params={"files_limit": 1})
    assert mine.status_code == 200
    cursor = mine.json()["files_page"]["next_cursor"]
    missing_id = str(uuid.uuid4())

    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v2/jobs/{}", {}),
        ("GET", "/v2/jobs/{}", {"files_limit": 500}),
        ("POST", "/v2/jobs/{}/cancel", {}),
    ]
    if cursor is not None:
        requests.append(("GET", "/v2/jobs/{}", {"files_cursor": cursor}))
    for method, template, params in requests:
        foreign = api.client.request(
            method, template.format(job_id), headers=globex.captain, params=params
        )
        missing = api.client.request(
            method, template.format(missing_id), headers=globex.captain, params=params
        )
        same_answer(foreign, missing)

    # The failed cancel changed nothing: the owner's job still runs its course.
    after = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain).json()
    assert after["status"] in ("pending", "running") and after["cancelled_at"] is None


def test_listings_hold_only_the_tenants_own_jobs(api: Api, acme: Tenant, globex: Tenant) -> None:
    acme_jobs = {captain_job(api, acme, target, "shared") for target in ("url", "s3", "text")}
    globex_jobs = {captain_job(api, globex, "url", "shared")}
    crosmos_job(api, acme)

    for who, own in ((acme, acme_jobs), (globex, globex_jobs)):
        for params in ({}, {"collection": "shared"}, {"status": "pending"}, {"limit": 200}):
            page = listing(api, who, **params)
            # The clock stands still: every job is still pending.
            assert {job["job_id"] for job in page["jobs"]} == own, params
            assert page["total"] == len(own), params
        assert listing(api, who, offset=len(own))["jobs"] == []


def test_the_organization_header_must_be_the_keys_own(
    api: Api, acme: Tenant, globex: Tenant
) -> None:
    job_id = captain_job(api, acme)
    mixed = {
        "Authorization": f"Bearer {globex.captain_key}",
        "X-Organization-ID": acme.organization_id,
    }
    for method, path in (
        ("GET", f"/v2/jobs/{job_id}"),
        ("POST", f"/v2/jobs/{job_id}/cancel"),
        ("GET", "/v2/jobs"),
    ):
        response = api.client.request(method, path, headers=mixed)
        assert response.status_code == 403, response.text
        assert set(response.json()) == {"detail"}
        assert job_id not in response.text
    response = api.client.post(
        "/v2/collections/docs/index/url", json=captain_body("url"), headers=mixed
    )
    assert response.status_code == 403
    assert listing(api, acme)["total"] == 1 and listing(api, globex)["total"] == 0


def test_keys_work_only_on_their_own_api(api: Api, acme: Tenant) -> None:
    crosmos_id, captain_id = crosmos_job(api, acme), captain_job(api, acme)
    crosmos_key_on_captain = {
        "Authorization": f"Bearer {acme.crosmos_key}",
        "X-Organization-ID": acme.organization_id,
    }
    captain_key_on_crosmos = {"Authorization": f"Bearer {acme.captain_key}"}
    secret = api.run(api.services.store.meta, "jwt_secret", "unused")
    jwt_on_captain = {
        "Authorization": f"Bearer {new_jwt(secret, acme.name)}",
        "X-Organization-ID": acme.organization_id,
    }
    for headers in (crosmos_key_on_captain, jwt_on_captain):
        for method, path, body in (
            ("GET", f"/v2/jobs/{captain_id}", None),
            ("POST", f"/v2/jobs/{captain_id}/cancel", None),
            ("GET", "/v2/jobs", None),
            ("POST", "/v2/collections/docs/index/url", captain_body("url")),
        ):
            response = api.client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    for method, path, body in (
        ("GET", f"/api/v1/jobs/{crosmos_id}", None),
        ("POST", "/api/v1/sources", CROSMOS_CREATES["/api/v1/sources"]),
        ("POST", "/api/v1/conversations", CROSMOS_CREATES["/api/v1/conversations"]),
    ):
        response = api.client.request(method, path, headers=captain_key_on_crosmos, json=body)
        assert response.status_code == 401, (method, path, response.text)
    # The JWT itself is good: on Crosmos it reads the tenant's job.
    token = {"Authorization": jwt_on_captain["Authorization"]}
    assert api.client.get(f"/api/v1/jobs/{crosmos_id}", headers=token).status_code == 200


def test_one_tenants_job_is_not_the_other_apis_job(api: Api, acme: Tenant) -> None:
    crosmos_id, captain_id = crosmos_job(api, acme), captain_job(api, acme)
    missing = str(uuid.uuid4())
    same_answer(
        api.client.get(f"/v2/jobs/{crosmos_id}", headers=acme.captain),
        api.client.get(f"/v2/jobs/{missing}", headers=acme.captain),
    )
    same_answer(
        api.client.post(f"/v2/jobs/{crosmos_id}/cancel", headers=acme.captain),
        api.client.post(f"/v2/jobs/{missing}/cancel", headers=acme.captain),
    )
    same_answer(
        api.client.get(f"/api/v1/jobs/{captain_id}", headers=acme.crosmos),
        api.client.get(f"/api/v1/jobs/{missing}", headers=acme.crosmos),
    )
    assert {job["job_id"] for job in listing(api, acme)["jobs"]} == {captain_id}


def test_idempotency_keys_belong_to_their_tenant(api: Api, acme: Tenant, globex: Tenant) -> None:
    mine = captain_body("url")
    theirs = {**mine, "urls": ["https://example.com/globex.pdf"]}

    def index(who: Tenant, key: str, payload: dict[str, Any]) -> httpx.Response:
        return api.client.post(
            "/v2/collections/docs/index/url",
            json=payload,
            headers={**who.captain, "Idempotency-Key": key},
        )

    first = created(index(acme, "key-1", mine))
    assert created(index(acme, "key-1", mine)) == first
    assert created(index(acme, "key-2", theirs)) != first
    # The same key from another tenant is that tenant's first use of it: a new job, with
    # the body acme sent or another (not acme's job, and not a 409 for acme's body).
    for key, body in (("key-1", theirs), ("key-2", mine)):
        other = created(index(globex, key, body))
        assert other != first
        assert created(index(globex, key, body)) == other
    # Acme's own reuse with another body is refused, as the contract says.
    refused = index(acme, "key-1", theirs)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "This Idempotency-Key was already used with a different request"
    }
    assert api.client.get(f"/v2/jobs/{first}", headers=globex.captain).status_code == 404
    assert listing(api, globex)["total"] == 2 and listing(api, acme)["total"] == 2


#: Requests whose path ends in an encoded newline, with the body each would need.
TRAILING_NEWLINE: list[tuple[str, str, str, Any]] = [
    ("POST", "/api/v1/sources%0A", "crosmos", CROSMOS_CREATES["/api/v1/sources"]),
    ("POST", "/api/v1/conversations%0A", "crosmos", CROSMOS_CREATES["/api/v1/conversations"]),
    ("GET", "/api/v1/jobs/{crosmos}%0A", "crosmos", None),
    ("GET", "/v2/jobs%0A", "captain", None),
    ("GET", "/v2/jobs/{captain}%0A", "captain", None),
    ("POST", "/v2/jobs/{captain}/cancel%0A", "captain", None),
    ("POST", "/v2/collections/docs/index/url%0A", "captain", captain_body("url")),
    ("POST", "/v2/collections/docs/index/s3%0A", "captain", captain_body("s3")),
]


@pytest.mark.parametrize(
    ("method", "template", "name", "body"),
    TRAILING_NEWLINE,
    ids=[f"{method} {template}" for method, template, _, _ in TRAILING_NEWLINE],
)
def test_no_path_gets_past_authentication_without_a_key(
    api: Api, acme: Tenant, method: str, template: str, name: str, body: Any
) -> None:
    """A path that routes to an operation is authenticated before anything else, whatever
    the bytes after it: without a key the answer is 401 (or 404 for no operation), never
    a validation error, a 500, or the job."""
    path = template.format(crosmos=crosmos_job(api, acme), captain=captain_job(api, acme))
    organization = {"X-Organization-ID": acme.organization_id} if name == "captain" else {}
    anonymous = api.client.request(method, path, json=body, headers=organization)
    assert anonymous.status_code in (401, 404), (anonymous.status_code, anonymous.text)
    keyed = api.client.request(
        method, path, json=body, headers=acme.crosmos if name == "crosmos" else acme.captain
    )
    assert keyed.status_code < 500, (keyed.status_code, keyed.text)
