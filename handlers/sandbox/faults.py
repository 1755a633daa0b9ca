"""Fault rules: which of a tenant's job-API requests to answer 429, 503 or 500, delay, or
leave unanswered, and when (every Nth, the next N, or with a seeded probability). The
server applies them (``server/faults.py``) before a request's handler runs.

The admin names the tenant (``tenant_id``); a tenant key manages its own tenant's rules,
and another tenant's rule is 404, like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from pollable.lifecycle.errors import InvalidInput, NotFound
from pollable.store.base import FaultRule

from ..api import Call, Reply
from ..common import iso
from .tenants import own_tenant

FAULT_NOT_FOUND = "Fault rule not found"
#: Fault rules a tenant may have (the store refuses more, 409).
MAX_RULES = 100


async def tenant_of(call: Call) -> str:
    """Whose rules: the tenant the admin names, or the key's own (as for test clocks)."""
    named = call.params.get("tenant_id")
    if named is None:
        if call.principal.admin:
            raise InvalidInput(("query", "tenant_id"), "The admin names the tenant: tenant_id")
        return call.principal.tenant_id
    return (await own_tenant(call, named)).id


def fault_body(rule: FaultRule) -> dict[str, Any]:
    spec = rule.spec
    return {
        "id": rule.id,
        "api": spec.get("api"),
        "operation": spec.get("operation"),
        "job_id": spec.get("job_id"),
        "action": spec["action"],
        "trigger": spec.get("trigger"),
        "matched": rule.matched,
        "created_at": iso(rule.created_at),
    }


def _checked(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """The rule as stored: the body, with its API and operation checked against what is
    served (the contract cannot list them: the job APIs are the server's to know)."""
    apis = {api.name: api for api in call.services.job_apis}
    named = body.get("api")
    if named is not None and named not in apis:
        raise InvalidInput(("body", "api"), f"api must be one of {', '.join(apis)}")
    operation = body.get("operation")
    if operation is not None:
        among = [apis[named]] if named is not None else list(apis.values())
        if not any(operation in api.handlers for api in among):
            where = f"the {named} API" if named is not None else "any job API"
            raise InvalidInput(("body", "operation"), f"No operation {operation!r} in {where}")
    return {key: value for key, value in body.items() if value is not None}


async def create_fault(call: Call) -> Reply:
    tenant_id = await tenant_of(call)
    spec = _checked(call, call.body)
    rule = await call.services.store.create_fault(
        tenant_id, spec, limit=MAX_RULES, created_at=call.services.now()
    )
    return Reply(201, fault_body(rule))


async def list_faults(call: Call) -> Reply:
    rules = await call.services.store.list_faults(await tenant_of(call))
    return Reply(200, {"data": [fault_body(rule) for rule in rules]})


async def get_fault(call: Call) -> Reply:
    tenant_id = await tenant_of(call)
    try:
        rule = await call.services.store.get_fault(tenant_id, call.params["fault_id"])
    except NotFound:
        raise NotFound(FAULT_NOT_FOUND) from None
    return Reply(200, fault_body(rule))


async def delete_fault(call: Call) -> Reply:
    tenant_id = await tenant_of(call)
    try:
        await call.services.store.delete_fault(tenant_id, call.params["fault_id"])
    except NotFound:
        raise NotFound(FAULT_NOT_FOUND) from None
    return Reply(204, None)
