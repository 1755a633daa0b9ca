"""The store contract for a tenant's bounds, on every backend: a job it cannot afford and
anything past its cap on stored items are refused atomically, storing and spending
nothing; the count of what it stores follows every way things are deleted."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pollable.lifecycle.errors import NotFound
from pollable.store.base import InsufficientCredits, StorageFull, job_size
from tests.store.test_store import T0, make_tenant, unique
from tests.store.test_tenants import a_job

pytestmark = pytest.mark.anyio


async def test_a_job_the_tenant_cannot_afford_stores_and_spends_nothing(store) -> None:
    tenant = await make_tenant(store, credits=50.0)
    job = a_job(unique("job"), credits=50.5, key=unique("idem"))
    with pytest.raises(InsufficientCredits) as refused:
        await store.create_job(tenant.id, job)
    assert (refused.value.needed, refused.value.balance) == (50.5, 50.0)
    after = await store.get_tenant(tenant.id)
    assert (after.credits, after.stored) == (50.0, 0)
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, job.plan.job_id)
    assert job.idempotency is not None
    assert await store.idempotent_job(tenant.id, job.idempotency) is None
    page = await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)
    assert page.total == 0
    # Exactly the balance is affordable, and a job that costs nothing always is.
    record, _ = await store.create_job(tenant.id, a_job(unique("job"), credits=50.0))
    assert record.credits_remaining == 0.0
    await store.create_job(tenant.id, a_job(unique("job"), credits=0.0))
    assert (await store.get_tenant(tenant.id)).credits == 0.0


async def test_concurrent_creates_never_take_the_balance_below_zero(store) -> None:
    tenant = await make_tenant(store, credits=100.0)

    async def create() -> bool:
        try:
            await store.create_job(tenant.id, a_job(unique("job"), credits=30.0))
        except InsufficientCredits:
            return False
        return True

    created = await asyncio.gather(*(create() for _ in range(20)))
    assert created.count(True) == 3
    assert (await store.get_tenant(tenant.id)).credits == pytest.approx(10.0)


async def test_the_cap_on_stored_items_refuses_what_would_pass_it(store) -> None:
    tenant = await make_tenant(store)
    job = a_job(unique("job"))
    size = job_size(job)
    assert size == 4  # the job and its three items
    await store.create_job(tenant.id, job, cap=2 * size)
    assert (await store.get_tenant(tenant.id)).stored == size
    await store.create_job(tenant.id, a_job(unique("job")), cap=2 * size)
    refused = a_job(unique("job"), credits=1.0)
    with pytest.raises(StorageFull) as full:
        await store.create_job(tenant.id, refused, cap=2 * size)
    assert full.value.cap == 2 * size
    after = await store.get_tenant(tenant.id)
    assert (after.stored, after.credits) == (2 * size, 100.0)
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, refused.plan.job_id)
    # Another tenant's count is its own.
    other = await make_tenant(store)
    await store.create_job(other.id, a_job(unique("job")), cap=size)
    assert (await store.get_tenant(other.id)).stored == size


async def test_clocks_keys_and_counters_count_and_are_capped(store) -> None:
    tenant = await make_tenant(store)
    await store.add_key(tenant.id, api="captain", key_hash=unique("h"), label="cap_", cap=3)
    await store.create_clock(tenant.id, now=T0, cap=3)
    assert await store.next_sequence(tenant.id, "snippet:a", cap=3) == 1
    # An existing counter stores nothing new: it goes on at the cap.
    assert await store.next_sequence(tenant.id, "snippet:a", cap=3) == 2
    assert (await store.get_tenant(tenant.id)).stored == 3
    with pytest.raises(StorageFull):
        await store.next_sequence(tenant.id, "snippet:b", cap=3)
    with pytest.raises(StorageFull):
        await store.create_clock(tenant.id, now=T0, cap=3)
    with pytest.raises(StorageFull):
        await store.add_key(tenant.id, api="captain", key_hash=unique("h"), label="c", cap=3)
    assert (await store.get_tenant(tenant.id)).stored == 3
    assert len(await store.list_clocks(tenant.id, limit=10)) == 1
    assert len(await store.list_keys(tenant.id)) == 1
    assert await store.next_sequence(tenant.id, "snippet:b") == 1  # no cap: counted anyway
    assert (await store.get_tenant(tenant.id)).stored == 4


async def test_deleting_a_clock_takes_its_jobs_off_the_count(store) -> None:
    tenant = await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    kept = a_job(unique("job"))
    await store.create_job(tenant.id, kept)
    bound = a_job(unique("job"), key=unique("idem"))
    await store.create_job(tenant.id, replace(bound, clock_id=clock.id))
    await store.create_job(tenant.id, replace(a_job(unique("job")), clock_id=clock.id))
    assert (await store.get_tenant(tenant.id)).stored == 1 + 3 * job_size(kept)
    await store.delete_clock(tenant.id, clock.id)
    assert (await store.get_tenant(tenant.id)).stored == job_size(kept)


async def test_reset_restores_the_balance_and_counts_only_the_keys(store) -> None:
    tenant = await make_tenant(store, credits=100.0)
    await store.add_key(tenant.id, api="crosmos", key_hash=unique("h"), label="csk_")
    await store.create_clock(tenant.id, now=T0)
    await store.create_job(tenant.id, a_job(unique("job"), credits=60.0))
    await store.next_sequence(tenant.id, "snippet:docs")
    with pytest.raises(InsufficientCredits):
        await store.create_job(tenant.id, a_job(unique("job"), credits=60.0))
    await store.reset_tenant(tenant.id)
    after = await store.get_tenant(tenant.id)
    assert (after.credits, after.stored) == (100.0, 1)
    await store.create_job(tenant.id, a_job(unique("job"), credits=60.0))
    # Setting the balance is what a reset restores from then on.
    await store.set_credits(tenant.id, 5.0)
    with pytest.raises(InsufficientCredits):
        await store.create_job(tenant.id, a_job(unique("job"), credits=6.0))
    await store.reset_tenant(tenant.id)
    assert (await store.get_tenant(tenant.id)).credits == 5.0


async def test_a_missing_tenant_is_not_found_not_full(store) -> None:
    with pytest.raises(NotFound):
        await store.create_job(unique("nobody"), a_job(unique("job"), credits=1.0), cap=1)
    with pytest.raises(NotFound):
        await store.create_clock(unique("nobody"), now=T0, cap=1)
