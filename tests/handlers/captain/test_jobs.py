"""The Captain jobs surface over HTTP, with a hand-moved clock."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from pollable.handlers.api import Call, Principal, Reply
from pollable.handlers.captain.jobs import INDEX_KINDS, index_handler
from tests.conftest import Api, Tenant

AWS = {
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
GCS = {
    "service_account_json": '{"type": "service_account", "client_email": "a@b.iam", "private_key": "-----BEGIN"}'
}
AZURE = {"account_name": "acmestore", "account_key": "A" * 86 + "=="}
R2 = {"account_id": "0" * 32, "access_key_id": "1" * 32, "secret_access_key": "2" * 64}
BODIES: dict[str, dict[str, Any]] = {
    "url": {
        "processing_type": "basic",
        "urls": ["https://example.com/a.pdf", "https://example.com/b.docx"],
    },
    "text": {"content": "Some notes worth indexing."},
    "s3": {"bucket_name": "acme-docs", "processing_type": "basic", "max_files": 7, **AWS},
    "s3/file": {
        "bucket_name": "acme-docs",
        "file_uri": "reports/q3.pdf",
        "processing_type": "basic",
        **AWS,
    },
    "s3/directory": {
        "bucket_name": "acme-docs",
        "directory_path": "reports/",
        "processing_type": "basic",
        "max_files": 5,
        **AWS,
    },
    "gcs": {"bucket_name": "acme-docs", "processing_type": "basic", "max_files": 4, **GCS},
    "gcs/file": {
        "bucket_name": "acme-docs",
        "file_uri": "gs://acme-docs/a.pdf",
        "processing_type": "basic",
        **GCS,
    },
    "gcs/directory": {
        "bucket_name": "acme-docs",
        "directory_path": "x",
        "processing_type": "basic",
        "max_files": 3,
        **GCS,
    },
    "azure": {"container_name": "docs", "processing_type": "advanced", "max_files": 3, **AZURE},
    "azure/file": {
        "container_name": "docs",
        "file_uri": "a.pdf",
        "processing_type": "basic",
        **AZURE,
    },
    "azure/directory": {
        "container_name": "docs",
        "directory_path": "x/",
        "processing_type": "basic",
        "max_files": 3,
        **AZURE,
    },
    "r2": {
        "bucket_name": "acme-docs",
        "processing_type": "basic",
        "max_files": 3,
        "jurisdiction": "eu",
        **R2,
    },
    "r2/file": {"bucket_name": "acme-docs", "file_uri": "a.pdf", "processing_type": "basic", **R2},
    "r2/directory": {
        "bucket_name": "acme-docs",
        "directory_path": "x",
        "processing_type": "basic",
        "max_files": 3,
        **R2,
    },
}
PATHS = {
    "index_url_v2": "url",
    "index_text_v2": "text",
    "index_s3bucket_v2": "s3",
    "index_s3file_v2": "s3/file",
    "index_s3directory_v2": "s3/directory",
    "index_gcs_bucket_v2": "gcs",
    "index_gcs_file_v2": "gcs/file",
    "index_gcs_directory_v2": "gcs/directory",
    "index_azure_container_v2": "azure",
    "index_azure_file_v2": "azure/file",
    "index_azure_directory_v2": "azure/directory",
    "index_r2bucket_v2": "r2",
    "index_r2file_v2": "r2/file",
    "index_r2directory_v2": "r2/directory",
}


def index(
    api: Api,
    tenant: Tenant,
    kind: str = "s3",
    collection: str = "docs",
    scenario: str | None = None,
    headers: dict[str, str] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    extra = {"Prefer": f"scenario={scenario}"} if scenario else {}
    body = {**BODIES[kind], **changes}
    response = api.client.post(
        f"/v2/collections/{collection}/index/{kind}",
        headers={**tenant.captain, **extra, **(headers or {})},
        json=body,
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def job(api: Api, tenant: Tenant, job_id: str, **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/v2/jobs/{job_id}", headers=tenant.captain, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_table_covers_every_index_operation() -> None:
    assert set(INDEX_KINDS) == set(PATHS)


@pytest.mark.parametrize("operation_id", sorted(PATHS))
def test_every_index_operation_makes_a_job_of_its_type(
    api: Api, acme: Tenant, operation_id: str
) -> None:
    accepted = index(api, acme, PATHS[operation_id])
    assert accepted["status"] == "pending"
    api.clock.advance(86400)
    done = job(api, acme, accepted["job_id"])
    assert done["job_type"] == INDEX_KINDS[operation_id].job_type
    assert done["status"] in ("completed", "completed_with_failures")
    assert done["collection_name"] == "docs"
    assert done["progress"]["files_total"] == len(done["files"]) > 0


def test_a_job_moves_through_the_stages(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, max_files=20)["job_id"]
    pending = job(api, acme, job_id)
    assert pending["status"] == "pending" and pending["progress"]["current_stage"] is None
    assert (
        pending["started_at"] is None and pending["billing"] is None and pending["result"] is None
    )
    seen, statuses = set(), set()
    for _ in range(200):
        api.clock.advance(0.25)
        current = job(api, acme, job_id)
        statuses.add(current["status"])
        if current["status"] == "running":
            seen.add(current["progress"]["current_stage"])
            assert current["estimated_time_remaining_seconds"] is not None
            assert {f["status"] for f in current["files"]} <= {
                "queued",
                "processing",
                "completed",
                "skipped",
                "failed",
            }
    assert seen == {"scanning", "extracting", "chunking", "tagging", "embedding", "finalizing"}
    assert statuses >= {"running", "completed"} or "completed_with_failures" in statuses


def test_files_are_paged_with_opaque_cursors_exactly_once(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, max_files=23)["job_id"]
    api.clock.advance(8)  # mid-run: cursors must stay valid while the job moves
    uris, cursor = [], None
    while True:
        page = job(api, acme, job_id, files_limit=5, **({"files_cursor": cursor} if cursor else {}))
        uris += [f["uri"] for f in page["files"]]
        assert page["files_page"]["limit"] == 5 and page["files_page"]["total_estimated"] == 23
        cursor = page["files_page"]["next_cursor"]
        api.clock.advance(1)
        if cursor is None:
            break
    assert len(uris) == len(set(uris)) == 23 and uris == sorted(uris)


def test_a_cursor_from_elsewhere_is_422(api: Api, acme: Tenant) -> None:
    first = index(api, acme, max_files=5)["job_id"]
    other = index(api, acme, max_files=5, bucket_name="other-bucket")["job_id"]
    cursor = job(api, acme, first, files_limit=1)["files_page"]["next_cursor"]
    for bad in (cursor, "garbage", "W10"):
        response = api.client.get(
            f"/v2/jobs/{other}", headers=acme.captain, params={"files_cursor": bad}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "files_cursor"]


def test_progress_counts_add_up_mid_run(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, max_files=60, scenario="partial")["job_id"]
    api.clock.advance(12)
    page = job(api, acme, job_id, files_limit=500)
    progress = page["progress"]
    statuses = [f["status"] for f in page["files"]]
    assert progress["files_processed"] == sum(
        s in ("completed", "failed", "skipped") for s in statuses
    )
    assert progress["files_failed"] == statuses.count("failed")
    assert progress["files_skipped"] == statuses.count("skipped")
    assert 0 < progress["files_processed"] < 60


def test_billing_draws_credits_by_page(api: Api, acme: Tenant) -> None:
    basic = index(api, acme, max_files=10)["job_id"]
    advanced = index(api, acme, max_files=10, processing_type="advanced", bucket_name="adv-docs")[
        "job_id"
    ]
    api.clock.advance(86400)
    b, a = job(api, acme, basic)["billing"], job(api, acme, advanced)["billing"]
    assert b["credits"]["used"] == b["pages_processed"] > 0
    assert a["credits"]["used"] == a["pages_processed"] * 2.5
    assert b["cost"] == {"amount": pytest.approx(b["credits"]["used"] * 0.01), "currency": "USD"}
    assert a["credits"]["remaining"] == b["credits"]["remaining"] - a["credits"]["used"]
    assert (
        b["rate"] == {"per_credit": 0.01, "currency": "USD"} and a["processing_type"] == "advanced"
    )


def test_cancel_is_idempotent_and_refunds(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, max_files=30, scenario="slow")["job_id"]
    api.clock.advance(60)
    first = api.client.post(f"/v2/jobs/{job_id}/cancel", headers=acme.captain)
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled" and first.json()["message"] == "Job cancelled"
    api.clock.advance(5)
    again = api.client.post(f"/v2/jobs/{job_id}/cancel", headers=acme.captain)
    assert again.status_code == 200 and again.json()["cancelled_at"] == first.json()["cancelled_at"]
    view = job(api, acme, job_id, files_limit=500)
    assert view["status"] == "cancelled" and view["cancelled_by"] == "user"
    assert view["progress"]["current_stage"] == "cancelled" and view["billing"] is None
    assert {f["status"] for f in view["files"]} <= {"completed", "failed", "skipped", "cancelled"}
    assert "cancelled" in {f["status"] for f in view["files"]}
    store = api.services.store
    tenant = api.run(store.find_tenant, "acme")
    assert tenant.credits == api.settings.tenant_credits


def test_a_cancel_that_loses_a_race_shows_the_job_cancelled(
    api: Api, acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's cancel, read at a later instant, commits between this cancel's
    read and its append: the loser answers the job as it now is (cancelled, at the
    winner's instant), not as it was at its own read ("already pending")."""
    job_id = index(api, acme, max_files=30, scenario="slow")["job_id"]
    api.clock.advance(60)
    store = api.services.store
    append = store.append_event

    async def rival_first(tenant_id: str, job: str, event: Any, *, refund: float = 0.0) -> Any:
        api.clock.advance(5)
        await append(tenant_id, job, dataclasses.replace(event, at=api.clock()), refund=refund)
        return await append(tenant_id, job, event, refund=refund)

    monkeypatch.setattr(store, "append_event", rival_first)
    lost = api.client.post(f"/v2/jobs/{job_id}/cancel", headers=acme.captain)
    monkeypatch.undo()
    assert lost.status_code == 200, lost.text
    assert (lost.json()["status"], lost.json()["message"]) == (
        "cancelled", "Job was already cancelled",
    )  # fmt: skip
    assert lost.json()["cancelled_at"] == job(api, acme, job_id)["cancelled_at"] is not None
    assert len(api.run(store.get_job, acme.tenant.id, job_id).events) == 1


