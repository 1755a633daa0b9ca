"""The sandbox control plane: tenants and keys, reset and health (and, beside them, test
clocks, the request log, fault rules, and every API's jobs with their timelines). pollable's
own contract, ``openapi/sandbox.json``; errors are RFC 9457 problem details."""

from __future__ import annotations

from importlib import resources

from ..descriptor import ApiDescriptor
from . import clocks, faults, health, jobs, reports, requests, tenants

_OPENAPI = resources.files("pollable.openapi")

DESCRIPTOR = ApiDescriptor(
    name="sandbox",
    title="Sandbox",
    documents=(
        _OPENAPI / "sandbox.json",
        _OPENAPI / "sandbox.clocks.json",
        _OPENAPI / "sandbox.requests.json",
        _OPENAPI / "sandbox.reports.json",
        _OPENAPI / "sandbox.faults.json",
        _OPENAPI / "sandbox.jobs.json",
    ),
    openapi_url="/sandbox/openapi.json",
    docs_url="/sandbox/docs",
    handlers={
        "create_tenant": tenants.create_tenant,
        "list_tenants": tenants.list_tenants,
        "get_tenant": tenants.get_tenant,
        "update_tenant": tenants.update_tenant,
        "delete_tenant": tenants.delete_tenant,
        "create_key": tenants.create_key,
        "list_keys": tenants.list_keys,
        "revoke_key": tenants.revoke_key,
        "reset": tenants.reset,
        "create_clock": clocks.create_clock,
        "list_clocks": clocks.list_clocks,
        "get_clock": clocks.get_clock,
        "delete_clock": clocks.delete_clock,
        "advance_clock": clocks.advance_clock,
        "health": health.health,
        "list_requests": requests.list_requests,
        "count_requests": requests.count_requests,
        "get_request": requests.get_request,
        "delete_requests": requests.delete_requests,
        "polling_report": reports.polling_report,
        "create_fault": faults.create_fault,
        "list_faults": faults.list_faults,
        "get_fault": faults.get_fault,
        "delete_fault": faults.delete_fault,
        "list_sandbox_jobs": jobs.list_sandbox_jobs,
        "get_sandbox_job": jobs.get_sandbox_job,
        "list_sandbox_job_items": jobs.list_sandbox_job_items,
    },
    error_shape="problem",
    path_prefix="/sandbox/",
    control_plane=True,
    # New keys, in the replies that issue them.
    secret_fields=frozenset({"key"}),
    # Reading the log would fill it; health checks would crowd the admin's log.
    unlogged_operations=frozenset(
        {
            "list_requests",
            "count_requests",
            "get_request",
            "delete_requests",
            "health",
            "polling_report",
        }
    ),
)
