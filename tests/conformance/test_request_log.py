"""The request log of a live server (``pollable serve`` on SQLite), driven by the official
SDKs and plain HTTP: what the SDKs say about themselves is kept, credentials are not (in
the log API, the database files, or the server's output), and a clean stop writes every
queued entry."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import crosmos
import httpx
import runcaptain

from pollable.server.auth import new_jwt
from tests.conformance.bodies import CAPTAIN_TARGETS, SPACE_ID, FakeCredentials, captain_body
from tests.conformance.live import Servers, provision


def test_a_live_servers_log_keeps_sdks_and_no_credentials(
    servers: Servers, db_url: str, tmp_path: Path
) -> None:
    acme = provision(db_url, "acme")["acme"]
    admin_token = "pat_live-" + secrets.token_hex(16)
    jwt_secret = "live-jwt-" + secrets.token_hex(16)
    server = servers.start(
        db_url,
        "--log-level",
        "trace",
        env={"POLLABLE_ADMIN_TOKEN": admin_token, "POLLABLE_JWT_SECRET": jwt_secret},
    )
    fake = FakeCredentials.new()
    token = new_jwt(jwt_secret, acme.tenant.name)
    admin = {"Authorization": f"Bearer {admin_token}"}
    captain = runcaptain.Captain(
        base_url=server.url, organization_id=acme.organization_id, key=acme.captain_key
    )
    indexed = captain.indexing.index_s3bucket_v2(
        "sdk-log",
        bucket_name="acme-archive",
        aws_access_key_id=fake.aws_access_key_id,
        aws_secret_access_key=fake.aws_secret_access_key,
        processing_type="basic",
        max_files=3,
        request_options={"max_retries": 0},
    )
    captain.jobs.get_job_status_v2(indexed.job_id, request_options={"max_retries": 0})
    client = crosmos.Crosmos(api_key=token, base_url=server.url, max_retries=0)
    ingested = client.sources.ingest(space_id=SPACE_ID, sources=[{"content": "Ada."}])
    client.jobs.get_status(ingested.job_id)
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for target in CAPTAIN_TARGETS:
            path = f"/v2/collections/secrets/index/{target}"
            body = captain_body(target, fake)
            assert http.post(path, json=body, headers=acme.captain).status_code == 202
            assert http.post(path, json={**body, "x": 1}, headers=acme.captain).status_code == 422
        assert (
            http.get("/v2/jobs", headers={"Authorization": "Bearer cap_dev_forged"}).status_code
            == 401
        )
        created = http.post("/sandbox/v1/tenants", json={"name": "initech"}, headers=admin)
        assert created.status_code == 201
        new_keys = [key["key"] for key in created.json()["keys"]]

        def log(headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
            response = http.get(
                "/sandbox/v1/requests", headers=headers, params={"limit": 200, **params}
            )
            assert response.status_code == 200, response.text
            shown.append(response.text)
            return list(response.json()["data"])

        shown: list[str] = []
        by_captain = log(acme.crosmos, job_id=indexed.job_id)
        assert [e["operation_id"] for e in by_captain] == ["get_job_status_v2", "index_s3bucket_v2"]
        fern = by_captain[0]["sdk"]
        assert fern is not None and (fern["generator"], fern["name"]) == ("fern", "captain-sdk")
        by_crosmos = log(acme.crosmos, job_id=ingested.job_id)
        assert [e["method"] for e in by_crosmos] == ["GET", "POST"]
        stainless = by_crosmos[0]["sdk"]
        assert stainless is not None and (stainless["generator"], stainless["name"]) == (
            "stainless", "Crosmos",
        )  # fmt: skip
        assert by_crosmos[0]["retry_count"] == 0
        assert len(log(acme.crosmos)) == 4 + 2 * len(CAPTAIN_TARGETS)
        # The admin's log: the forged key, the new tenant, the readiness polls of the docs.
        nobody = log(admin)
        assert {e["status"] for e in nobody} == {401, 201, 200}
        assert {e["path"] for e in nobody if e["status"] == 200} == {"/openapi.json"}
    server.stop()  # SIGTERM: a clean stop
    needles = [acme.crosmos_key, acme.captain_key, token, admin_token, *new_keys, *fake.needles]
    for text in shown:
        assert not [n for n in needles if n in text]
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".db" in p.name}
    assert "live.db" in files
    for name, content in files.items():
        assert not [n for n in needles if n.encode() in content], f"a credential is in {name}"
    assert "GET /sandbox/v1/requests" in server.output(), "the server logged no requests"
    assert not [n for n in needles if n in server.output()]


def test_a_clean_stop_writes_every_queued_entry(servers: Servers, db_url: str) -> None:
    acme = provision(db_url, "acme")["acme"]
    server = servers.start(db_url)
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        ids = [http.get("/v2/jobs", headers=acme.captain).headers["Request-Id"] for _ in range(20)]
    server.stop()
    again = servers.start(db_url)
    with httpx.Client(base_url=again.url, timeout=10.0) as http:
        for request_id in ids:
            found = http.get(f"/sandbox/v1/requests/{request_id}", headers=acme.crosmos)
            assert found.status_code == 200, request_id