def test_cancelling_a_finished_job_changes_nothing(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, max_files=3)["job_id"]
    api.clock.advance(86400)
    before = job(api, acme, job_id)
    response = api.client.post(f"/v2/jobs/{job_id}/cancel", headers=acme.captain)
    assert response.status_code == 200 and response.json()["status"] == before["status"]
    assert response.json()["cancelled_at"] is None
    assert job(api, acme, job_id) == before


def test_listing_filters_and_pages(api: Api, acme: Tenant) -> None:
    ids = [index(api, acme, collection=c, max_files=2)["job_id"] for c in ("a", "b", "a")]
    stuck = index(api, acme, collection="a", max_files=2, scenario="stuck_pending")["job_id"]
    api.clock.advance(86400)
    everything = api.client.get("/v2/jobs", headers=acme.captain).json()
    assert [j["job_id"] for j in everything["jobs"]] == [stuck, *reversed(ids)]
    assert everything["total"] == 4 and everything["limit"] == 50 and everything["offset"] == 0
    only_a = api.client.get("/v2/jobs", headers=acme.captain, params={"collection": "a"}).json()
    assert only_a["total"] == 3
    pending = api.client.get("/v2/jobs", headers=acme.captain, params={"status": "pending"}).json()
    assert [j["job_id"] for j in pending["jobs"]] == [stuck]
    paged = api.client.get(
        "/v2/jobs", headers=acme.captain, params={"limit": 1, "offset": 1}
    ).json()
    assert [j["job_id"] for j in paged["jobs"]] == [ids[2]] and paged["total"] == 4


