"""The store contract for fault rules, on every backend: creation order, isolation, the
per-tenant bound, atomic match counters, and reset and deletion forgetting them."""

from __future__ import annotations

import asyncio

import pytest

from pollable.lifecycle.errors import Conflict, NotFound
from tests.store.test_store import make_tenant

pytestmark = pytest.mark.anyio

SPEC = {"action": {"status": 429}, "trigger": {"next": 2}}


async def test_rules_are_kept_in_creation_order_with_their_spec(store) -> None:
    tenant = await make_tenant(store)
    made = [
        await store.create_fault(tenant.id, {**SPEC, "n": i}, limit=10, created_at=5.0)
        for i in range(4)
    ]
    listed = await store.list_faults(tenant.id)
    assert [r.id for r in listed] == [r.id for r in made]
    assert listed[2].spec == {**SPEC, "n": 2} and listed[2].matched == 0
    assert listed[0].created_at == 5.0 and listed[0].tenant_id == tenant.id
    assert all(r.id.startswith("flt_") for r in made)
    assert await store.get_fault(tenant.id, made[1].id) == listed[1]


async def test_another_tenants_rule_is_not_found(store) -> None:
    mine, theirs = await make_tenant(store), await make_tenant(store)
    rule = await store.create_fault(mine.id, SPEC, limit=10)
    assert await store.list_faults(theirs.id) == []
    with pytest.raises(NotFound):
        await store.get_fault(theirs.id, rule.id)
    with pytest.raises(NotFound):
        await store.delete_fault(theirs.id, rule.id)
    with pytest.raises(NotFound):
        await store.match_fault(theirs.id, rule.id)
    assert (await store.get_fault(mine.id, rule.id)).matched == 0


async def test_a_keys_tenant_says_whether_it_has_rules(store) -> None:
    mine, theirs = await make_tenant(store), await make_tenant(store)
    await store.add_key(mine.id, api="crosmos", key_hash="mine-rules", label="csk_m")
    await store.add_key(theirs.id, api="crosmos", key_hash="theirs-rules", label="csk_t")

    async def has_rules(digest: str) -> bool | None:
        found = await store.key_for("crosmos", digest)
        assert found is not None
        return found[0].has_fault_rules

    assert await has_rules("mine-rules") is False
    rule = await store.create_fault(mine.id, SPEC, limit=10)
    assert await has_rules("mine-rules") is True and await has_rules("theirs-rules") is False
    await store.delete_fault(mine.id, rule.id)
    assert await has_rules("mine-rules") is False
    # Other reads of a tenant do not say.
    assert (await store.get_tenant(mine.id)).has_fault_rules is None


async def test_a_tenant_has_at_most_limit_rules(store) -> None:
    tenant = await make_tenant(store)
    for _ in range(3):
        await store.create_fault(tenant.id, SPEC, limit=3)
    with pytest.raises(Conflict):
        await store.create_fault(tenant.id, SPEC, limit=3)
    assert len(await store.list_faults(tenant.id)) == 3
    with pytest.raises(NotFound):
        await store.create_fault("no-such-tenant", SPEC, limit=3)


async def test_matches_are_counted_atomically(store) -> None:
    tenant = await make_tenant(store)
    rule = await store.create_fault(tenant.id, SPEC, limit=10)
    counts = await asyncio.gather(*(store.match_fault(tenant.id, rule.id) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    assert (await store.get_fault(tenant.id, rule.id)).matched == 20


async def test_deleted_rules_are_gone(store) -> None:
    tenant = await make_tenant(store)
    rule = await store.create_fault(tenant.id, SPEC, limit=10)
    await store.delete_fault(tenant.id, rule.id)
    assert await store.list_faults(tenant.id) == []
    with pytest.raises(NotFound):
        await store.delete_fault(tenant.id, rule.id)
    with pytest.raises(NotFound):
        await store.match_fault(tenant.id, rule.id)


async def test_reset_and_deletion_forget_a_tenants_rules(store) -> None:
    tenant = await make_tenant(store)
    await store.create_fault(tenant.id, SPEC, limit=10)
    await store.reset_tenant(tenant.id)
    assert await store.list_faults(tenant.id) == []
    await store.create_fault(tenant.id, SPEC, limit=10)
    await store.delete_tenant(tenant.id)
    assert await store.list_faults(tenant.id) == []
