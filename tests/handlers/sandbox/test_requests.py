"""The request log over HTTP, on every backend: every response's Request-Id finds its entry
in its tenant's log (or the admin's), tenants see only their own, credentials are never kept,
and the log is bounded, flushed on shutdown, and can be switched off."""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from pollable.server import journal as journal_module
from pollable.server.auth import new_jwt
from pollable.server.settings import Settings
from tests.conformance.bodies import CAPTAIN_TARGETS, FakeCredentials, captain_body
from tests.conftest import Api, Tenant, on_store, start, store_url

ADMIN_TOKEN = "an-admin-token-for-the-request-log"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JWT_SECRET = "a-jwt-secret-for-the-request-log-tests-0123456789"
SOURCES = {
    "space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "sources": [{"content": "Ada met Alan."}],
}
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


def settings(backend: str, tmp_path: Any, **options: Any) -> Settings:
    return Settings(
        store=store_url(backend, tmp_path),
        admin_token=ADMIN_TOKEN,
        jwt_secret=JWT_SECRET,
        **options,
    )


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Any:
    yield from start(settings(backend, tmp_path))


def flush(api: Api) -> None:
    api.run(api.services.request_log.flush)


def entry(api: Api, request_id: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/sandbox/v1/requests/{request_id}", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def entries(api: Api, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = api.client.get("/sandbox/v1/requests", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_every_response_finds_its_entry(api: Api, acme: Tenant) -> None:
    created = api.client.post("/api/v1/sources", json=SOURCES, headers=acme.crosmos)
    job_id = created.json()["job_id"]
    calls = {
        "created": (created, acme.crosmos),
        "read": (api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos), acme.crosmos),
        "unknown job": (api.client.get("/v2/jobs/nope", headers=acme.captain), acme.crosmos),
        "invalid": (
            api.client.get("/v2/jobs", headers=acme.captain, params={"limit": 0}),
            acme.crosmos,
        ),
        "wrong organization": (
            api.client.get(
                "/v2/jobs", headers={**acme.captain, "X-Organization-ID": str(SOURCES["space_id"])}
            ),
            acme.crosmos,
        ),
        "control plane": (
            api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}", headers=acme.crosmos),
            acme.crosmos,
        ),
        "no path": (api.client.get("/v2/nothing-here", headers=acme.captain), acme.crosmos),
        "no credentials": (api.client.get(f"/api/v1/jobs/{job_id}"), ADMIN),
        "bad key": (
            api.client.get("/v2/jobs", headers={"Authorization": "Bearer cap_dev_nobody"}),
            ADMIN,
        ),
        "admin": (api.client.get("/sandbox/v1/tenants", headers=ADMIN), ADMIN),
    }
    expected = {"created": 202, "read": 200, "unknown job": 404, "invalid": 422,
                "wrong organization": 403, "control plane": 200, "no path": 404,
                "no credentials": 401, "bad key": 401, "admin": 200}  # fmt: skip
    for name, (response, reader) in calls.items():
        assert response.status_code == expected[name], (name, response.text)
        request_id = response.headers["Request-Id"]
        assert REQUEST_ID.match(request_id), name
        found = entry(api, request_id, reader)
        assert (found["id"], found["status"]) == (request_id, expected[name]), name
        assert found["response"]["headers"]["request-id"] == request_id
        assert found["tenant_id"] == (None if reader is ADMIN else acme.tenant.id), name
    read = entry(api, calls["read"][0].headers["Request-Id"], acme.crosmos)
    assert read["api"] == "crosmos"
    assert read["operation_id"] == "get_job_status_api_v1_jobs__job_id__get"
    assert (read["method"], read["path"], read["job_id"]) == (
        "GET",
        f"/api/v1/jobs/{job_id}",
        job_id,
    )
    assert read["response"]["body"]["job_id"] == job_id
    assert read["request"]["headers"]["authorization"] == "Bearer [redacted]"
    assert read["key_id"] is not None and read["clock_time"] is None
    made = entry(api, created.headers["Request-Id"], acme.crosmos)
    assert made["job_id"] == job_id and made["request"]["body"] == SOURCES
    assert made["request"]["body_bytes"] > 0 and made["request"]["body_truncated"] is False
    # The request refused for its credentials names its route, not its tenant.
    refused = entry(api, calls["bad key"][0].headers["Request-Id"], ADMIN)
    assert (refused["api"], refused["operation_id"]) == ("captain", "list_jobs_v2")