def test_idempotency_keys(api: Api, acme: Tenant, globex: Tenant) -> None:
    key = {"Idempotency-Key": "8e0f6d4b-1"}
    first = index(api, acme, headers=key)
    assert index(api, acme, headers=key) == first
    changed = api.client.post(
        "/v2/collections/docs/index/s3",
        headers={**acme.captain, **key},
        json={**BODIES["s3"], "max_files": 8},
    )
    assert changed.status_code == 409
    assert changed.json() == {
        "detail": "This Idempotency-Key was already used with a different request"
    }
    # An empty key is no key: two requests, two jobs.
    unkeyed = [index(api, acme, headers={"Idempotency-Key": ""})["job_id"] for _ in range(2)]
    assert len(set(unkeyed)) == 2
    assert index(api, globex, headers=key)["job_id"] != first["job_id"]
    listed = api.client.get("/v2/jobs", headers=acme.captain).json()
    assert listed["total"] == 3


def post_index(
    api: Api, tenant: Tenant, kind: str, headers: dict[str, str], **changes: Any
) -> tuple[str, str | None]:
    response = api.client.post(
        f"/v2/collections/docs/index/{kind}",
        headers={**tenant.captain, **headers},
        json={**BODIES[kind], **changes},
    )
    assert response.status_code == 202, response.text
    return response.json()["job_id"], response.headers.get("Preference-Applied")


