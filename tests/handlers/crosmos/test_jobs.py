"""The Crosmos jobs surface over HTTP, with a hand-moved clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, Tenant

SPACE = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
TEXT = "Ada Lovelace met Charles Babbage in London. They discussed the Analytical Engine."


def ingest(api: Api, tenant: Tenant, scenario: str | None = None, **body: Any) -> dict[str, Any]:
    payload = {
        "space_id": SPACE,
        "sources": [{"content": TEXT}, {"content": "Grace Hopper wrote COBOL."}],
    }
    payload.update(body)
    headers = dict(tenant.crosmos)
    if scenario:
        headers["Prefer"] = f"scenario={scenario}"
    response = api.client.post("/api/v1/sources", headers=headers, json=payload)
    assert response.status_code == 202, response.text
    return dict(response.json())


def poll(api: Api, tenant: Tenant, job_id: str) -> dict[str, Any]:
    response = api.client.get(f"/api/v1/jobs/{job_id}", headers=tenant.crosmos)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_ingest_answers_like_the_sdk_expects(api: Api, acme: Tenant) -> None:
    accepted = ingest(api, acme)
    assert accepted["status"] == "pending"
    assert accepted["jobs"] == [
        {"job_id": accepted["job_id"], "source_ids": accepted["source_ids"]}
    ]
    assert len(set(accepted["source_ids"])) == 2


def test_a_job_walks_its_lifecycle(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme)["job_id"]
    first = poll(api, acme, job_id)
    assert first["status"] == "pending"
    assert first["started_at"] is None and first["completed_at"] is None and first["result"] is None
    api.clock.advance(2.5)
    running = poll(api, acme, job_id)
    assert running["status"] == "processing" and running["started_at"] is not None
    api.clock.advance(60)
    done = poll(api, acme, job_id)
    assert done["status"] == "completed"
    assert done["started_at"] <= done["completed_at"]
    result = done["result"]
    assert result["source_ids"] == done["source_ids"] and result["failed_source_ids"] == []
    assert result["memory_count"] == 3 and result["entity_count"] >= 5 and result["tokens_used"] > 0
    assert result["error_message"] is None and result["source_errors"] is None
    api.clock.advance(3600)
    assert poll(api, acme, job_id) == done


def test_source_ids_are_integers_unique_within_the_tenant(api: Api, acme: Tenant) -> None:
    first = poll(api, acme, ingest(api, acme)["job_id"])["source_ids"]
    second = poll(api, acme, ingest(api, acme)["job_id"])["source_ids"]
    assert all(isinstance(i, int) for i in first + second)
    assert len(set(first + second)) == 4


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        ("happy", "completed"),
        ("instant", "completed"),
        ("partial", "partial"),
        ("failed", "failed"),
        ("fails_at_embedding", "failed"),
        ("cancelled", "cancelled"),
    ],
)
def test_scenarios_end_where_they_say(api: Api, acme: Tenant, scenario: str, status: str) -> None:
    accepted = api.client.post(
        "/api/v1/sources",
        headers={**acme.crosmos, "Prefer": f"scenario={scenario}"},
        json={"space_id": SPACE, "sources": [{"content": TEXT}] * 6},
    )
    assert accepted.headers["preference-applied"] == f"scenario={scenario}"
    api.clock.advance(3600)
    job = poll(api, acme, accepted.json()["job_id"])
    assert job["status"] == status
    result = job["result"]
    if status == "partial":
        assert result["failed_source_ids"] and result["source_errors"]
        assert set(result["source_ids"]) | set(result["failed_source_ids"]) == set(
            job["source_ids"]
        )
    if status == "failed":
        assert job["error_message"] and result["error_message"] == job["error_message"]
    if status == "cancelled":
        assert result["error_message"] == "Job cancelled by system"


def test_stuck_pending_never_starts(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme, "stuck_pending")["job_id"]
    api.clock.advance(10 * 365 * 86400)
    job = poll(api, acme, job_id)
    assert (job["status"], job["started_at"]) == ("pending", None)


def test_a_marker_in_content_chooses_the_scenario(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme, sources=[{"content": "hello pollable:scenario=failed"}])["job_id"]
    api.clock.advance(3600)
    assert poll(api, acme, job_id)["status"] == "failed"


def test_the_tenant_default_scenario_applies(api: Api, acme: Tenant) -> None:
    tenant_id = api.run(api.services.store.find_tenant, "acme").id
    api.run(api.services.store.set_default_scenario, tenant_id, "partial")
    job_id = ingest(api, acme)["job_id"]
    api.clock.advance(3600)
    assert poll(api, acme, job_id)["status"] == "partial"


def test_unprocessable_content_types_fail_their_source(api: Api, acme: Tenant) -> None:
    job_id = ingest(
        api, acme, sources=[{"content": TEXT}, {"content": "%PDF", "content_type": "pdf"}]
    )["job_id"]
    api.clock.advance(3600)
    job = poll(api, acme, job_id)
    assert job["status"] == "partial"
    failed = job["result"]["failed_source_ids"]
    assert failed == [job["source_ids"][1]]
    assert "pdf" in job["result"]["source_errors"][str(failed[0])]


def test_an_unknown_scenario_is_refused(api: Api, acme: Tenant) -> None:
    response = api.client.post(
        "/api/v1/sources",
        headers={**acme.crosmos, "Prefer": "respond-async, scenario=nope"},
        json={"space_id": SPACE, "sources": [{"content": TEXT}]},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "prefer"]


def test_conversations_become_one_source(api: Api, acme: Tenant) -> None:
    messages = [
        {"role": "user", "content": "I moved to Berlin."},
        {"role": "assistant", "content": "Noted, Berlin."},
    ]
    response = api.client.post(
        "/api/v1/conversations",
        headers=acme.crosmos,
        json={"space_id": SPACE, "messages": messages, "session_date": "2026-11-01"},
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["source_ids"] == [accepted["source_id"]] and accepted["status"] == "pending"
    api.clock.advance(3600)
    job = poll(api, acme, accepted["job_id"])
    assert job["status"] == "completed" and len(job["source_ids"]) == 1


def test_same_request_same_plan(api: Api, acme: Tenant) -> None:
    first, second = ingest(api, acme, "partial"), ingest(api, acme, "partial")
    api.clock.advance(3600)
    a, b = poll(api, acme, first["job_id"]), poll(api, acme, second["job_id"])
    offset = b["source_ids"][0] - a["source_ids"][0]
    assert [i + offset for i in a["result"]["failed_source_ids"]] == b["result"][
        "failed_source_ids"
    ]


def test_job_ids_are_case_insensitive_uuids(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme)["job_id"]
    assert (
        api.client.get(f"/api/v1/jobs/{job_id.upper()}", headers=acme.crosmos).json()["job_id"]
        == job_id
    )


def test_unknown_and_foreign_jobs_are_the_same_404(api: Api, acme: Tenant, globex: Tenant) -> None:
    job_id = ingest(api, acme)["job_id"]
    foreign = api.client.get(f"/api/v1/jobs/{job_id}", headers=globex.crosmos)
    missing = api.client.get(f"/api/v1/jobs/{SPACE}", headers=acme.crosmos)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Job not found"}


@pytest.mark.parametrize("scenario", ["partial", None])
def test_a_job_in_which_no_source_succeeds_fails(
    api: Api, acme: Tenant, scenario: str | None
) -> None:
    # One source cannot be partial; and a job whose only source is unprocessable failed.
    source = {"content": TEXT} if scenario else {"content": "%PDF", "content_type": "pdf"}
    job_id = ingest(api, acme, scenario, sources=[source])["job_id"]
    api.clock.advance(3600)
    job = poll(api, acme, job_id)
    assert job["status"] == "failed"
    assert job["error_message"] and job["result"]["error_message"] == job["error_message"]
    assert job["result"]["source_ids"] == []
    assert job["result"]["failed_source_ids"] == job["source_ids"]


def test_a_partial_conversation_fails(api: Api, acme: Tenant) -> None:
    response = api.client.post(
        "/api/v1/conversations",
        headers={**acme.crosmos, "Prefer": "scenario=partial"},
        json={"space_id": SPACE, "messages": [{"role": "user", "content": TEXT}]},
    )
    assert response.status_code == 202, response.text
    api.clock.advance(3600)
    assert poll(api, acme, response.json()["job_id"])["status"] == "failed"
