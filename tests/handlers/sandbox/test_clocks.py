"""Test clocks over HTTP on every backend: jobs of both APIs bound by a header or by a key
move only when their clock does, ``advance`` goes to a time, by seconds or until a job is in
a status or stage (in its own API's words), time never goes back, and a tenant sees only
its own clocks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

ADMIN_TOKEN = "an-admin-token-for-the-clock-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLOCKS = "/sandbox/v1/clocks"
T0 = "2030-01-01T00:00:00Z"
SOURCES = {
    "space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "sources": [{"content": "Ada met Alan."}, {"content": "Alan met Grace."}],
}
BUCKET = {
    "bucket_name": "acme-docs",
    "processing_type": "basic",
    "max_files": 6,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.fixture
def api(backend: str, tmp_path: Any) -> Any:
    yield from start(Settings(store=store_url(backend, tmp_path), admin_token=ADMIN_TOKEN))


def seconds(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_clock(api: Api, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    made = api.client.post(CLOCKS, json=body, headers=headers)
    assert made.status_code == 201, made.text
    return dict(made.json())


def advance(api: Api, tenant: Tenant, clock: dict[str, Any], **body: Any) -> Any:
    return api.client.post(f"{CLOCKS}/{clock['id']}/advance", json=body, headers=tenant.crosmos)


def moved(api: Api, tenant: Tenant, clock: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = advance(api, tenant, clock, **body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def on(clock: dict[str, Any] | None) -> dict[str, str]:
    return {} if clock is None else {"Pollable-Clock": clock["id"]}


def ingest(api: Api, headers: dict[str, str], **extra: str) -> str:
    made = api.client.post("/api/v1/sources", json=SOURCES, headers={**headers, **extra})
    assert made.status_code == 202, made.text
    return str(made.json()["job_id"])


def index(api: Api, headers: dict[str, str], **extra: str) -> str:
    made = api.client.post(
        "/v2/collections/docs/index/s3", json=BUCKET, headers={**headers, **extra}
    )
    assert made.status_code == 202, made.text
    return str(made.json()["job_id"])


def crosmos_job(api: Api, tenant: Tenant, job_id: str) -> dict[str, Any]:
    response = api.client.get(f"/api/v1/jobs/{job_id}", headers=tenant.crosmos)
    assert response.status_code == 200, response.text
    return dict(response.json())


def captain_job(api: Api, tenant: Tenant, job_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v2/jobs/{job_id}", headers=tenant.captain)
    assert response.status_code == 200, response.text
    return dict(response.json())


def listed(api: Api, tenant: Tenant, status: str) -> set[str]:
    response = api.client.get("/v2/jobs", params={"status": status}, headers=tenant.captain)
    assert response.status_code == 200, response.text
    return {job["job_id"] for job in response.json()["jobs"]}


def bound_key(api: Api, tenant: Tenant, api_name: str, clock: dict[str, Any]) -> dict[str, str]:
    made = api.client.post(
        f"/sandbox/v1/tenants/{tenant.tenant.id}/keys",
        json={"api": api_name, "clock_id": clock["id"]},
        headers=tenant.crosmos,
    )
    assert made.status_code == 201, made.text
    assert made.json()["clock_id"] == clock["id"]
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    if api_name == "captain":
        headers["X-Organization-ID"] = tenant.organization_id
    return headers


# -- the resource ---------------------------------------------------------------------------


def test_a_tenant_creates_gets_lists_and_deletes_its_clocks(api: Api, acme: Tenant) -> None:
    frozen = new_clock(api, acme.crosmos, name="ci", now=T0)
    assert frozen["id"].startswith("clk_") and frozen["name"] == "ci"
    assert frozen["now"] == T0
    assert seconds(frozen["created_at"]) == pytest.approx(api.clock.now, abs=1e-6)
    # Without a time, frozen at the current time; either API's key will do.
    default = new_clock(api, acme.captain)
    assert default["name"] is None
    assert seconds(default["now"]) == pytest.approx(api.clock.now, abs=1e-6)
    api.clock.advance(3600)
    got = api.client.get(f"{CLOCKS}/{frozen['id']}", headers=acme.crosmos)
    assert got.status_code == 200 and got.json() == frozen  # real time does not move it
    more = [new_clock(api, acme.crosmos, name=f"c{i}") for i in range(3)]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(CLOCKS, params=params, headers=acme.crosmos).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(c["id"] for c in seen) == sorted(c["id"] for c in [frozen, default, *more])
    gone = api.client.delete(f"{CLOCKS}/{frozen['id']}", headers=acme.crosmos)
    assert gone.status_code == 204 and gone.content == b""
    for response in (
        api.client.get(f"{CLOCKS}/{frozen['id']}", headers=acme.crosmos),
        api.client.delete(f"{CLOCKS}/{frozen['id']}", headers=acme.crosmos),
        advance(api, acme, frozen, seconds=1),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "Clock not found"


def test_bad_times_are_refused(api: Api, acme: Tenant) -> None:
    for when in (
        "9999-12-31T00:00:00Z",
        "0001-01-01T12:00:00Z",
        "not a time",
        "2030-02-30T00:00:00Z",
    ):
        refused = api.client.post(CLOCKS, json={"now": when}, headers=acme.crosmos)
        assert refused.status_code == 422, when
        assert refused.json()["errors"][0]["loc"] == ["body", "now"]
    # Whatever the offset, a day the contract admits is a time a clock can show.
    for when, shown in (
        ("0001-01-02T00:00:00+23:59", "0001-01-01T00:01:00Z"),
        ("9999-12-30T23:59:59-23:59", "9999-12-31T23:58:59Z"),
        ("1969-07-20T20:17:40Z", "1969-07-20T20:17:40Z"),
    ):
        assert new_clock(api, acme.crosmos, now=when)["now"] == shown
    leap = new_clock(api, acme.crosmos, now="2016-12-31T23:59:60Z")
    assert leap["now"] == "2017-01-01T00:00:00Z"
    offset = new_clock(api, acme.crosmos, now="2030-01-01T01:30:00.25+01:30")
    assert offset["now"] == "2030-01-01T00:00:00.250000Z"
    late = new_clock(api, acme.crosmos, now="9999-12-30T23:59:00-23:59")
    beyond = advance(api, acme, late, seconds=120)
    assert beyond.status_code == 422 and beyond.json()["errors"][0]["loc"] == ["body", "seconds"]


# -- jobs on a clock ------------------------------------------------------------------------


def test_jobs_bound_by_the_header_move_only_with_their_clock(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    crosmos = ingest(api, acme.crosmos, **on(clock))
    captain = index(api, acme.captain, **on(clock))
    unbound = index(api, acme.captain)
    api.clock.advance(86400)  # a day of real time: the bound jobs have not moved
    memory = crosmos_job(api, acme, crosmos)
    assert (memory["status"], memory["created_at"], memory["started_at"]) == ("pending", T0, None)
    files = captain_job(api, acme, captain)
    assert (files["status"], files["created_at"], files["progress"]["current_stage"]) == (
        "pending", T0, None,
    )  # fmt: skip
    assert {f["status"] for f in files["files"]} == {"queued"}
    eta = files["estimated_time_remaining_seconds"]
    assert eta > 0
    assert captain_job(api, acme, unbound)["status"] == "completed"
    assert listed(api, acme, "pending") == {captain}
    assert listed(api, acme, "completed") == {unbound}

    # Into the run: every field follows the clock.
    now = seconds(moved(api, acme, clock, seconds=eta / 2)["now"])
    files = captain_job(api, acme, captain)
    assert files["status"] == "running" and files["progress"]["current_stage"] is not None
    assert seconds(files["started_at"]) <= now and files["completed_at"] is None
    assert seconds(files["updated_at"]) <= now
    assert files["estimated_time_remaining_seconds"] < eta and files["billing"] is None
    assert listed(api, acme, "running") == {captain}
    memory = crosmos_job(api, acme, crosmos)
    assert memory["status"] in ("processing", "completed") and memory["started_at"] is not None

    # Past the end: finished, billed, and listed as such.
    now = seconds(moved(api, acme, clock, seconds=3600)["now"])
    files = captain_job(api, acme, captain)
    assert files["status"] == "completed" and seconds(files["completed_at"]) <= now
    assert files["billing"] is not None and files["estimated_time_remaining_seconds"] is None
    assert {f["status"] for f in files["files"]} <= {"completed", "skipped"}
    assert listed(api, acme, "completed") == {captain, unbound}
    memory = crosmos_job(api, acme, crosmos)
    assert memory["status"] == "completed" and memory["result"]["source_ids"]


def test_advance_until_a_status_or_stage_in_each_apis_words(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    crosmos = ingest(api, acme.crosmos, **on(clock))
    captain = index(api, acme.captain, **on(clock))

    at = moved(api, acme, clock, until={"job_id": crosmos, "status": "processing"})["now"]
    memory = crosmos_job(api, acme, crosmos)
    assert memory["status"] == "processing" and memory["started_at"] == at
    # Already there: the clock stays.
    assert moved(api, acme, clock, until={"job_id": crosmos, "status": "pending"})["now"] == at

    for stage in ("scanning", "extracting", "embedding", "finalizing"):
        now = moved(api, acme, clock, until={"job_id": captain, "stage": stage})["now"]
        files = captain_job(api, acme, captain)
        assert (files["status"], files["progress"]["current_stage"]) == ("running", stage)
        assert seconds(files["updated_at"]) <= seconds(now)
    assert any(f["status"] == "completed" for f in files["files"])

    done = moved(api, acme, clock, until={"job_id": captain, "status": "completed"})["now"]
    files = captain_job(api, acme, captain)
    assert files["status"] == "completed" and files["completed_at"] == done
    assert files["billing"]["pages_processed"] > 0
    moved(api, acme, clock, until={"job_id": crosmos, "status": "completed"})
    assert crosmos_job(api, acme, crosmos)["status"] == "completed"


def test_a_job_that_never_gets_there_is_a_conflict(api: Api, acme: Tenant, globex: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    failing = index(api, acme.captain, Prefer="scenario=failed", **on(clock))
    never = advance(api, acme, clock, until={"job_id": failing, "status": "completed"})
    assert never.status_code == 409
    assert never.json()["detail"] == (
        f"Job {failing} never reaches status 'completed': it ends failed"
    )
    assert moved(api, acme, clock, until={"job_id": failing, "stage": "extracting"})
    failed = moved(api, acme, clock, until={"job_id": failing, "status": "failed"})
    files = captain_job(api, acme, failing)
    assert files["status"] == "failed" and files["completed_at"] == failed["now"]
    assert files["progress"]["current_stage"] == "extracting"
    stuck = ingest(api, acme.crosmos, Prefer="scenario=stuck_pending", **on(clock))
    never = advance(api, acme, clock, until={"job_id": stuck, "status": "completed"})
    assert never.status_code == 409 and "never leaves the queue" in never.json()["detail"]

    # Words of another API, or of nothing, are not this job's.
    memory = ingest(api, acme.crosmos, **on(clock))
    for until, loc in (
        ({"job_id": memory, "status": "running"}, "status"),
        ({"job_id": memory, "stage": "embedding"}, "stage"),
        ({"job_id": failing, "status": "processing"}, "status"),
        ({"job_id": failing, "stage": "thinking"}, "stage"),
    ):
        refused = advance(api, acme, clock, until=until)
        assert refused.status_code == 422, until
        assert refused.json()["errors"][0]["loc"] == ["body", "until", loc]
    # A job of no clock, or of another clock, or of nobody.
    other = new_clock(api, acme.crosmos, now=T0)
    for job_id in (index(api, acme.captain), index(api, acme.captain, **on(other))):
        elsewhere = advance(api, acme, clock, until={"job_id": job_id, "status": "running"})
        assert elsewhere.status_code == 409
        assert "is not bound to clock" in elsewhere.json()["detail"]
    theirs = index(api, globex.captain)
    for job_id in (theirs, "3c90c3cc-0d44-4b50-8888-8dd25736052a"):
        missing = advance(api, acme, clock, until={"job_id": job_id, "status": "running"})
        # The job is named in the body: 422 on that field (404 is for the clock in the path).
        assert missing.status_code == 422, missing.text
        assert missing.json()["errors"][0]["loc"] == ["body", "until", "job_id"]
        assert missing.json()["errors"][0]["msg"] == "Job not found"


def test_time_never_goes_back(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    assert moved(api, acme, clock, to="2030-01-02T00:00:00Z")["now"] == "2030-01-02T00:00:00Z"
    back = advance(api, acme, clock, to=T0)
    assert back.status_code == 409
    assert back.headers["content-type"] == "application/problem+json"
    assert back.json()["detail"] == (
        f"Clocks only move forward: {clock['id']} is at 2030-01-02T00:00:00Z, after {T0}"
    )
    # To where it is: it stays (at the microsecond it shows).
    assert moved(api, acme, clock, to="2030-01-02T00:00:00Z")["now"] == "2030-01-02T00:00:00Z"
    assert moved(api, acme, clock, seconds=1.5)["now"] == "2030-01-02T00:00:01.500000Z"
    assert moved(api, acme, clock, to="2030-01-02T00:00:01.500000Z")["now"].endswith("01.500000Z")
    for body in (
        {},
        {"seconds": 0},
        {"seconds": -5},
        {"seconds": 1, "to": "2031-01-01T00:00:00Z"},
        {"until": {"job_id": "x"}},
        {"until": {"job_id": "x", "status": "completed", "stage": "embedding"}},
        {"seconds": 400_000_000},
    ):
        assert advance(api, acme, clock, **body).status_code == 422, body


def test_a_key_bound_to_a_clock_binds_the_jobs_it_creates(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    crosmos_key = bound_key(api, acme, "crosmos", clock)
    captain_key = bound_key(api, acme, "captain", clock)
    memory = ingest(api, crosmos_key)
    files = index(api, captain_key)
    api.clock.advance(86400)
    assert crosmos_job(api, acme, memory)["created_at"] == T0
    assert captain_job(api, acme, files)["status"] == "pending"
    # A bound key still reads, lists and cancels, at the clock's time.
    response = api.client.get(f"/v2/jobs/{files}", headers=captain_key)
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert api.client.get("/v2/jobs", headers=captain_key).json()["total"] == 1
    moved(api, acme, clock, until={"job_id": files, "stage": "tagging"})
    cancelled = api.client.post(f"/v2/jobs/{files}/cancel", headers=captain_key)
    assert cancelled.status_code == 200
    clock_now = api.client.get(f"{CLOCKS}/{clock['id']}", headers=acme.crosmos).json()["now"]
    assert cancelled.json()["cancelled_at"] == clock_now
    # And the control plane.
    assert api.client.get(CLOCKS, headers=captain_key).status_code == 200

    # The header wins over the key's clock.
    other = new_clock(api, acme.crosmos, now="2040-01-01T00:00:00Z")
    header_wins = ingest(api, crosmos_key, **on(other))
    assert crosmos_job(api, acme, header_wins)["created_at"] == "2040-01-01T00:00:00Z"


def test_only_a_clock_of_the_tenant_binds(api: Api, acme: Tenant, globex: Tenant) -> None:
    theirs = new_clock(api, globex.crosmos, now=T0)
    for clock_id in (theirs["id"], "clk_0000000000000000"):
        refused = api.client.post(
            "/api/v1/sources", json=SOURCES, headers={**acme.crosmos, "Pollable-Clock": clock_id}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["header", "pollable-clock"]
        refused = api.client.post(
            "/v2/collections/docs/index/s3",
            json=BUCKET,
            headers={**acme.captain, "Pollable-Clock": clock_id},
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["header", "pollable-clock"]
        key = api.client.post(
            f"/sandbox/v1/tenants/{acme.tenant.id}/keys",
            json={"api": "captain", "clock_id": clock_id},
            headers=ADMIN,
        )
        assert key.status_code == 422 and key.json()["errors"][0]["loc"] == ["body", "clock_id"]
    assert api.client.get("/v2/jobs", headers=acme.captain).json()["total"] == 0


def test_deleting_a_clock_deletes_its_jobs_and_frees_its_keys(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    key = bound_key(api, acme, "captain", clock)
    doomed = [index(api, key), index(api, acme.captain, **on(clock))]
    kept = index(api, acme.captain)
    assert api.client.delete(f"{CLOCKS}/{clock['id']}", headers=acme.crosmos).status_code == 204
    for job_id in doomed:
        assert api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain).status_code == 404
    assert captain_job(api, acme, kept)["job_id"] == kept
    # The key is kept, unbound: its jobs run on real time now.
    keys = api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}/keys", headers=ADMIN).json()
    assert {k["clock_id"] for k in keys["data"]} == {None}
    fresh = index(api, key)
    assert seconds(captain_job(api, acme, fresh)["created_at"]) == pytest.approx(api.clock.now)
    # A revoked key is refused, bound or not.
    clock = new_clock(api, acme.crosmos, now=T0)
    made = api.client.post(
        f"/sandbox/v1/tenants/{acme.tenant.id}/keys",
        json={"api": "crosmos", "clock_id": clock["id"]},
        headers=ADMIN,
    ).json()
    revoked = api.client.delete(
        f"/sandbox/v1/tenants/{acme.tenant.id}/keys/{made['id']}", headers=ADMIN
    )
    assert revoked.status_code == 200 and revoked.json()["clock_id"] == clock["id"]
    refused = api.client.post(
        "/api/v1/sources", json=SOURCES, headers={"Authorization": f"Bearer {made['key']}"}
    )
    assert refused.status_code == 401


def test_reset_forgets_the_tenants_clocks(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    job_id = ingest(api, acme.crosmos, **on(clock))
    assert api.client.post("/sandbox/v1/reset", json={}, headers=acme.crosmos).status_code == 200
    assert api.client.get(f"{CLOCKS}/{clock['id']}", headers=acme.crosmos).status_code == 404
    assert api.client.get(CLOCKS, headers=acme.crosmos).json()["data"] == []
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos).status_code == 404


# -- who sees what --------------------------------------------------------------------------


def test_a_tenant_sees_only_its_own_clocks(api: Api, acme: Tenant, globex: Tenant) -> None:
    mine = new_clock(api, acme.crosmos, now=T0)
    theirs = new_clock(api, globex.crosmos, now=T0)
    path = f"{CLOCKS}/{theirs['id']}"
    assert api.client.get(path, headers=acme.crosmos).status_code == 404
    assert api.client.delete(path, headers=acme.crosmos).status_code == 404
    assert advance(api, acme, theirs, seconds=5).status_code == 404
    assert [c["id"] for c in api.client.get(CLOCKS, headers=acme.crosmos).json()["data"]] == [
        mine["id"]
    ]
    own = {"tenant_id": acme.tenant.id}
    assert api.client.get(CLOCKS, params=own, headers=acme.crosmos).status_code == 200
    other = {"tenant_id": globex.tenant.id}
    for response in (
        api.client.get(CLOCKS, params=other, headers=acme.crosmos),
        api.client.post(CLOCKS, params=other, json={}, headers=acme.crosmos),
        api.client.get(f"{CLOCKS}/{mine['id']}", params=other, headers=acme.crosmos),
    ):
        assert response.status_code == 404
    # Globex's clock did not move.
    assert api.client.get(path, headers=globex.crosmos).json()["now"] == T0


def test_the_admin_names_the_tenant(api: Api, acme: Tenant) -> None:
    missing = api.client.get(CLOCKS, headers=ADMIN)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["query", "tenant_id"]
    assert api.client.post(CLOCKS, json={}, headers=ADMIN).status_code == 422
    tenant = {"tenant_id": acme.tenant.id}
    made = api.client.post(CLOCKS, params=tenant, json={"now": T0}, headers=ADMIN)
    assert made.status_code == 201
    clock = made.json()
    path = f"{CLOCKS}/{clock['id']}"
    assert api.client.get(path, headers=acme.crosmos).json() == clock
    assert api.client.get(path, headers=ADMIN).status_code == 422
    forward = api.client.post(f"{path}/advance", params=tenant, json={"seconds": 60},
                              headers=ADMIN)  # fmt: skip
    assert forward.status_code == 200 and forward.json()["now"] == "2030-01-01T00:01:00Z"
    page = api.client.get(CLOCKS, params=tenant, headers=ADMIN).json()
    assert [c["id"] for c in page["data"]] == [clock["id"]]
    nobody = {"tenant_id": "no-such-tenant"}
    assert api.client.get(CLOCKS, params=nobody, headers=ADMIN).status_code == 404
    assert api.client.delete(path, params=tenant, headers=ADMIN).status_code == 204


def test_the_request_log_keeps_a_bound_jobs_clock_time(api: Api, acme: Tenant) -> None:
    clock = new_clock(api, acme.crosmos, now=T0)
    job_id = index(api, acme.captain, **on(clock))
    read = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain)
    api.run(api.services.request_log.flush)
    entry = api.client.get(f"/sandbox/v1/requests/{read.headers['request-id']}",
                           headers=acme.crosmos).json()  # fmt: skip
    assert entry["clock_time"] is not None and entry["clock_time"].startswith("2030-")
    unbound = index(api, acme.captain)
    read = api.client.get(f"/v2/jobs/{unbound}", headers=acme.captain)
    api.run(api.services.request_log.flush)
    entry = api.client.get(f"/sandbox/v1/requests/{read.headers['request-id']}",
                           headers=acme.crosmos).json()  # fmt: skip
    assert entry["clock_time"] is None