def test_a_500_is_logged_too(api: Api, acme: Tenant) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store fell over")

    store = api.services.store
    api.client.app_state["services"] = dataclasses.replace(
        api.services, store=_Broken(store, broken)
    )
    job_id = str(uuid.uuid4())
    failed = api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos)
    assert failed.status_code == 500
    api.client.app_state["services"] = dataclasses.replace(api.services, store=store)
    found = entry(api, failed.headers["Request-Id"], acme.crosmos)
    assert found["status"] == 500 and found["job_id"] == job_id


class _Broken:
    """A store whose job reads fail."""

    def __init__(self, store: Any, failure: Any) -> None:
        self._store, self.get_job = store, failure

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_tenants_see_only_their_own_log(api: Api, acme: Tenant, globex: Tenant) -> None:
    mine = api.client.post("/api/v1/sources", json=SOURCES, headers=acme.crosmos)
    theirs = api.client.post("/api/v1/sources", json=SOURCES, headers=globex.crosmos)
    their_id = theirs.headers["Request-Id"]
    assert [e["id"] for e in entries(api, acme.crosmos)] == [mine.headers["Request-Id"]]
    for path, params in (
        (f"/sandbox/v1/requests/{their_id}", {}),
        ("/sandbox/v1/requests", {"tenant_id": globex.tenant.id}),
        ("/sandbox/v1/requests/count", {"tenant_id": globex.tenant.id}),
    ):
        refused = api.client.get(path, headers=acme.crosmos, params=params)
        assert refused.status_code == 404, path
        assert refused.headers["content-type"] == "application/problem+json"
    gone = api.client.delete(
        "/sandbox/v1/requests", headers=acme.crosmos, params={"tenant_id": globex.tenant.id}
    )
    assert gone.status_code == 404
    # Either API's key reads the same log; the admin reads any tenant's by naming it.
    assert entries(api, acme.captain)[0]["id"] == mine.headers["Request-Id"]
    assert entry(api, their_id, ADMIN, tenant_id=globex.tenant.id)["tenant_id"] == globex.tenant.id
    assert api.client.get(f"/sandbox/v1/requests/{their_id}", headers=ADMIN).status_code == 404
    unknown = api.client.get("/sandbox/v1/requests", headers=ADMIN, params={"tenant_id": "nope"})
    assert unknown.status_code == 404