def test_an_idempotent_replay_answers_what_the_first_request_got(api: Api, acme: Tenant) -> None:
    key = {"Idempotency-Key": "replay-1"}
    first = post_index(api, acme, "s3", {**key, "Prefer": "scenario=slow"})
    assert first[1] == "scenario=slow"
    for prefer in ({"Prefer": "scenario=partial"}, {}, {"Prefer": "scenario=slow"}):
        assert post_index(api, acme, "s3", {**key, **prefer}) == first
    # A first request without a preference: its replays announce none either.
    plain = post_index(api, acme, "s3", {"Idempotency-Key": "replay-2"}, max_files=3)
    assert plain[1] is None
    replay = post_index(
        api, acme, "s3", {"Idempotency-Key": "replay-2", "Prefer": "scenario=failed"}, max_files=3
    )
    assert replay == plain
    api.clock.advance(86400)
    assert job(api, acme, plain[0])["status"] == "completed"
    assert api.client.get("/v2/jobs", headers=acme.captain).json()["total"] == 2


def test_an_idempotent_replay_uses_up_no_snippet_number(api: Api, acme: Tenant) -> None:
    key = {"Idempotency-Key": "text-1"}
    first = post_index(api, acme, "text", key)
    for _ in range(3):
        assert post_index(api, acme, "text", key) == first
    second = post_index(api, acme, "text", {})
    api.clock.advance(86400)
    names = [job(api, acme, job_id)["files"][0]["uri"] for job_id, _ in (first, second)]
    assert names == ["snippet-1.txt", "snippet-2.txt"]


def test_concurrent_identical_first_requests_make_one_job(api: Api, acme: Tenant) -> None:
    handler = index_handler("index_text_v2")
    principal = Principal(acme.tenant.id, acme.name, acme.organization_id, "captain")

    def call(prefer: str) -> Call:
        params = {"collection_name": "docs", "idempotency_key": "race-1", "prefer": prefer}
        return Call(params, dict(BODIES["text"]), principal, api.services)

    async def race() -> list[Reply]:
        calls = [call(f"scenario={name}") for name in ("slow", "partial") * 4]
        return list(await asyncio.gather(*(handler(c) for c in calls)))

    replies = api.run(race)
    assert len({(r.status, r.body["job_id"], tuple(r.headers.items())) for r in replies}) == 1
    assert api.client.get("/v2/jobs", headers=acme.captain).json()["total"] == 1


