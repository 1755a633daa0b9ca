"""Tenants and keys: what the CLI (and tests) use to let someone in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from store.base import Store, Tenant

from .auth import hash_key, key_label, new_key


@dataclass(frozen=True)
class IssuedKey:
    key: str
    tenant: Tenant
    api: str


async def ensure_tenant(store: Store, name: str, *, credits: float) -> Tenant:
    tenant = await store.find_tenant(name)
    if tenant is None:
        tenant = await store.create_tenant(name, organization_id=str(uuid.uuid4()), credits=credits)
    return tenant


async def issue_key(
    store: Store, tenant_name: str, api: str, *, credits: float, environment: str = "dev"
) -> IssuedKey:
    """Create the tenant if needed and give it a new key for ``api``."""
    tenant = await ensure_tenant(store, tenant_name, credits=credits)
    key = new_key(api, environment=environment)
    await store.add_key(tenant.id, api=api, key_hash=hash_key(key), label=key_label(key))
    return IssuedKey(key, tenant, api)
