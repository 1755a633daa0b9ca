"""Faults over a real socket (``pollable serve`` in a subprocess): a closed connection is
seen by the client as a disconnect with no response; the counters of "next N" and "every
Nth" rules are shared by two processes on one SQLite file; and both official SDKs retry a
429 fault as their retry rules say and succeed (the retries visible in the request log)."""

from __future__ import annotations

import time
from typing import Any

import crosmos
import httpx
import pytest
import runcaptain

from tests.conformance.live import Servers, Tenant

ADMIN_TOKEN = "an-admin-token-for-the-live-fault-tests"
SOURCES = [{"content": "Ada met Alan."}]
SPACE_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def add_rule(url: str, tenant: Tenant, **body: Any) -> dict[str, Any]:
    made = httpx.post(f"{url}/sandbox/v1/faults", json=body, headers=tenant.crosmos)
    assert made.status_code == 201, made.text
    return dict(made.json())


def log_of(url: str, tenant: Tenant) -> list[dict[str, Any]]:
    """The tenant's request log, oldest first."""
    listed = httpx.get(f"{url}/sandbox/v1/requests", params={"limit": 200}, headers=tenant.crosmos)
    assert listed.status_code == 200, listed.text
    return list(reversed(listed.json()["data"]))


def test_close_leaves_the_client_without_a_response(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    server = servers.start(db_url)
    add_rule(server.url, acme, api="crosmos", action={"close": True}, trigger={"next": 1})
    body = {"space_id": SPACE_ID, "sources": SOURCES}
    with httpx.Client(base_url=server.url, headers=acme.crosmos) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/v1/sources", json=body)
        # The next request (on a new connection) is answered, and the first stored nothing.
        made = client.post("/api/v1/sources", json=body)
        assert made.status_code == 202, made.text
    jobs = [
        e for e in log_of(server.url, acme) if e["operation_id"] and "ingest" in e["operation_id"]
    ]
    assert [e["status"] for e in jobs] == [202]
    assert "Exception in ASGI application" not in server.output()
    assert "without starting response" not in server.output()


def test_prefer_close_on_a_read(servers: Servers, db_url: str, tenants: dict[str, Tenant]) -> None:
    acme = tenants["acme"]
    server = servers.start(db_url)
    with httpx.Client(base_url=server.url, headers=acme.captain) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/v2/jobs", headers={"Prefer": "fault=close"})
        assert client.get("/v2/jobs").status_code == 200


def test_two_processes_share_a_rules_counters(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    one, two = servers.start_many(2, db_url)
    add_rule(one.url, acme, operation="list_jobs_v2", action={"status": 503}, trigger={"next": 3})
    every = add_rule(
        one.url, acme, operation="get_job_status_v2", action={"status": 500}, trigger={"every": 2}
    )
    seen = [
        httpx.get(f"{server.url}/v2/jobs", headers=acme.captain).status_code
        for server in (one, two, one, two, one, two)
    ]
    assert seen == [503, 503, 503, 200, 200, 200]
    paths = [f"{server.url}/v2/jobs/no-such-job" for server in (two, one, two, one)]
    assert [httpx.get(path, headers=acme.captain).status_code for path in paths] == [
        404, 500, 404, 500,
    ]  # fmt: skip
    got = httpx.get(f"{two.url}/sandbox/v1/faults/{every['id']}", headers=acme.crosmos)
    assert got.json()["matched"] == 4


def test_the_crosmos_sdk_retries_a_429_and_succeeds(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    server = servers.start(db_url)
    add_rule(server.url, acme, api="crosmos", action={"status": 429, "retry_after": 1},
             trigger={"next": 2})  # fmt: skip
    client = crosmos.Crosmos(api_key=acme.crosmos_key, base_url=server.url, timeout=10.0)
    started = time.monotonic()
    answer = client.sources.ingest(space_id=SPACE_ID, sources=SOURCES)
    waited = time.monotonic() - started
    assert answer.jobs
    # retry-after-ms (1000) read before Retry-After: one second before each retry.
    assert 2.0 <= waited < 10.0
    entries = [e for e in log_of(server.url, acme) if e["api"] == "crosmos"]
    assert [(e["status"], e["retry_count"]) for e in entries] == [(429, 0), (429, 1), (202, 2)]


def test_the_captain_sdk_retries_a_429_and_succeeds(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    server = servers.start(db_url)
    add_rule(server.url, acme, api="captain", action={"status": 429, "retry_after": 1},
             trigger={"next": 2})  # fmt: skip
    client = runcaptain.Captain(
        base_url=server.url, organization_id=acme.organization_id, key=acme.captain_key,
        timeout=10.0,
    )  # fmt: skip
    started = time.monotonic()
    answer = client.indexing.index_url_v2(
        "sdk-faults", url="https://example.com/a.pdf", processing_type="basic"
    )
    waited = time.monotonic() - started
    assert answer.job_id
    # Retry-After: 1, whole seconds (Fern ignores retry-after-ms).
    assert 2.0 <= waited < 10.0
    entries = [e for e in log_of(server.url, acme) if e["api"] == "captain"]
    # Fern sends no retry count: the retries are the same request, three times.
    assert [e["status"] for e in entries] == [429, 429, 202]
    assert {e["sdk"]["name"] for e in entries} == {"captain-sdk"}
    assert entries[-1]["job_id"] == answer.job_id
