"""Tenants, their API keys, and reset.

The admin (``principal.admin``) manages every tenant; a tenant's key manages its own
tenant only, and anything of another tenant is answered 404, like a tenant that does not
exist. Creating and deleting tenants is the admin's alone (403).
"""

from __future__ import annotations

import uuid
from typing import Any

from pollable.lifecycle import scenarios
from pollable.lifecycle.errors import Conflict, Forbidden, InvalidInput, NotFound
from pollable.store.base import KeyRecord, StorageFull, Tenant

from ..api import Call, Reply
from ..common import iso, refused
from ..descriptor import ApiDescriptor, hash_key

ADMIN_ONLY = "Only the sandbox's admin token may do this"
TENANT_NOT_FOUND = "Tenant not found"


def tenant_body(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "organization_id": tenant.organization_id,
        "credits": tenant.credits,
        "default_scenario": tenant.default_scenario,
        "created_at": iso(tenant.created_at),
    }


def key_body(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "api": key.api,
        "environment": key.environment,
        "label": key.label,
        "clock_id": key.clock_id,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
    }


def require_admin(call: Call) -> None:
    if not call.principal.admin:
        raise Forbidden(ADMIN_ONLY)


async def own_tenant(call: Call, tenant_id: str) -> Tenant:
    """The tenant ``tenant_id`` if the caller may see it (the admin, or its own key)."""
    if not call.principal.admin and tenant_id != call.principal.tenant_id:
        raise NotFound(TENANT_NOT_FOUND)
    try:
        return await call.services.store.get_tenant(tenant_id)
    except NotFound:
        raise NotFound(TENANT_NOT_FOUND) from None


def _scenario(name: str | None, loc: tuple[str | int, ...]) -> str | None:
    if name is not None and name not in scenarios.CATALOGUE:
        raise InvalidInput(loc, str(scenarios.UnknownScenario(name)))
    return name


def _job_api(call: Call, name: str) -> ApiDescriptor:
    api = next((a for a in call.services.job_apis if a.name == name), None)
    if api is None:
        known = ", ".join(a.name for a in call.services.job_apis)
        raise InvalidInput(("body", "api"), f"api must be one of {known}")
    return api


async def _issue(
    call: Call, tenant: Tenant, api: ApiDescriptor, environment: str | None, clock: str | None
) -> dict[str, Any]:
    rule = api.key_rule
    if environment is not None and environment not in rule.environments:
        choices = " or ".join(rule.environments)
        raise InvalidInput(("body", "environment"), f"a {api.name} key's environment is {choices}")
    environment = environment or rule.default_environment
    key = rule.new(environment)
    try:
        record = await call.services.store.add_key(
            tenant.id, api=api.name, key_hash=hash_key(key), label=rule.label(key),
            environment=environment, clock_id=clock, created_at=call.services.now(),
            cap=call.services.settings.max_stored_items,
        )  # fmt: skip
    except StorageFull as exc:
        raise refused(exc) from None
    return {**key_body(record), "key": key}


async def create_tenant(call: Call) -> Reply:
    require_admin(call)
    body = call.body
    default = _scenario(body.get("default_scenario"), ("body", "default_scenario"))
    credits = body.get("credits", call.services.settings.tenant_credits)
    store = call.services.store
    tenant = await store.create_tenant(
        body["name"],
        organization_id=str(uuid.UUID(body["organization_id"]))
        if "organization_id" in body
        else str(uuid.uuid4()),
        credits=float(credits),
        default_scenario=default,
        created_at=call.services.now(),
    )
    keys = [await _issue(call, tenant, api, None, None) for api in call.services.job_apis]
    return Reply(201, {"tenant": tenant_body(tenant), "keys": keys})


async def list_tenants(call: Call) -> Reply:
    limit, after = call.params["limit"], call.params.get("cursor")
    if call.principal.admin:
        found = await call.services.store.list_tenants(after=after, limit=limit + 1)
    else:
        own = await call.services.store.get_tenant(call.principal.tenant_id)
        found = [own] if after is None or own.id > after else []
    page = found[:limit]
    next_cursor = page[-1].id if len(found) > limit else None
    return Reply(200, {"data": [tenant_body(t) for t in page], "next_cursor": next_cursor})


async def get_tenant(call: Call) -> Reply:
    return Reply(200, tenant_body(await own_tenant(call, call.params["tenant_id"])))


async def update_tenant(call: Call) -> Reply:
    tenant = await own_tenant(call, call.params["tenant_id"])
    store = call.services.store
    if "default_scenario" in call.body:
        default = _scenario(call.body["default_scenario"], ("body", "default_scenario"))
        tenant = await store.set_default_scenario(tenant.id, default)
    if "credits" in call.body:
        tenant = await store.set_credits(tenant.id, float(call.body["credits"]))
    return Reply(200, tenant_body(tenant))


async def delete_tenant(call: Call) -> Reply:
    require_admin(call)
    tenant = await own_tenant(call, call.params["tenant_id"])
    await call.services.request_log.flush()  # nothing of the tenant's may be written after
    await call.services.store.delete_tenant(tenant.id)
    return Reply(204, None)


async def create_key(call: Call) -> Reply:
    tenant = await own_tenant(call, call.params["tenant_id"])
    api = _job_api(call, call.body["api"])
    clock = call.body.get("clock_id")
    if clock is not None:
        try:
            await call.services.store.get_clock(tenant.id, clock)
        except NotFound:
            raise InvalidInput(("body", "clock_id"), "No such test clock for this tenant") from None
    return Reply(201, await _issue(call, tenant, api, call.body.get("environment"), clock))


async def list_keys(call: Call) -> Reply:
    tenant = await own_tenant(call, call.params["tenant_id"])
    keys = await call.services.store.list_keys(tenant.id)
    return Reply(200, {"data": [key_body(k) for k in keys]})


async def revoke_key(call: Call) -> Reply:
    tenant = await own_tenant(call, call.params["tenant_id"])
    if call.params["key_id"] == call.principal.key_id:
        # Revoking the key in hand would lock its holder out mid-conversation; another of
        # the tenant's keys (or the admin) may.
        raise Conflict("This request is made with that key: revoke it with another key")
    try:
        key = await call.services.store.revoke_key(
            tenant.id, call.params["key_id"], at=call.services.now()
        )
    except NotFound:
        raise NotFound("Key not found") from None
    return Reply(200, key_body(key))


async def reset(call: Call) -> Reply:
    body = call.body or {}
    store = call.services.store
    if not call.principal.admin:
        if body.get("all") or body.get("tenant_id") not in (None, call.principal.tenant_id):
            raise Forbidden(ADMIN_ONLY)
        targets = [call.principal.tenant_id]
    elif body.get("all"):
        targets = [t.id for t in await _every_tenant(call)]
    elif body.get("tenant_id"):
        targets = [(await own_tenant(call, body["tenant_id"])).id]
    else:
        raise InvalidInput(("body",), "The admin names a tenant_id, or all: true")
    await call.services.request_log.flush()  # its log is forgotten: queued entries too
    for tenant_id in targets:
        await store.reset_tenant(tenant_id)
    return Reply(200, {"tenants": targets})


async def _every_tenant(call: Call) -> list[Tenant]:
    found: list[Tenant] = []
    while True:
        page = await call.services.store.list_tenants(
            after=found[-1].id if found else None, limit=500
        )
        found.extend(page)
        if len(page) < 500:
            return found
