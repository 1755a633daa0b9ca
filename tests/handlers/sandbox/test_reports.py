"""``GET /sandbox/v1/reports/polling`` over HTTP on every backend: the findings of a tenant's
own log with the Request-Ids that find them, bounded, filtered, and nobody else's."""

from __future__ import annotations

from typing import Any

import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

ADMIN_TOKEN = "an-admin-token-for-the-report-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REPORT = "/sandbox/v1/reports/polling"
BUCKET = {
    "bucket_name": "acme-docs",
    "processing_type": "basic",
    "max_files": 60,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Any:
    yield from start(Settings(store=store_url(backend, tmp_path), admin_token=ADMIN_TOKEN))


def report(api: Api, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = api.client.get(REPORT, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def clocked(api: Api, tenant: Tenant) -> dict[str, str]:
    made = api.client.post("/sandbox/v1/clocks", json={}, headers=tenant.crosmos)
    assert made.status_code == 201, made.text
    return {**tenant.captain, "Pollable-Clock": made.json()["id"]}


def index(api: Api, headers: dict[str, str]) -> str:
    made = api.client.post("/v2/collections/docs/index/s3", json=BUCKET, headers=headers)
    assert made.status_code == 202, made.text
    return str(made.json()["job_id"])


def poll(api: Api, tenant: Tenant, job_id: str, **params: Any) -> tuple[str, dict[str, Any]]:
    response = api.client.get(f"/v2/jobs/{job_id}", headers=tenant.captain, params=params)
    assert response.status_code == 200, response.text
    return response.headers["request-id"], dict(response.json())


def test_an_impolite_pollers_findings_with_their_request_ids(api: Api, acme: Tenant) -> None:
    headers = clocked(api, acme)
    abandoned, finished = index(api, headers), index(api, headers)
    gave_up_at, _ = poll(api, acme, abandoned)
    clock = headers["Pollable-Clock"]
    moved = api.client.post(
        f"/sandbox/v1/clocks/{clock}/advance",
        json={"until": {"job_id": finished, "status": "completed"}},
        headers=acme.crosmos,
    )
    assert moved.status_code == 200, moved.text
    ended_at, ended = poll(api, acme, finished)
    assert ended["status"] == "completed" and ended["files_page"]["next_cursor"]
    again = [poll(api, acme, finished)[0] for _ in range(2)]

    found = report(api, acme.crosmos)
    assert found["tenant_id"] == acme.tenant.id and found["truncated"] is False
    assert found["findings"] == {
        "early_poll": 0,  # each job read once before it ended
        "poll_after_terminal": 2,
        "no_backoff": 0,
        "retry_without_idempotency_key": 0,
        "cursor_not_followed": 2,  # each job's newest answer offered a cursor
        "gave_up": 1,
    }
    (client,) = found["clients"]
    assert client["polls"] == 4 and client["jobs"] == 2
    examples = {(e["kind"], e["request_id"]) for e in client["examples"]}
    assert ("gave_up", gave_up_at) in examples
    assert {("poll_after_terminal", r) for r in again} <= examples
    # The last answer offered a cursor too: that is the one never followed.
    assert ("cursor_not_followed", again[-1]) in examples
    related = {e["related_request_id"] for e in client["examples"] if e["kind"] != "gave_up"}
    assert ended_at in related
    jobs = {job["job_id"]: job for job in found["jobs"]}
    assert jobs[finished]["terminal"] is True and jobs[finished]["last_status"] == "completed"
    assert jobs[abandoned]["findings"]["gave_up"] == 1

    only = report(api, acme.crosmos, job_id=abandoned)
    assert only["findings"]["poll_after_terminal"] == 0 and only["findings"]["gave_up"] == 1


def test_a_polite_poller_gets_no_finding(api: Api, acme: Tenant) -> None:
    headers = clocked(api, acme)
    job_id = index(api, headers)
    clock = headers["Pollable-Clock"]
    api.client.post(
        f"/sandbox/v1/clocks/{clock}/advance",
        json={"until": {"job_id": job_id, "status": "completed"}},
        headers=acme.crosmos,
    )
    _, page = poll(api, acme, job_id)
    while page["files_page"]["next_cursor"]:
        _, page = poll(api, acme, job_id, files_cursor=page["files_page"]["next_cursor"])
    found = report(api, acme.captain)
    assert set(found["findings"].values()) == {0}
    assert found["clients"][0]["examples"] == []


def test_the_report_is_bounded_and_says_so(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme.captain)
    for _ in range(4):
        poll(api, acme, job_id)
    cut = report(api, acme.crosmos, max_entries=2)
    assert cut["entries_considered"] == 2 and cut["truncated"] is True
    whole = report(api, acme.crosmos)
    assert whole["entries_considered"] == 5 and whole["truncated"] is False
    # Reading the report is not in the log.
    assert report(api, acme.crosmos)["entries_considered"] == 5


def test_client_filter(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme.captain)
    api.client.get(f"/v2/jobs/{job_id}", headers={**acme.captain, "User-Agent": "poller/1"})
    assert [c["client"] for c in report(api, acme.crosmos, client="poller/1")["clients"]] == [
        "poller/1"
    ]
    assert report(api, acme.crosmos, client="nobody")["clients"] == []


def test_whose_report(api: Api, acme: Tenant, globex: Tenant) -> None:
    refused = api.client.get(REPORT, headers=ADMIN)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert report(api, ADMIN, tenant_id=acme.tenant.id)["tenant_id"] == acme.tenant.id
    other = api.client.get(REPORT, headers=acme.crosmos, params={"tenant_id": globex.tenant.id})
    assert other.status_code == 404
    assert api.client.get(REPORT).status_code == 401
