"""Tenants and keys: what the CLI (and tests) use to let someone in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pollable.store.base import Store, Tenant

from .auth import hash_key, key_label, new_key


@dataclass(frozen=True)
class IssuedKey:
    key: str
    tenant: Tenant
    api: str


async def ensure_tenant(
    store: Store, name: str, *, credits: float, organization_id: str | None = None
) -> Tenant:
    """The tenant called ``name``, created (with a new organization UUID unless one is
    given) if it does not exist yet."""
    tenant = await store.find_tenant(name)
    if tenant is None:
        organization = organization_id or str(uuid.uuid4())
        tenant = await store.create_tenant(name, organization_id=organization, credits=credits)
    return tenant


async def issue_key(
    store: Store, tenant_name: str, api: str, *, credits: float, environment: str = "dev"
) -> IssuedKey:
    """Create the tenant if needed and give it a new key for ``api``."""
    tenant = await ensure_tenant(store, tenant_name, credits=credits)
    key = new_key(api, environment=environment)
    await store.add_key(tenant.id, api=api, key_hash=hash_key(key), label=key_label(key))
    return IssuedKey(key, tenant, api)


@dataclass(frozen=True)
class TenantKeys:
    """A tenant with one key of each API, and the headers a client sends with them."""

    tenant: Tenant
    crosmos_key: str
    captain_key: str

    @property
    def name(self) -> str:
        return self.tenant.name

    @property
    def organization_id(self) -> str:
        return self.tenant.organization_id

    @property
    def crosmos(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.crosmos_key}"}

    @property
    def captain(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.captain_key}",
            "X-Organization-ID": self.organization_id,
        }


async def provision_tenant(store: Store, name: str, *, credits: float) -> TenantKeys:
    """The tenant ``name`` (created if needed) with a new Crosmos key and a new Captain key."""
    crosmos = await issue_key(store, name, "crosmos", credits=credits)
    captain = await issue_key(store, name, "captain", credits=credits)
    return TenantKeys(captain.tenant, crosmos.key, captain.key)