def test_magic_values(api: Api, acme: Tenant) -> None:
    denied = index(api, acme, bucket_name="secret-denied")["job_id"]
    corrupt = index(
        api,
        acme,
        "url",
        urls=["https://example.com/ok.pdf", "https://example.com/corrupt-scan.pdf"],
    )["job_id"]
    api.clock.advance(86400)
    d = job(api, acme, denied)
    assert (d["status"], d["error_code"], d["progress"]["current_stage"]) == (
        "failed",
        "bucket_access_denied",
        "scanning",
    )
    assert d["files"] == [] and d["billing"] is None
    c = job(api, acme, corrupt)
    assert c["status"] == "completed_with_failures"
    failed = [f for f in c["files"] if f["status"] == "failed"]
    assert [f["error_code"] for f in failed] == ["file_corrupt"]


def test_a_job_whose_only_file_is_corrupt_fails(api: Api, acme: Tenant) -> None:
    text = index(api, acme, "text", filename="corrupt-notes.txt")["job_id"]
    urls = index(api, acme, "url", urls=["https://example.com/a-corrupt.pdf"] * 2)["job_id"]
    api.clock.advance(86400)
    for job_id in (text, urls):
        view = job(api, acme, job_id)
        assert (view["status"], view["error_code"]) == ("failed", "all_items_failed")
        assert view["error_message"] and view["billing"] is None
        assert view["result"]["files_indexed"] == 0
        assert {f["error_code"] for f in view["files"]} == {"file_corrupt"}


def test_partial_with_one_file_fails_it(api: Api, acme: Tenant) -> None:
    one = index(api, acme, "text", scenario="partial")["job_id"]
    two = index(api, acme, "url", scenario="partial")["job_id"]
    api.clock.advance(86400)
    assert job(api, acme, one)["status"] == "failed"
    assert job(api, acme, two)["status"] == "completed_with_failures"


def test_skip_existing_skips_what_the_collection_already_has(api: Api, acme: Tenant) -> None:
    first = index(api, acme, max_files=12)["job_id"]
    api.clock.advance(86400)
    indexed = {
        f["uri"]
        for f in job(api, acme, first, files_limit=500)["files"]
        if f["status"] == "completed"
    }
    second = index(api, acme, max_files=12)["job_id"]
    fresh = index(api, acme, max_files=12, skip_existing=False)["job_id"]
    elsewhere = index(api, acme, max_files=12, collection="other")["job_id"]
    api.clock.advance(86400)
    skipped = {
        f["uri"]
        for f in job(api, acme, second, files_limit=500)["files"]
        if f["error_code"] == "already_indexed"
    }
    assert skipped == indexed
    assert not any(
        f["error_code"] == "already_indexed"
        for f in job(api, acme, fresh, files_limit=500)["files"]
    )
    assert not any(
        f["error_code"] == "already_indexed"
        for f in job(api, acme, elsewhere, files_limit=500)["files"]
    )


def test_skip_existing_skips_only_what_an_earlier_job_has_indexed(api: Api, acme: Tenant) -> None:
    first = index(api, acme, max_files=20)["job_id"]
    api.clock.advance(7)  # the first job is part-way through its files
    done_so_far = {
        f["uri"]
        for f in job(api, acme, first, files_limit=500)["files"]
        if f["status"] == "completed"
    }
    assert 0 < len(done_so_far) < 20
    second = index(api, acme, max_files=20)["job_id"]
    # The first job is cancelled before it finishes: the rest of its files never are indexed.
    cancelled = api.client.post(f"/v2/jobs/{first}/cancel", headers=acme.captain)
    assert cancelled.json()["status"] == "cancelled"
    api.clock.advance(86400)
    indexed = {
        f["uri"]
        for f in job(api, acme, first, files_limit=500)["files"]
        if f["status"] == "completed"
    }
    assert indexed == done_so_far
    files = job(api, acme, second, files_limit=500)["files"]
    skipped = {f["uri"] for f in files if f["error_code"] == "already_indexed"}
    assert skipped == indexed
    third = index(api, acme, max_files=20)["job_id"]
    api.clock.advance(86400)
    files = job(api, acme, third, files_limit=500)["files"]
    # Now the second job has indexed every file it did not skip.
    assert {f["error_code"] for f in files} <= {"already_indexed", "unsupported_file_type"}


