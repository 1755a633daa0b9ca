"""Tenants and keys: what the CLI (and tests) use to let someone in."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pollable.handlers.descriptor import ApiDescriptor, hash_key
from pollable.store.base import Store, Tenant


@dataclass(frozen=True)
class IssuedKey:
    key: str
    tenant: Tenant
    api: ApiDescriptor
    environment: str


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
    store: Store,
    tenant_name: str,
    api: ApiDescriptor,
    *,
    credits: float,
    environment: str | None = None,
) -> IssuedKey:
    """Create the tenant if needed and give it a new key for ``api``."""
    environment = environment or api.key_rule.default_environment
    tenant = await ensure_tenant(store, tenant_name, credits=credits)
    key = api.key_rule.new(environment)
    await store.add_key(
        tenant.id, api=api.name, key_hash=hash_key(key), label=api.key_rule.label(key)
    )
    return IssuedKey(key, tenant, api, environment)


@dataclass(frozen=True)
class TenantKeys:
    """A tenant with one key of each API, and the headers a client sends with them."""

    tenant: Tenant
    #: Each API's key, by API name.
    keys: Mapping[str, str]
    apis: Mapping[str, ApiDescriptor]

    @property
    def name(self) -> str:
        return self.tenant.name

    @property
    def organization_id(self) -> str:
        return self.tenant.organization_id

    def __getattr__(self, name: str) -> Any:
        """``tenant.<api>_key`` is that API's key and ``tenant.<api>`` its headers, for
        tests and scripts that know which APIs they talk to."""
        keys = self.__dict__.get("keys", {})
        if name.endswith("_key") and name[: -len("_key")] in keys:
            return keys[name[: -len("_key")]]
        if name in keys:
            return self.headers(name)
        raise AttributeError(name)

    def headers(self, api: str) -> dict[str, str]:
        """What a client of ``api`` sends to authenticate as this tenant."""
        headers = {"Authorization": f"Bearer {self.keys[api]}"}
        header = self.apis[api].organization_header
        if header is not None:
            headers[header] = self.organization_id
        return headers


async def provision_tenant(
    store: Store, name: str, apis: Sequence[ApiDescriptor], *, credits: float
) -> TenantKeys:
    """The tenant ``name`` (created if needed) with a new key for each of ``apis``."""
    keys: dict[str, str] = {}
    tenant = None
    for api in apis:
        issued = await issue_key(store, name, api, credits=credits)
        keys[api.name], tenant = issued.key, issued.tenant
    if tenant is None:
        tenant = await ensure_tenant(store, name, credits=credits)
    return TenantKeys(tenant, keys, {api.name: api for api in apis})
