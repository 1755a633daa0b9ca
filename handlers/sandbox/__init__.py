"""The sandbox control plane: tenants and keys, reset and health (and, beside them, test
clocks and the request log). pollable's own contract, ``openapi/sandbox.json``; errors
are RFC 9457 problem details."""

from __future__ import annotations

from importlib import resources

from ..descriptor import ApiDescriptor
from . import clocks, health, tenants

_OPENAPI = resources.files("pollable.openapi")

DESCRIPTOR = ApiDescriptor(
    name="sandbox",
    title="Sandbox",
    documents=(_OPENAPI / "sandbox.json", _OPENAPI / "sandbox.clocks.json"),
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
    },
    error_shape="problem",
    path_prefix="/sandbox/",
    control_plane=True,
)