def test_text_snippets_are_numbered_per_collection(api: Api, acme: Tenant) -> None:
    ids = [index(api, acme, "text")["job_id"] for _ in range(2)]
    named = index(api, acme, "text", filename="notes.txt")["job_id"]
    api.clock.advance(86400)
    assert [job(api, acme, i)["files"][0]["uri"] for i in ids] == ["snippet-1.txt", "snippet-2.txt"]
    assert job(api, acme, named)["files"][0]["uri"] == "notes.txt"


#: For every storage operation, a credential and a bucket name the cloud would refuse.
#: Upstream takes any string and its scan fails; so does the sandbox's.
REFUSED: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "s3": ({"aws_access_key_id": "AKIA-do-not-echo"}, {"bucket_name": "Acme_Docs"}),
    "s3/file": ({"aws_secret_access_key": ""}, {"bucket_name": "ab"}),
    "s3/directory": ({"aws_secret_access_key": "do-not-echo"}, {"bucket_name": "a..b"}),
    "gcs": (
        {"service_account_json": '{"type": "authorized_user", "client_secret": "do-not-echo"}'},
        {"bucket_name": "-docs"},
    ),
    "gcs/file": ({"service_account_json": "do-not-echo"}, {"bucket_name": "x" * 64}),
    "gcs/directory": ({"service_account_json": ""}, {"bucket_name": "Docs"}),
    "azure": ({"account_key": "do-not-echo=="}, {"container_name": "my--docs"}),
    "azure/file": ({"account_name": "AcmeStore"}, {"container_name": "docs_2024"}),
    "azure/directory": ({"account_key": ""}, {"container_name": "docs-"}),
    "r2": ({"access_key_id": "do-not-echo"}, {"bucket_name": "acme.docs"}),
    "r2/file": ({"account_id": "z" * 32}, {"bucket_name": "AB"}),
    "r2/directory": ({"secret_access_key": "0" * 63}, {"bucket_name": "a_b"}),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_what_the_cloud_would_refuse_fails_the_scan(api: Api, acme: Tenant, kind: str) -> None:
    credential, bucket = REFUSED[kind]
    cases = ((credential, "invalid_credentials"), (bucket, "invalid_bucket_name"))
    ids = [(index(api, acme, kind, **change)["job_id"], code) for change, code in cases]
    api.clock.advance(86400)
    for job_id, code in ids:
        failed = job(api, acme, job_id)
        assert (failed["status"], failed["error_code"], failed["progress"]["current_stage"]) == (
            "failed",
            code,
            "scanning",
        )
        assert failed["billing"] is None and failed["result"]["files_indexed"] == 0
        assert "do-not-echo" not in str(failed)


def test_max_files_may_be_an_integral_number(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, max_files=3.0)["job_id"]
    assert job(api, acme, job_id)["progress"]["files_total"] == 3


def test_foreign_jobs_are_not_found(api: Api, acme: Tenant, globex: Tenant) -> None:
    job_id = index(api, acme)["job_id"]
    for method, path in (("get", f"/v2/jobs/{job_id}"), ("post", f"/v2/jobs/{job_id}/cancel")):
        foreign = api.client.request(method, path, headers=globex.captain)
        missing = api.client.request(
            method, path.replace(job_id, "no-such-job"), headers=acme.captain
        )
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json() == {"detail": "Job not found"}
    assert api.client.get("/v2/jobs", headers=globex.captain).json()["total"] == 0
    assert job(api, acme, job_id)["status"] != "cancelled"


def test_crosmos_jobs_are_not_captain_jobs(api: Api, acme: Tenant) -> None:
    created = api.client.post(
        "/api/v1/sources",
        headers=acme.crosmos,
        json={"space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a", "sources": [{"content": "x"}]},
    )
    job_id = created.json()["job_id"]
    assert api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain).status_code == 404