def test_filters_pages_counts_and_deletes(api: Api, acme: Tenant) -> None:
    job_ids = [
        api.client.post("/api/v1/sources", json=SOURCES, headers=acme.crosmos).json()["job_id"]
        for _ in range(3)
    ]
    for job_id in job_ids:
        for _ in range(2):
            api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos)
    api.client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=acme.crosmos)

    def count(**params: Any) -> int:
        response = api.client.get("/sandbox/v1/requests/count", headers=acme.crosmos, params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["count"])

    assert count() == 10
    assert count(job_id=job_ids[0]) == 3
    assert count(method="post") == count(method="POST") == 3
    assert count(status=404) == 1 and count(status=200) == 6
    assert count(api="crosmos") == 10 and count(api="captain") == 0
    assert count(path=f"/api/v1/jobs/{job_ids[1]}") == 2
    newest = entries(api, acme.crosmos, limit=1)[0]
    assert count(since=newest["created_at"]) >= 1
    assert count(until="2000-01-01T00:00:00Z") == 0
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/sandbox/v1/requests", headers=acme.crosmos, params=params).json()
        seen.extend(e["id"] for e in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10
    assert seen == [e["id"] for e in entries(api, acme.crosmos, limit=50)]
    bad = api.client.get("/sandbox/v1/requests", headers=acme.crosmos, params={"cursor": "xyz"})
    assert bad.status_code == 422
    deleted = api.client.delete(
        "/sandbox/v1/requests", headers=acme.crosmos, params={"job_id": job_ids[0]}
    )
    assert deleted.json() == {"deleted": 3}
    assert count() == 7
    assert api.client.delete("/sandbox/v1/requests", headers=acme.crosmos).json() == {"deleted": 7}
    assert count() == 0


def test_what_sdks_say_about_themselves_is_kept(api: Api, acme: Tenant) -> None:
    stainless = api.client.get(
        "/v2/jobs",
        headers={**acme.captain, "User-Agent": "Crosmos/Python 0.2.0", "X-Stainless-Lang": "python",
                 "X-Stainless-Package-Version": "0.2.0", "X-Stainless-Runtime": "CPython",
                 "X-Stainless-Runtime-Version": "3.11.7", "X-Stainless-Retry-Count": "2"},
    )  # fmt: skip
    fern = api.client.get(
        "/v2/jobs",
        headers={**acme.captain, "X-Fern-Language": "Python", "X-Fern-SDK-Name": "captain-sdk",
                 "X-Fern-SDK-Version": "0.1.1", "X-Fern-Runtime": "python/3.11.7"},
    )  # fmt: skip
    plain = api.client.get("/v2/jobs", headers=acme.captain)
    found = {
        name: entry(api, response.headers["Request-Id"], acme.crosmos)
        for name, response in (("stainless", stainless), ("fern", fern), ("plain", plain))
    }
    assert found["stainless"]["sdk"] == {"generator": "stainless", "name": "Crosmos",
                                         "version": "0.2.0", "language": "python",
                                         "runtime": "CPython 3.11.7"}  # fmt: skip
    assert found["stainless"]["retry_count"] == 2
    assert found["fern"]["sdk"] == {"generator": "fern", "name": "captain-sdk",
                                    "version": "0.1.1", "language": "Python",
                                    "runtime": "python/3.11.7"}  # fmt: skip
    assert found["fern"]["retry_count"] is None
    assert found["plain"]["sdk"] is None


def _credential_calls(api: Api, acme: Tenant, fake: FakeCredentials) -> list[str]:
    """Every credential field: both APIs' keys, a Crosmos JWT, the admin token, new keys
    in the control plane's replies, and every Captain index operation's cloud credentials
    (accepted, and refused beside a broken field). Returns the secrets sent."""
    token = new_jwt(JWT_SECRET, acme.tenant.name)
    sent = [acme.crosmos_key, acme.captain_key, token, ADMIN_TOKEN, *fake.needles]
    assert api.client.post("/api/v1/sources", json=SOURCES,
                           headers={"Authorization": f"Bearer {token}"}).status_code == 202  # fmt: skip
    for target in CAPTAIN_TARGETS:
        body = captain_body(target, fake)
        path = f"/v2/collections/secrets/index/{target}"
        assert api.client.post(path, json=body, headers=acme.captain).status_code == 202
        refused = api.client.post(path, json={**body, "unknown": 1}, headers=acme.captain)
        assert refused.status_code == 422
        # Sent with no key at all, and in the query string: the admin's log.
        api.client.post(path, json=body, params={"api_key": acme.captain_key})
    created = api.client.post("/sandbox/v1/tenants", json={"name": "initech"}, headers=ADMIN)
    assert created.status_code == 201
    new_keys = [k["key"] for k in created.json()["keys"]]
    more = api.client.post(
        f"/sandbox/v1/tenants/{acme.tenant.id}/keys", json={"api": "crosmos"}, headers=acme.crosmos
    )
    assert more.status_code == 201
    return [*sent, *new_keys, more.json()["key"]]


def test_credentials_never_reach_the_log(
    api: Api, acme: Tenant, backend: str, tmp_path: Path
) -> None:
    fake = FakeCredentials.new()
    secrets = _credential_calls(api, acme, fake)
    flush(api)
    shown = [
        api.client.get("/sandbox/v1/requests", headers=ADMIN, params={"limit": 200}).text,
        api.client.get("/sandbox/v1/requests", headers=acme.crosmos, params={"limit": 200}).text,
    ]
    assert len(entries(api, acme.crosmos, limit=200)) >= 2 * len(CAPTAIN_TARGETS) + 2
    assert "[redacted]" in shown[0] and "[redacted]" in shown[1]
    logged = api.run(api.services.store.list_requests, acme.tenant.id, limit=1000)
    logged += api.run(api.services.store.list_requests, None, limit=1000)
    for text in [*shown, repr(logged)]:
        assert not [s for s in secrets if s in text]
    if backend == "sqlite":
        files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".db" in p.name}
        assert "pollable.db" in files
        for name, content in files.items():
            leaked = [s for s in secrets if s.encode() in content]
            assert not leaked, f"a credential is in {name}"


