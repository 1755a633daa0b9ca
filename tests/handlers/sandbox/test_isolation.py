"""Every control-plane operation keeps tenants apart: one tenant's key, aimed at another
tenant's tenant, keys, clocks or log entries, finds nothing there (404, as for what does
not exist), or is refused what only the admin may do (403); and what it can reach of its
own leaves the other tenant unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pollable.handlers.registry import APIS
from pollable.server import contract
from pollable.server.operation import compile_operations
from tests.conftest import Api, Tenant

Probe = Callable[[Api, Tenant, dict[str, str]], httpx.Response]


def theirs(api: Api, globex: Tenant) -> dict[str, str]:
    """globex's resources: its tenant id, one of its keys, a clock, a logged request, a
    fault rule and a job."""
    made = api.client.post("/sandbox/v1/clocks", json={}, headers=globex.crosmos)
    assert made.status_code == 201, made.text
    keys = api.client.get(f"/sandbox/v1/tenants/{globex.tenant.id}/keys", headers=globex.crosmos)
    logged = api.client.get("/v2/jobs", headers=globex.captain)
    # Before the fault rule, which would answer it 503.
    job = api.client.post(
        "/api/v1/sources", headers=globex.crosmos,
        json={"space_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a", "sources": [{"content": "x"}]},
    )  # fmt: skip
    assert job.status_code == 202, job.text
    fault = api.client.post(
        "/sandbox/v1/faults", json={"action": {"status": 503}}, headers=globex.crosmos
    )
    assert fault.status_code == 201, fault.text
    return {
        "job": job.json()["job_id"],
        "tenant": globex.tenant.id,
        "key": keys.json()["data"][0]["id"],
        "clock": made.json()["id"],
        "request": logged.headers["request-id"],
        "fault": fault.json()["id"],
    }


def flush(api: Api) -> None:
    """Write the request log's queue (it is written off the request path)."""
    api.run(api.services.request_log.flush)


PROBES: dict[str, tuple[int, Probe]] = {
    "create_tenant": (403, lambda a, t, r: a.client.post(
        "/sandbox/v1/tenants", json={"name": "intruder"}, headers=t.crosmos)),
    "list_tenants": (200, lambda a, t, r: a.client.get("/sandbox/v1/tenants", headers=t.crosmos)),
    "get_tenant": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/tenants/{r['tenant']}", headers=t.crosmos)),
    "update_tenant": (404, lambda a, t, r: a.client.patch(
        f"/sandbox/v1/tenants/{r['tenant']}", json={"credits": 0}, headers=t.crosmos)),
    "delete_tenant": (403, lambda a, t, r: a.client.delete(
        f"/sandbox/v1/tenants/{r['tenant']}", headers=t.crosmos)),
    "create_key": (404, lambda a, t, r: a.client.post(
        f"/sandbox/v1/tenants/{r['tenant']}/keys", json={"api": "crosmos"}, headers=t.crosmos)),
    "list_keys": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/tenants/{r['tenant']}/keys", headers=t.crosmos)),
    "revoke_key": (404, lambda a, t, r: a.client.delete(
        f"/sandbox/v1/tenants/{r['tenant']}/keys/{r['key']}", headers=t.crosmos)),
    "reset": (403, lambda a, t, r: a.client.post(
        "/sandbox/v1/reset", json={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "health": (200, lambda a, t, r: a.client.get("/health")),
    "create_clock": (404, lambda a, t, r: a.client.post(
        "/sandbox/v1/clocks", params={"tenant_id": r["tenant"]}, json={}, headers=t.crosmos)),
    "list_clocks": (404, lambda a, t, r: a.client.get(
        "/sandbox/v1/clocks", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "get_clock": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/clocks/{r['clock']}", headers=t.crosmos)),
    "delete_clock": (404, lambda a, t, r: a.client.delete(
        f"/sandbox/v1/clocks/{r['clock']}", headers=t.crosmos)),
    "advance_clock": (404, lambda a, t, r: a.client.post(
        f"/sandbox/v1/clocks/{r['clock']}/advance", json={"seconds": 60}, headers=t.crosmos)),
    "list_requests": (404, lambda a, t, r: a.client.get(
        "/sandbox/v1/requests", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "count_requests": (404, lambda a, t, r: a.client.get(
        "/sandbox/v1/requests/count", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "get_request": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/requests/{r['request']}", headers=t.crosmos)),
    "delete_requests": (404, lambda a, t, r: a.client.delete(
        "/sandbox/v1/requests", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "polling_report": (404, lambda a, t, r: a.client.get(
        "/sandbox/v1/reports/polling", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "create_fault": (404, lambda a, t, r: a.client.post(
        "/sandbox/v1/faults", params={"tenant_id": r["tenant"]}, json={"action": {"status": 503}},
        headers=t.crosmos)),
    "list_faults": (404, lambda a, t, r: a.client.get(
        "/sandbox/v1/faults", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "get_fault": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/faults/{r['fault']}", headers=t.crosmos)),
    "delete_fault": (404, lambda a, t, r: a.client.delete(
        f"/sandbox/v1/faults/{r['fault']}", headers=t.crosmos)),
    "list_sandbox_jobs": (404, lambda a, t, r: a.client.get(
        "/sandbox/v1/jobs", params={"tenant_id": r["tenant"]}, headers=t.crosmos)),
    "get_sandbox_job": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/jobs/{r['job']}", headers=t.crosmos)),
    "list_sandbox_job_items": (404, lambda a, t, r: a.client.get(
        f"/sandbox/v1/jobs/{r['job']}/items", headers=t.crosmos)),
}  # fmt: skip


def test_every_control_plane_operation_is_probed() -> None:
    served = contract.load(APIS["sandbox"]).document
    assert {op.operation_id for op in compile_operations(served)} == set(PROBES)


@pytest.mark.parametrize("operation", sorted(PROBES))
def test_another_tenants_things_are_not_there(
    api: Api, acme: Tenant, globex: Tenant, operation: str
) -> None:
    resources = theirs(api, globex)
    flush(api)
    before = snapshot(api, globex, resources)
    expected, probe = PROBES[operation]
    answer = probe(api, acme, resources)
    assert answer.status_code == expected, (operation, answer.text)
    if operation == "list_tenants":
        assert [t["name"] for t in answer.json()["data"]] == ["acme"]
    flush(api)
    assert snapshot(api, globex, resources) == before, operation


def snapshot(api: Api, globex: Tenant, resources: dict[str, str]) -> Any:
    """What globex sees of its own tenant, keys, clock, log entry and job."""
    tenant = api.client.get(f"/sandbox/v1/tenants/{resources['tenant']}", headers=globex.crosmos)
    keys = api.client.get(f"/sandbox/v1/tenants/{resources['tenant']}/keys", headers=globex.crosmos)
    clock = api.client.get(f"/sandbox/v1/clocks/{resources['clock']}", headers=globex.crosmos)
    entry = api.client.get(f"/sandbox/v1/requests/{resources['request']}", headers=globex.crosmos)
    job = api.client.get(f"/sandbox/v1/jobs/{resources['job']}", headers=globex.crosmos)
    return (tenant.json(), keys.json(), clock.json(), entry.status_code, job.json())
