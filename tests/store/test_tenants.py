"""The store contract for tenants and keys, on every backend: listing, credits, reset,
deletion, and keys with ids, bindings and revocation. Each test takes only ``store``."""

from __future__ import annotations

import asyncio

import pytest

from pollable.lifecycle.errors import Conflict, NotFound
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import Idempotency, NewJob
from tests.store.test_store import T0, make_tenant, unique

pytestmark = pytest.mark.anyio


def a_job(job_id: str, credits: float = 0.0, key: str | None = None) -> NewJob:
    plan, items = plan_job(
        job_id=job_id, created_at=T0, scenario=CATALOGUE["happy"],
        work=[Work(f"s3://b/{i}.pdf") for i in range(3)], seed="s",
    )  # fmt: skip
    idempotency = Idempotency(key, "fp") if key else None
    return NewJob(api="captain", kind="index", plan=plan, items=items, collection="docs",
                  credits=credits, idempotency=idempotency)  # fmt: skip


async def test_tenants_are_listed_by_id_in_pages(store) -> None:
    made = {(await make_tenant(store)).id for _ in range(5)}
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_tenants(after=after, limit=2)
        seen += [t.id for t in page]
        if len(page) < 2:
            break
        after = page[-1].id
    assert seen == sorted(seen) and made <= set(seen)


async def test_a_tenant_keeps_when_it_was_made_and_its_initial_credits(store) -> None:
    tenant = await make_tenant(store, credits=42.0, created_at=T0)
    found = await store.get_tenant(tenant.id)
    assert found.created_at == T0 and found.credits == found.initial_credits == 42.0
    updated = await store.set_credits(tenant.id, 7.0)
    assert updated.credits == updated.initial_credits == 7.0
    with pytest.raises(NotFound):
        await store.set_credits(unique("nobody"), 1.0)


async def test_reset_forgets_jobs_and_history_but_keeps_keys(store) -> None:
    tenant = await make_tenant(store, credits=100.0)
    other = await make_tenant(store, credits=100.0)
    key = await store.add_key(tenant.id, api="crosmos", key_hash=unique("h"), label="csk_abcd")
    await store.create_job(tenant.id, a_job(unique("job"), credits=30.0, key="k1"))
    await store.create_job(other.id, a_job(unique("job"), credits=30.0))
    first = await store.next_sequence(tenant.id, "snippet:docs")
    await store.reset_tenant(tenant.id)
    assert (await store.get_tenant(tenant.id)).credits == 100.0
    page = await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)
    assert page.total == 0
    assert await store.indexed_keys(tenant.id, "docs", ["s3://b/0.pdf"], at=T0 + 1e6) == set()
    assert await store.next_sequence(tenant.id, "snippet:docs") == first
    assert await store.idempotent_job(tenant.id, Idempotency("k1", "other")) is None
    assert [k.id for k in await store.list_keys(tenant.id)] == [key.id]
    # The other tenant is untouched.
    assert (await store.list_jobs(other.id, api="captain", now=T0, limit=10)).total == 1
    assert (await store.get_tenant(other.id)).credits == 70.0
    with pytest.raises(NotFound):
        await store.reset_tenant(unique("nobody"))


async def test_delete_removes_the_tenant_its_jobs_and_its_keys(store) -> None:
    tenant = await make_tenant(store)
    digest = unique("h")
    await store.add_key(tenant.id, api="crosmos", key_hash=digest, label="csk_abcd")
    job = a_job(unique("job"))
    await store.create_job(tenant.id, job)
    await store.delete_tenant(tenant.id)
    with pytest.raises(NotFound):
        await store.get_tenant(tenant.id)
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, job.plan.job_id)
    assert await store.key_for("crosmos", digest) is None
    with pytest.raises(NotFound):
        await store.delete_tenant(tenant.id)
    # The name is free again.
    await store.create_tenant(tenant.name, organization_id="o", credits=1.0)


async def test_keys_have_ids_bindings_and_are_revoked_once(store) -> None:
    tenant = await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    digest = unique("h")
    key = await store.add_key(
        tenant.id, api="captain", key_hash=digest, label="cap_dev_abcd",
        environment="dev", clock_id=clock.id, created_at=T0,
    )  # fmt: skip
    assert key.id.startswith("key_") and key.clock_id == clock.id and key.revoked_at is None
    found = await store.key_for("captain", digest)
    assert found is not None and found[0].id == tenant.id and found[1] == key
    assert await store.key_for("crosmos", digest) is None
    with pytest.raises(Conflict):
        await store.add_key(tenant.id, api="captain", key_hash=digest, label="x")
    revoked = await store.revoke_key(tenant.id, key.id, at=T0 + 5)
    assert revoked.revoked_at == T0 + 5
    assert await store.key_for("captain", digest) is None
    assert await store.tenant_for_key("captain", digest) is None
    again = await store.revoke_key(tenant.id, key.id, at=T0 + 9)
    assert again.revoked_at == T0 + 5
    assert [k.revoked_at for k in await store.list_keys(tenant.id)] == [T0 + 5]
    other = await make_tenant(store)
    with pytest.raises(NotFound):
        await store.revoke_key(other.id, key.id, at=T0)
    with pytest.raises(NotFound):
        await store.add_key(unique("nobody"), api="captain", key_hash=unique("h"), label="x")


async def test_concurrent_revocations_keep_the_first_instant(store) -> None:
    tenant = await make_tenant(store)
    key = await store.add_key(tenant.id, api="crosmos", key_hash=unique("h"), label="csk_abcd")
    results = await asyncio.gather(
        *(store.revoke_key(tenant.id, key.id, at=T0 + i) for i in range(10))
    )
    assert len({r.revoked_at for r in results}) == 1