def test_the_log_is_bounded_by_count_and_age(backend: str, tmp_path: Any) -> None:
    for api in start(settings(backend, tmp_path, log_max_entries=4, log_max_age_seconds=60)):
        acme = api.tenant("acme")
        api.services.request_log.now = api.clock
        ids = []
        for _ in range(6):
            api.clock.advance(0.001)
            ids.append(api.client.get("/v2/jobs", headers=acme.captain).headers["Request-Id"])
        flush(api)
        assert [e["id"] for e in entries(api, acme.crosmos)] == ids[:-5:-1]
        api.clock.advance(61)
        last = api.client.get("/v2/jobs", headers=acme.captain).headers["Request-Id"]
        flush(api)
        assert [e["id"] for e in entries(api, acme.crosmos)] == [last]


def test_shutdown_writes_what_is_queued(tmp_path: Any, monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "BATCH_DELAY", 3600.0)  # only the shutdown writes
    configured = settings("sqlite", tmp_path)
    for api in start(configured):
        acme = api.tenant("acme")
        request_ids = [
            api.client.get("/v2/jobs", headers=acme.captain).headers["Request-Id"] for _ in range(3)
        ]
        assert api.run(api.services.store.count_requests, acme.tenant.id) == 0
        assert api.services.request_log.queued == 3

    async def read(store: Any) -> list[str]:
        return [e.id for e in await store.list_requests(acme.tenant.id, limit=10)]

    assert sorted(on_store(configured.store, read)) == sorted(request_ids)


def test_a_log_that_is_off_keeps_nothing_but_ids_still_come(backend: str, tmp_path: Any) -> None:
    for api in start(settings(backend, tmp_path, log_enabled=False)):
        acme = api.tenant("acme")
        response = api.client.get("/v2/jobs", headers=acme.captain)
        assert REQUEST_ID.match(response.headers["Request-Id"])
        assert api.client.get("/sandbox/v1/requests/count", headers=acme.crosmos).json() == {
            "count": 0
        }
        assert api.client.get("/health").json()["request_log"] == {
            "enabled": False, "queued": 0, "dropped": 0
        }  # fmt: skip
        assert api.run(api.services.store.count_requests, acme.tenant.id) == 0


def test_reset_and_delete_forget_the_log_queued_entries_too(
    api: Api, acme: Tenant, globex: Tenant
) -> None:
    for _ in range(3):
        api.client.get("/v2/jobs", headers=acme.captain)
        api.client.get("/v2/jobs", headers=globex.captain)
    reset = api.client.post("/sandbox/v1/reset", json={}, headers=acme.crosmos)
    assert reset.status_code == 200
    # What is left is the reset itself, logged once it was answered.
    assert [e["id"] for e in entries(api, acme.crosmos)] == [reset.headers["Request-Id"]]
    deleted = api.client.delete(f"/sandbox/v1/tenants/{globex.tenant.id}", headers=ADMIN)
    assert deleted.status_code == 204
    assert api.run(api.services.store.count_requests, globex.tenant.id) == 0
