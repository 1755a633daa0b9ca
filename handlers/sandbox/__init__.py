"""The sandbox control plane: tenants and keys, reset and health (and, beside them, test
clocks and the request log). pollable's own contract, ``openapi/sandbox.json``; errors
are RFC 9457 problem details."""

from __future__ import annotations

from importlib import resources

from ..descriptor import ApiDescriptor
from . import health, tenants

DESCRIPTOR = ApiDescriptor(
    name="sandbox",
    title="Sandbox",
    documents=(resources.files("pollable.openapi") / "sandbox.json",),
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
        "health": health.health,
    },
    error_shape="problem",
    path_prefix="/sandbox/",
    control_plane=True,
)
