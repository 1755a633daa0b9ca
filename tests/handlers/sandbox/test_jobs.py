"""``/sandbox/v1/jobs`` over HTTP on every backend: one listing of both APIs' jobs (filters,
newest first, cursor paging), one job with its timeline, tenant isolation, problem+json."""

from __future__ import annotations

from typing import Any

import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url
from tests.handlers.sandbox.test_clocks import T0, index, ingest, new_clock, on, seconds

ADMIN_TOKEN = "an-admin-token-for-the-jobs-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JOBS = "/sandbox/v1/jobs"


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Any:
    yield from start(Settings(store=store_url(backend, tmp_path), admin_token=ADMIN_TOKEN))


def listing(server: Api, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = server.client.get(JOBS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(page: dict[str, Any]) -> list[str]:
    return [job["id"] for job in page["data"]]


def test_both_apis_jobs_newest_first_with_filters(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    first = ingest(api, acme.crosmos)
    api.clock.advance(1)
    second = index(api, acme.captain, **on(clock))
    every = listing(api, acme.crosmos)
    assert ids(every) == [second, first] and every["total"] == 2
    assert every["next_cursor"] is None
    captain = every["data"][0]
    assert (captain["api"], captain["kind"], captain["collection"]) == (
        "captain",
        "index_s3",
        "docs",
    )
    assert captain["clock_id"] == clock["id"] and captain["now"] == T0
    assert (captain["status"], captain["api_status"], captain["items"]) == ("pending", "pending", 6)
    assert ids(listing(api, acme.captain, api="crosmos")) == [first]
    assert ids(listing(api, acme.captain, clock_id=clock["id"])) == [second]
    assert ids(listing(api, acme.captain, collection="docs")) == [second]
    assert ids(listing(api, acme.captain, status="pending", clock_id=clock["id"])) == [second]
    api.clock.advance(3600)
    done = listing(api, acme.crosmos, status="completed")
    assert ids(done) == [first] and done["data"][0]["api_status"] == "completed"


def test_pages_follow_their_cursor(api: Api, acme: Tenant) -> None:
    made = []
    for _ in range(5):
        made.append(ingest(api, acme.crosmos))
        api.clock.advance(1)
    seen, cursor = [], None
    while True:
        page = listing(api, acme.crosmos, limit=2, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 5
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


def test_a_job_with_its_timeline_moves_with_its_clock(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    job_id = index(api, acme.captain, **on(clock))
    job = api.client.get(f"{JOBS}/{job_id}", headers=acme.crosmos)
    assert job.status_code == 200, job.text
    body = job.json()
    assert (body["status"], body["settled"], body["stage"]) == ("pending", 0, None)
    line = body["timeline"]
    assert [p["name"] for p in line["phases"]] == ["queue", "scanning", "processing", "finalizing"]
    assert line["final_status"] == "completed" and line["cancelled_at"] is None
    assert line["stages"][0]["stage"] == "scanning"
    assert line["settling"][-1]["settled"] == 6
    middle = line["phases"][2]
    moved = api.client.post(
        f"/sandbox/v1/clocks/{clock['id']}/advance", json={"to": middle["end"]},
        headers=acme.crosmos,
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    later = api.client.get(f"{JOBS}/{job_id}", headers=acme.crosmos).json()
    assert later["status"] == "running" and later["settled"] == 6
    assert later["now"] == middle["end"] and later["timeline"] == line
    cancelled = api.client.post(f"/v2/jobs/{job_id}/cancel", headers=acme.captain)
    assert cancelled.status_code == 200, cancelled.text
    final = api.client.get(f"{JOBS}/{job_id}", headers=acme.crosmos).json()
    assert final["status"] == "cancelled" and final["timeline"]["final_status"] == "cancelled"
    assert seconds(final["timeline"]["cancelled_at"]) == seconds(middle["end"])


def test_another_tenants_job_is_not_found(api: Api, acme: Tenant, globex: Tenant) -> None:
    job_id = ingest(api, acme.crosmos)
    theirs = api.client.get(f"{JOBS}/{job_id}", headers=globex.crosmos)
    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    assert theirs.json()["detail"] == "Job not found"
    missing = api.client.get(f"{JOBS}/no-such-job", headers=acme.crosmos)
    assert (missing.status_code, missing.json()["detail"]) == (404, theirs.json()["detail"])
    assert ids(listing(api, globex.crosmos)) == []
    named = api.client.get(JOBS, params={"tenant_id": acme.tenant.id}, headers=globex.crosmos)
    assert named.status_code == 404


def test_the_admin_names_the_tenant(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme.crosmos)
    assert api.client.get(JOBS, headers=ADMIN).status_code == 422
    assert ids(listing(api, ADMIN, tenant_id=acme.tenant.id)) == [job_id]
    one = api.client.get(f"{JOBS}/{job_id}", params={"tenant_id": acme.tenant.id}, headers=ADMIN)
    assert one.status_code == 200 and one.json()["tenant_id"] == acme.tenant.id


@pytest.mark.parametrize(
    "params",
    [{"api": "nope"}, {"status": "processing"}, {"cursor": "bm9wZQ"}, {"limit": 0}],
)
def test_a_wrong_filter_is_a_validation_problem(api: Api, acme: Tenant, params: Any) -> None:
    response = api.client.get(JOBS, params=params, headers=acme.crosmos)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_jobs_items_page_by_cursor_at_its_time(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    job_id = index(api, acme.captain, **on(clock))
    items = f"{JOBS}/{job_id}/items"
    first = api.client.get(items, params={"limit": 4}, headers=acme.crosmos)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["ordinal"] for item in page["data"]] == [0, 1, 2, 3]
    assert {item["status"] for item in page["data"]} == {"queued"}
    assert page["data"][0]["key"].startswith("s3://acme-docs/")
    rest = api.client.get(
        items, params={"limit": 4, "cursor": page["next_cursor"]}, headers=acme.crosmos
    ).json()
    assert [item["ordinal"] for item in rest["data"]] == [4, 5] and rest["next_cursor"] is None
    api.client.post(
        f"/sandbox/v1/clocks/{clock['id']}/advance",
        json={"until": {"job_id": job_id, "status": "completed"}}, headers=acme.crosmos,
    )  # fmt: skip
    done = api.client.get(items, headers=acme.crosmos).json()["data"]
    assert {item["status"] for item in done} <= {"completed", "skipped"}
    # A cursor of another job, or none the server gave out, is 422; another tenant's, 404.
    other = index(api, acme.captain)
    wrong = api.client.get(
        f"{JOBS}/{other}/items", params={"cursor": page["next_cursor"]}, headers=acme.crosmos
    )
    assert wrong.status_code == 422
    globex = api.tenant("globex")
    assert api.client.get(items, headers=globex.crosmos).status_code == 404
