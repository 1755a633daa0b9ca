"""The contract every store backend keeps (``store/base.py``). Each test takes only ``store``.

No test relies on a clean store: tenants, names and keys are unique per test, so the suite
can run against a long-lived PostgreSQL database as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Sequence

import pytest

from pollable.lifecycle.engine import SYSTEM_ACTOR, completes_at, state_at
from pollable.lifecycle.errors import Conflict, NotFound, PollableError
from pollable.lifecycle.model import Event, EventKind, Item, Outcome, Stage, Status, Tally
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import (
    ClockWouldGoBack,
    Idempotency,
    IdempotencyMismatch,
    JobRecord,
    LoggedMessage,
    NewJob,
    RequestEntry,
    RequestFilter,
    Tenant,
)

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def make_tenant(store, credits: float = 100.0, **options) -> Tenant:
    return await store.create_tenant(
        unique("tenant"), organization_id=unique("org"), credits=credits, **options
    )


def varied_work(n: int) -> list[Work]:
    """Items with every outcome, units, error fields and extras."""
    work = []
    for i in range(n):
        key = f"s3://bucket/doc-{i:05d}.pdf"
        if i % 5 == 3:
            work.append(Work(key, i, Outcome.FAILED, Stage.TAGGING, "tagging_failed", "no tags"))
        elif i % 7 == 4:
            work.append(Work(key, 0, Outcome.SKIPPED, None, "unsupported_file_type", "no"))
        else:
            work.append(Work(key, i % 9 + 1, extra={"pages": i % 9 + 1} if i % 2 else {}))
    return work


def new_job(
    *,
    scenario: str = "happy",
    work: Sequence[Work] | None = None,
    n: int = 5,
    created_at: float = T0,
    api: str = "captain",
    kind: str = "index",
    collection: str | None = None,
    credits: float = 0.0,
    idempotency: Idempotency | None = None,
    job_id: str | None = None,
    attrs: dict | None = None,
    clock_id: str | None = None,
) -> NewJob:
    job_id = job_id or unique("job")
    plan, items = plan_job(
        job_id=job_id,
        created_at=created_at,
        scenario=CATALOGUE[scenario],
        work=varied_work(n) if work is None else work,
        seed=job_id,
    )
    return NewJob(
        api=api,
        kind=kind,
        plan=plan,
        items=items,
        collection=collection,
        attrs=attrs or {},
        credits=credits,
        idempotency=idempotency,
        clock_id=clock_id,
    )


async def create(store, tenant: Tenant, **options) -> tuple[JobRecord, NewJob]:
    job = new_job(**options)
    record, created = await store.create_job(tenant.id, job)
    assert created is True
    return record, job


async def all_items(store, tenant_id: str, job_id: str, page: int) -> list[Item]:
    collected: list[Item] = []
    after = -1
    for _ in range(10_000):  # bounded, so a backend that repeats items fails, not hangs
        batch = await store.items(tenant_id, job_id, after=after, limit=page)
        assert len(batch) <= page
        if not batch:
            return collected
        assert all(item.ordinal > after for item in batch), "a page repeated earlier items"
        collected.extend(batch)
        after = batch[-1].ordinal
    raise AssertionError("paging never ended")


def cancel(at: float, actor: str = "user-ada") -> Event:
    return Event(EventKind.CANCEL, at, actor)


# -- tenants ------------------------------------------------------------------------------


async def test_create_and_find_tenant(store):
    name = unique("acme")
    tenant = await store.create_tenant(
        name, organization_id="org-1", credits=250.0, default_scenario="slow"
    )
    assert (tenant.name, tenant.organization_id, tenant.credits, tenant.default_scenario) == (
        name, "org-1", 250.0, "slow",
    )  # fmt: skip
    assert await store.find_tenant(name) == tenant
    assert await store.get_tenant(tenant.id) == tenant
    other = await make_tenant(store)
    assert other.id != tenant.id


async def test_tenant_name_conflict(store):
    tenant = await make_tenant(store)
    with pytest.raises(Conflict):
        await store.create_tenant(tenant.name, organization_id="org-2", credits=1.0)
    assert await store.get_tenant(tenant.id) == tenant
    assert issubclass(Conflict, PollableError)


async def test_unknown_tenants(store):
    assert await store.find_tenant(unique("nobody")) is None
    with pytest.raises(NotFound):
        await store.get_tenant(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        await store.set_default_scenario(str(uuid.uuid4()), "slow")


async def test_count_tenants(store):
    before = await store.count_tenants()
    await make_tenant(store)
    await make_tenant(store)
    assert await store.count_tenants() == before + 2


async def test_set_and_clear_default_scenario(store):
    tenant = await make_tenant(store)
    assert tenant.default_scenario is None
    updated = await store.set_default_scenario(tenant.id, "partial")
    assert updated.default_scenario == "partial"
    assert (await store.get_tenant(tenant.id)).default_scenario == "partial"
    assert (await store.find_tenant(tenant.name)).default_scenario == "partial"
    cleared = await store.set_default_scenario(tenant.id, None)
    assert cleared.default_scenario is None
    assert (await store.get_tenant(tenant.id)).default_scenario is None


# -- keys ---------------------------------------------------------------------------------


async def test_keys_authenticate_their_tenant_for_their_api_only(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    key_hash = unique("sha256")
    await store.add_key(acme.id, api="crosmos", key_hash=key_hash, label="pk_live_ab")
    assert await store.tenant_for_key("crosmos", key_hash) == acme
    assert await store.tenant_for_key("captain", key_hash) is None
    assert await store.tenant_for_key("crosmos", unique("sha256")) is None

    # The same hash may exist for another API and tenant; each resolves on its own.
    await store.add_key(globex.id, api="captain", key_hash=key_hash, label="cap_ab")
    assert await store.tenant_for_key("captain", key_hash) == globex
    assert await store.tenant_for_key("crosmos", key_hash) == acme


async def test_a_tenant_may_hold_several_keys(store):
    tenant = await make_tenant(store)
    hashes = [unique("sha256") for _ in range(3)]
    for key_hash in hashes:
        await store.add_key(tenant.id, api="captain", key_hash=key_hash, label=key_hash[:6])
    for key_hash in hashes:
        assert await store.tenant_for_key("captain", key_hash) == tenant


async def test_a_key_is_stored_once(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    key_hash = unique("sha256")
    await store.add_key(acme.id, api="crosmos", key_hash=key_hash, label="csk_ab")
    for owner in (acme, globex):
        with pytest.raises(Conflict):
            await store.add_key(owner.id, api="crosmos", key_hash=key_hash, label="csk_ab")
    assert await store.tenant_for_key("crosmos", key_hash) == acme
    with pytest.raises(NotFound):
        await store.add_key(str(uuid.uuid4()), api="crosmos", key_hash=unique("sha"), label="x")


async def test_key_lookup_shows_the_current_tenant(store):
    tenant = await make_tenant(store, credits=10.0)
    key_hash = unique("sha256")
    await store.add_key(tenant.id, api="captain", key_hash=key_hash, label="cap")
    await create(store, tenant, credits=4.0)
    await store.set_default_scenario(tenant.id, "slow")
    found = await store.tenant_for_key("captain", key_hash)
    assert (found.credits, found.default_scenario) == (6.0, "slow")


# -- jobs ---------------------------------------------------------------------------------


async def test_create_and_get_job(store):
    tenant = await make_tenant(store)
    attrs = {"space_id": "space-1", "processing": {"mode": "fast", "langs": ["en", "fr"]}}
    record, job = await create(
        store, tenant, api="crosmos", kind="source", collection="docs", attrs=attrs, n=12
    )
    assert record.tenant_id == tenant.id
    assert (record.api, record.kind, record.collection) == ("crosmos", "source", "docs")
    assert record.attrs == attrs
    assert record.plan == job.plan
    assert record.job_id == job.plan.job_id
    assert record.events == ()
    assert await store.get_job(tenant.id, record.job_id) == record


async def test_plans_survive_storage_exactly(store):
    tenant = await make_tenant(store)
    for scenario in sorted(CATALOGUE):
        record, job = await create(
            store, tenant, scenario=scenario, created_at=T0 + 0.123456789, n=3
        )
        assert (await store.get_job(tenant.id, record.job_id)).plan == job.plan, scenario


async def test_unknown_job_is_not_found(store):
    tenant = await make_tenant(store)
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, unique("job"))
    with pytest.raises(NotFound):
        await store.append_event(tenant.id, unique("job"), cancel(T0))


async def test_another_tenants_job_is_not_found(store):
    owner, intruder = await make_tenant(store), await make_tenant(store, credits=50.0)
    record, _ = await create(store, owner, n=6)
    with pytest.raises(NotFound):
        await store.get_job(intruder.id, record.job_id)
    with pytest.raises(NotFound):
        await store.append_event(intruder.id, record.job_id, cancel(T0 + 1), refund=5.0)
    # Nothing leaks and nothing changed.
    with contextlib.suppress(NotFound):
        assert await store.items(intruder.id, record.job_id, limit=10) == []
    with contextlib.suppress(NotFound):
        assert await store.tally(intruder.id, record.job_id, 3) == Tally()
    assert (await store.get_job(owner.id, record.job_id)).events == ()
    assert (await store.get_tenant(intruder.id)).credits == 50.0
    page = await store.list_jobs(intruder.id, api="captain", now=T0, limit=10)
    assert (page.jobs, page.total) == ([], 0)


async def test_job_ids_are_scoped_by_tenant(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    job_id = unique("job")
    mine, _ = await create(store, acme, job_id=job_id, n=2, kind="mine")
    theirs, _ = await create(store, globex, job_id=job_id, n=3, kind="theirs")
    assert (await store.get_job(acme.id, job_id)).kind == "mine"
    assert (await store.get_job(globex.id, job_id)).kind == "theirs"
    assert len(await store.items(acme.id, job_id, limit=10)) == 2
    assert len(await store.items(globex.id, job_id, limit=10)) == 3
    assert mine != theirs


async def test_duplicate_job_id_is_a_conflict(store):
    tenant = await make_tenant(store, credits=10.0)
    record, _ = await create(store, tenant, n=2, credits=1.0)
    with pytest.raises(Conflict):
        await store.create_job(tenant.id, new_job(job_id=record.job_id, credits=1.0))
    assert (await store.get_tenant(tenant.id)).credits == 9.0, "a failed create reserved credits"
    assert await store.get_job(tenant.id, record.job_id) == record


async def test_create_job_for_unknown_tenant(store):
    with pytest.raises(NotFound):
        await store.create_job(str(uuid.uuid4()), new_job())


@pytest.mark.parametrize("page", [1, 5, 7, 23, 100])
async def test_items_page_by_after_and_limit(store, page):
    tenant = await make_tenant(store)
    record, job = await create(store, tenant, n=23)
    assert await all_items(store, tenant.id, record.job_id, page) == list(job.items)


async def test_items_window(store):
    tenant = await make_tenant(store)
    record, job = await create(store, tenant, n=23)
    items = list(job.items)
    job_id = record.job_id
    assert await store.items(tenant.id, job_id, limit=4) == items[:4]
    assert await store.items(tenant.id, job_id, after=9, limit=3) == items[10:13]
    assert await store.items(tenant.id, job_id, after=20, limit=50) == items[21:]
    assert await store.items(tenant.id, job_id, after=22, limit=50) == []
    assert await store.items(tenant.id, job_id, after=1000, limit=50) == []
    assert await store.items(tenant.id, job_id, after=3, limit=0) == []


async def test_items_keep_every_field(store):
    tenant = await make_tenant(store)
    work = [
        Work("a.pdf", 3, extra={"pages": 3, "tokens": 900}),
        Work("b.pdf", 4, Outcome.FAILED, Stage.CHUNKING, "chunking_failed", "bad layout"),
        Work("c.zip", 0, Outcome.SKIPPED, None, "unsupported_file_type", "no zips"),
    ]
    record, job = await create(store, tenant, work=work)
    stored = await store.items(tenant.id, record.job_id, limit=10)
    assert stored == list(job.items)
    assert stored[1].fail_stage is Stage.CHUNKING
    assert [item.outcome for item in stored] == [Outcome.COMPLETED, Outcome.FAILED,
                                                 Outcome.SKIPPED]  # fmt: skip
    assert dict(stored[0].extra) == {"pages": 3, "tokens": 900}
    assert dict(stored[2].extra) == {}


async def test_tally_of_every_prefix(store):
    tenant = await make_tenant(store)
    record, job = await create(store, tenant, scenario="partial", n=37)
    items = list(job.items)
    for k in range(len(items) + 1):
        assert await store.tally(tenant.id, record.job_id, k) == Tally.of(items[:k]), k
    assert await store.tally(tenant.id, record.job_id, len(items)) == job.plan.totals
    # Past the end, the first k items are all of them.
    assert await store.tally(tenant.id, record.job_id, len(items) + 5) == job.plan.totals


async def test_empty_job(store):
    tenant = await make_tenant(store)
    record, _ = await create(store, tenant, work=[])
    assert await store.items(tenant.id, record.job_id, limit=10) == []
    assert await store.tally(tenant.id, record.job_id, 0) == Tally()


async def test_serial_ids_are_unique_within_a_tenant(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    serials: list[int] = []
    for n in (4, 0, 7, 1, 12):
        record, _ = await create(store, acme, n=n)
        serials.extend(record.serial(i) for i in range(n))
        assert (await store.get_job(acme.id, record.job_id)).serial_base == record.serial_base
    assert len(set(serials)) == len(serials) == 24
    assert min(serials) >= 1
    # Another tenant's counter is its own (and does not disturb acme's).
    other, _ = await create(store, globex, n=3)
    assert other.serial(0) >= 1
    record, _ = await create(store, acme, n=2)
    assert not {record.serial(0), record.serial(1)} & set(serials)


# -- events and credits -------------------------------------------------------------------


async def test_append_cancel_event(store):
    tenant = await make_tenant(store)
    record, job = await create(store, tenant, n=4)
    event = cancel(T0 + 0.123456789, "user-ada")
    updated, applied = await store.append_event(tenant.id, record.job_id, event)
    assert applied is True
    assert updated.events == (event,)
    assert updated.plan == job.plan and updated.serial_base == record.serial_base
    assert await store.get_job(tenant.id, record.job_id) == updated
    state = state_at(updated.plan, updated.events, T0 + 1000)
    assert (state.status, state.cancelled_at, state.cancelled_by) == (
        Status.CANCELLED, event.at, "user-ada",
    )  # fmt: skip


async def test_only_the_first_cancel_is_kept(store):
    tenant = await make_tenant(store)
    record, _ = await create(store, tenant)
    first = cancel(T0 + 5, "user-bob")
    assert await store.append_event(tenant.id, record.job_id, first) == (
        await store.get_job(tenant.id, record.job_id),
        True,
    )
    # Later or earlier (a clock a little behind), a second cancel changes nothing.
    for event in (cancel(T0 + 2, "user-ada"), cancel(T0 + 9, "ops"), cancel(T0 + 5)):
        updated, applied = await store.append_event(tenant.id, record.job_id, event)
        assert applied is False
        assert updated.events == (first,)
    assert (await store.get_job(tenant.id, record.job_id)).events == (first,)


async def test_a_cancel_after_the_job_ended_is_not_kept(store):
    tenant = await make_tenant(store)
    record, _ = await create(store, tenant)
    end = state_at(record.plan, (), T0 + 1e6).ended_at
    assert end is not None
    for at in (end, end + 1):
        updated, applied = await store.append_event(tenant.id, record.job_id, cancel(at))
        assert (applied, updated) == (False, record)


async def test_credits_are_reserved_when_a_job_is_created(store):
    tenant = await make_tenant(store, credits=100.0)
    first, _ = await create(store, tenant, credits=12.5)
    assert first.credits_remaining == 87.5
    assert (await store.get_tenant(tenant.id)).credits == 87.5
    second, _ = await create(store, tenant, credits=2.5)
    assert second.credits_remaining == 85.0
    assert (await store.get_tenant(tenant.id)).credits == 85.0
    # Each record keeps the balance right after its own reservation.
    assert (await store.get_job(tenant.id, first.job_id)).credits_remaining == 87.5
    free, _ = await create(store, tenant)
    assert free.credits_remaining == 85.0


async def test_cancel_refund_returns_credits(store):
    tenant = await make_tenant(store, credits=100.0)
    record, _ = await create(store, tenant, credits=30.0)
    assert (await store.get_tenant(tenant.id)).credits == 70.0
    await store.append_event(tenant.id, record.job_id, cancel(T0 + 1), refund=30.0)
    assert (await store.get_tenant(tenant.id)).credits == 100.0
    # The snapshot on the record does not move.
    assert (await store.get_job(tenant.id, record.job_id)).credits_remaining == 70.0


async def test_event_without_refund_leaves_credits(store):
    tenant = await make_tenant(store, credits=100.0)
    record, _ = await create(store, tenant, credits=30.0)
    await store.append_event(tenant.id, record.job_id, cancel(T0 + 1))
    assert (await store.get_tenant(tenant.id)).credits == 70.0


async def test_refund_only_when_the_event_changes_how_the_job_ends(store):
    tenant = await make_tenant(store, credits=100.0)
    record, _ = await create(store, tenant, credits=30.0)
    end = state_at(record.plan, (), T0 + 1e6).ended_at
    job_id = record.job_id

    async def credits() -> float:
        return (await store.get_tenant(tenant.id)).credits

    # After the job has ended, a cancel changes nothing: no refund.
    await store.append_event(tenant.id, job_id, cancel(end + 1), refund=30.0)
    assert await credits() == 70.0
    # A cancel before the end does change it.
    await store.append_event(tenant.id, job_id, cancel(T0 + 2), refund=30.0)
    assert await credits() == 100.0
    # A second cancel, later or earlier, changes nothing and refunds nothing.
    await store.append_event(tenant.id, job_id, cancel(T0 + 3), refund=30.0)
    assert await credits() == 100.0
    updated, applied = await store.append_event(tenant.id, job_id, cancel(T0 + 1), refund=5.0)
    assert applied is False and await credits() == 100.0
    assert updated.events == (cancel(T0 + 2),)


async def test_refund_for_a_job_the_system_cancels_anyway(store):
    tenant = await make_tenant(store, credits=10.0)
    record, _ = await create(store, tenant, scenario="cancelled", credits=4.0)
    system_end = record.plan.created_at + record.plan.cancel_after
    await store.append_event(tenant.id, record.job_id, cancel(system_end + 1), refund=4.0)
    assert (await store.get_tenant(tenant.id)).credits == 6.0
    await store.append_event(tenant.id, record.job_id, cancel(system_end - 0.5), refund=4.0)
    assert (await store.get_tenant(tenant.id)).credits == 10.0


# -- idempotency --------------------------------------------------------------------------


async def test_idempotent_replay_returns_the_first_job(store):
    tenant = await make_tenant(store, credits=100.0)
    key = Idempotency(unique("idem"), "fingerprint-1")
    first, _ = await create(store, tenant, idempotency=key, credits=10.0, n=3)
    replay = new_job(idempotency=key, credits=10.0, n=5)
    record, created = await store.create_job(tenant.id, replay)
    assert created is False
    assert record == first
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, replay.plan.job_id)
    assert (await store.get_tenant(tenant.id)).credits == 90.0
    page = await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)
    assert [job.job_id for job in page.jobs] == [first.job_id] and page.total == 1


async def test_list_jobs_of_every_api_and_of_one_clock(store):
    tenant = await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    old, _ = await create(store, tenant, api="crosmos", kind="sources", created_at=T0)
    new, _ = await create(store, tenant, created_at=T0 + 1, clock_id=clock.id)
    every = await store.list_jobs(tenant.id, api=None, now=T0 + 2, limit=10)
    assert [job.job_id for job in every.jobs] == [new.job_id, old.job_id] and every.total == 2
    on_clock = await store.list_jobs(tenant.id, api=None, now=T0, clock_id=clock.id, limit=10)
    assert [job.job_id for job in on_clock.jobs] == [new.job_id] and on_clock.total == 1
    crosmos = await store.list_jobs(tenant.id, api="crosmos", now=T0, clock_id=clock.id, limit=10)
    assert crosmos.jobs == [] and crosmos.total == 0
    second = await store.list_jobs(tenant.id, api=None, now=T0, limit=1, offset=1)
    assert [job.job_id for job in second.jobs] == [old.job_id]


async def test_idempotent_replay_shows_the_job_as_it_is_now(store):
    tenant = await make_tenant(store)
    key = Idempotency(unique("idem"), "fingerprint-1")
    first, _ = await create(store, tenant, idempotency=key)
    cancelled, _ = await store.append_event(tenant.id, first.job_id, cancel(T0 + 1))
    record, created = await store.create_job(tenant.id, new_job(idempotency=key))
    assert created is False
    assert record == cancelled


async def test_idempotency_key_with_another_body_is_a_mismatch(store):
    tenant = await make_tenant(store, credits=100.0)
    key = unique("idem")
    first, _ = await create(store, tenant, idempotency=Idempotency(key, "fp-1"), credits=10.0)
    other = new_job(idempotency=Idempotency(key, "fp-2"), credits=10.0)
    with pytest.raises(IdempotencyMismatch) as caught:
        await store.create_job(tenant.id, other)
    assert isinstance(caught.value, Conflict)
    with pytest.raises(NotFound):
        await store.get_job(tenant.id, other.plan.job_id)
    assert (await store.get_tenant(tenant.id)).credits == 90.0
    assert (await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)).total == 1
    again = new_job(idempotency=Idempotency(key, "fp-1"))
    assert await store.create_job(tenant.id, again) == (first, False)


async def test_idempotent_job_finds_the_first_job_without_writing(store):
    tenant = await make_tenant(store, credits=100.0)
    key = Idempotency(unique("idem"), "fp-1")
    assert await store.idempotent_job(tenant.id, key) is None
    assert await store.idempotent_job(tenant.id, key) is None, "asking reserved the key"
    first, _ = await create(store, tenant, idempotency=key, credits=10.0)
    assert await store.idempotent_job(tenant.id, key) == first
    cancelled, _ = await store.append_event(tenant.id, first.job_id, cancel(T0 + 1))
    assert await store.idempotent_job(tenant.id, key) == cancelled
    with pytest.raises(IdempotencyMismatch):
        await store.idempotent_job(tenant.id, Idempotency(key.key, "fp-2"))
    other = await make_tenant(store)
    assert await store.idempotent_job(other.id, key) is None
    assert (await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)).total == 1


async def test_idempotency_keys_are_per_tenant(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    key = unique("idem")
    mine, _ = await create(store, acme, idempotency=Idempotency(key, "fp-acme"))
    theirs, created = await store.create_job(
        globex.id, new_job(idempotency=Idempotency(key, "fp-globex"))
    )
    assert created is True
    assert theirs.job_id != mine.job_id
    assert (await store.get_job(globex.id, theirs.job_id)).tenant_id == globex.id


async def test_jobs_without_idempotency_are_always_created(store):
    tenant = await make_tenant(store)
    await create(store, tenant)
    await create(store, tenant)
    assert (await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)).total == 2


# -- concurrency within one store ---------------------------------------------------------


async def test_concurrent_writes_lose_and_duplicate_nothing(store):
    tenant = await make_tenant(store, credits=100.0)
    jobs = [new_job(n=3, credits=1.0) for _ in range(25)]
    results = await asyncio.gather(*(store.create_job(tenant.id, job) for job in jobs))
    assert all(created for _, created in results)
    sequences = await asyncio.gather(*(store.next_sequence(tenant.id, "n") for _ in range(25)))
    assert sorted(sequences) == list(range(1, 26))
    key = Idempotency(unique("idem"), "same")
    racers = [new_job(idempotency=key) for _ in range(5)]
    replays = await asyncio.gather(*(store.create_job(tenant.id, job) for job in racers))
    assert len({record.job_id for record, _ in replays}) == 1
    assert sum(created for _, created in replays) == 1

    page = await store.list_jobs(tenant.id, api="captain", now=T0, limit=100)
    assert page.total == 26
    assert {job.plan.job_id for job in jobs} <= {record.job_id for record in page.jobs}
    serials = [record.serial(i) for record, _ in results for i in range(3)]
    assert len(set(serials)) == 75
    assert (await store.get_tenant(tenant.id)).credits == 75.0
    remaining = sorted(record.credits_remaining for record, _ in results)
    assert remaining == [float(c) for c in range(75, 100)]


async def test_concurrent_cancels_apply_once_and_refund_once(store):
    tenant = await make_tenant(store, credits=100.0)
    record, _ = await create(store, tenant, credits=30.0, n=8)
    # Racing requests stamp slightly different instants, in no particular order.
    instants = [T0 + 2 + (i * 7 % 20) / 100 for i in range(20)]
    results = await asyncio.gather(
        *(
            store.append_event(tenant.id, record.job_id, cancel(at, f"user-{i}"), refund=30.0)
            for i, at in enumerate(instants)
        )
    )
    winners = [updated.events[0] for updated, applied in results if applied]
    assert len(winners) == 1, "exactly one cancel changes the job"
    stored = await store.get_job(tenant.id, record.job_id)
    assert stored.events == tuple(winners)
    assert all(updated.events == stored.events for updated, _ in results)
    assert (await store.get_tenant(tenant.id)).credits == 100.0
    ended = state_at(stored.plan, stored.events, T0 + 1e6)
    assert (ended.status, ended.cancelled_at) == (Status.CANCELLED, winners[0].at)


# -- listing ------------------------------------------------------------------------------


async def test_list_jobs_newest_first_with_paging(store):
    tenant = await make_tenant(store)
    created = [(await create(store, tenant, created_at=T0 + i, n=1))[0] for i in (3, 1, 4, 0, 2)]
    # Equal creation times: the later-created job is the newer one.
    tied = [(await create(store, tenant, created_at=T0 + 2, n=1))[0] for _ in range(2)]
    expected = [created[2].job_id, created[0].job_id, tied[1].job_id, tied[0].job_id,
                created[4].job_id, created[1].job_id, created[3].job_id]  # fmt: skip
    page = await store.list_jobs(tenant.id, api="captain", now=T0, limit=100)
    assert [job.job_id for job in page.jobs] == expected
    assert page.total == 7
    for limit in (1, 2, 3):
        for offset in range(0, 8):
            window = await store.list_jobs(
                tenant.id, api="captain", now=T0, limit=limit, offset=offset
            )
            assert [job.job_id for job in window.jobs] == expected[offset : offset + limit]
            assert window.total == 7


async def test_list_jobs_returns_full_records(store):
    tenant = await make_tenant(store)
    record, _ = await create(store, tenant, collection="c", attrs={"a": 1}, credits=1.0)
    updated, _ = await store.append_event(tenant.id, record.job_id, cancel(T0 + 1))
    page = await store.list_jobs(tenant.id, api="captain", now=T0 + 5, limit=10)
    assert page.jobs == [updated]


async def test_list_jobs_filters_by_api_and_collection(store):
    tenant, other = await make_tenant(store), await make_tenant(store)
    captain_a = (await create(store, tenant, collection="alpha", created_at=T0 + 1))[0]
    captain_b = (await create(store, tenant, collection="beta", created_at=T0 + 2))[0]
    captain_none = (await create(store, tenant, created_at=T0 + 3))[0]
    crosmos = (await create(store, tenant, api="crosmos", kind="source", collection="alpha"))[0]
    await create(store, other, collection="alpha")

    async def ids(**filters):
        page = await store.list_jobs(tenant.id, now=T0, limit=50, **filters)
        assert page.total == len(page.jobs)
        return [job.job_id for job in page.jobs]

    assert await ids(api="captain") == [
        captain_none.job_id, captain_b.job_id, captain_a.job_id,
    ]  # fmt: skip
    assert await ids(api="captain", collection="alpha") == [captain_a.job_id]
    assert await ids(api="captain", collection="gamma") == []
    assert await ids(api="crosmos") == [crosmos.job_id]
    assert await ids(api="crosmos", collection="beta") == []
    assert await ids(api="other") == []


async def test_list_jobs_status_filter_agrees_with_state_at(store):
    tenant = await make_tenant(store)
    specs: list[tuple[str, float, float | None]] = [
        ("happy", 0, None),
        ("partial", 1, None),
        ("failed", 2, None),
        ("cancelled", 3, None),
        ("stuck_pending", 4, None),
        ("happy", 5, 7.0),  # cancelled while running
        ("happy", 6, 6.2),  # cancelled while queued
        ("stuck_pending", 7, 50.0),  # cancelled while stuck
        ("happy", 8, 10_000.0),  # "cancelled" long after it completed: no effect
        ("slow", 9, None),
        ("instant", 10, None),
        ("fails_at_finalizing", 11, None),
    ]
    records = []
    for scenario, offset, cancel_offset in specs:
        # Three plain items: "happy" completes without failures, "partial" with some.
        record, _ = await create(store, tenant, scenario=scenario, created_at=T0 + offset, n=3)
        if cancel_offset is not None:
            record, _ = await store.append_event(
                tenant.id, record.job_id, cancel(T0 + cancel_offset)
            )
        records.append(record)
    newest_first = sorted(records, key=lambda r: r.plan.created_at, reverse=True)

    # A spread of moments, plus every job's exact start and end (where < and <= differ).
    nows = [T0 - 1, T0, T0 + 0.5, T0 + 3, T0 + 6.5, T0 + 8, T0 + 12, T0 + 30, T0 + 100,
            T0 + 400, T0 + 1e6]  # fmt: skip
    for r in records:
        nows.append(r.plan.created_at + r.plan.timing.queue)
        nows.append(state_at(r.plan, r.events, T0 + 1e7).ended_at or T0)
    seen: set[Status] = set()
    for now in sorted(n for n in nows if n != math.inf):
        truth = {r.job_id: state_at(r.plan, r.events, now).status for r in records}
        seen.update(truth.values())
        everything = await store.list_jobs(tenant.id, api="captain", now=now, limit=100)
        assert everything.total == len(records)
        for status in Status:
            page = await store.list_jobs(
                tenant.id, api="captain", now=now, status=status, limit=100
            )
            expected = [r.job_id for r in newest_first if truth[r.job_id] is status]
            assert [job.job_id for job in page.jobs] == expected, (now - T0, status)
            assert page.total == len(expected)
            if len(expected) > 1:
                second = await store.list_jobs(
                    tenant.id, api="captain", now=now, status=status, limit=1, offset=1
                )
                assert [job.job_id for job in second.jobs] == expected[1:2]
                assert second.total == len(expected)
    assert seen == set(Status), "the scenario mix should reach every status"


async def test_list_jobs_status_filter_sees_the_system_cancel(store):
    tenant = await make_tenant(store)
    record, _ = await create(store, tenant, scenario="cancelled", n=6)
    end = record.plan.created_at + record.plan.cancel_after
    state = state_at(record.plan, (), end)
    assert (state.status, state.cancelled_by) == (Status.CANCELLED, SYSTEM_ACTOR)
    for now, status in ((end - 0.01, Status.RUNNING), (end, Status.CANCELLED)):
        page = await store.list_jobs(tenant.id, api="captain", now=now, status=status, limit=5)
        assert [job.job_id for job in page.jobs] == [record.job_id]


# -- indexed keys -------------------------------------------------------------------------


def keyed(*specs: tuple[str, Outcome | None]) -> list[Work]:
    return [Work(key, 1, forced) for key, forced in specs]


async def test_indexed_keys(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    c1 = unique("collection")
    done = keyed(("a", None), ("b", Outcome.FAILED), ("c", Outcome.SKIPPED))
    await create(store, acme, collection=c1, work=done)
    await create(store, acme, collection=c1, scenario="failed", work=keyed(("d", None)))
    cancelled, _ = await create(store, acme, collection=c1, work=keyed(("e", None)))
    await store.append_event(acme.id, cancelled.job_id, cancel(T0 + 0.5))
    await create(store, acme, collection=unique("collection"), work=keyed(("f", None)))
    await create(store, globex, collection=c1, work=keyed(("g", None)))
    await create(store, acme, collection=c1, scenario="cancelled", work=keyed(("h", None)))
    partial_work = keyed(("i", Outcome.COMPLETED), *((f"p{n}", None) for n in range(8)))
    _, job = await create(store, acme, collection=c1, scenario="partial", work=partial_work)
    assert job.plan.totals.failed >= 1
    await create(store, acme, work=keyed(("j", None)))  # no collection
    # A job that has not started yet has indexed nothing, until it does.
    await create(store, acme, collection=c1, created_at=T0 + 1e6, work=keyed(("k", None)))

    asked = [*"abcdefghijk", "zz"]
    later = T0 + 1e5
    assert await store.indexed_keys(acme.id, c1, asked, at=later) == {"a", "i"}
    assert await store.indexed_keys(acme.id, c1, asked, at=T0 + 2e6) == {"a", "i", "k"}
    completed_partial = {item.key for item in job.items if item.outcome is Outcome.COMPLETED}
    found = await store.indexed_keys(acme.id, c1, [item.key for item in job.items], at=later)
    assert found == completed_partial
    assert await store.indexed_keys(globex.id, c1, asked, at=later) == {"g"}
    assert await store.indexed_keys(acme.id, c1, [], at=later) == set()
    assert await store.indexed_keys(acme.id, unique("collection"), asked, at=later) == set()
    assert await store.indexed_keys(acme.id, c1, asked, at=T0) == set()


async def test_a_key_is_indexed_from_the_instant_its_item_completes(store):
    tenant = await make_tenant(store)
    collection = unique("collection")
    keys = [f"s3://bucket/doc-{i}.pdf" for i in range(6)]
    record, job = await create(
        store, tenant, collection=collection, work=keyed(*((k, None) for k in keys))
    )
    done = [completes_at(job.plan, item) for item in job.items]
    assert all(d is not None for d in done) and done == sorted(done)

    async def indexed(at: float) -> set[str]:
        return await store.indexed_keys(tenant.id, collection, keys, at=at)

    for i, moment in enumerate(done):
        assert moment is not None
        assert await indexed(math.nextafter(moment, -math.inf)) == set(keys[:i])
        assert await indexed(moment) == set(keys[: i + 1])
    # Cancelled between its third and fourth file: the job never indexed the others,
    # however long one waits (the cancel itself may come in after a later job asked).
    stop = (done[2] + done[3]) / 2
    await store.append_event(tenant.id, record.job_id, cancel(stop))
    assert await indexed(stop) == set(keys[:3])
    assert await indexed(T0 + 1e9) == set(keys[:3])


async def test_a_failed_job_keeps_what_it_completed_before_failing(store):
    tenant = await make_tenant(store)
    keys = [f"s3://bucket/doc-{i}.pdf" for i in range(8)]
    work = keyed(*((k, None) for k in keys))
    late, early = unique("collection"), unique("collection")
    await create(store, tenant, collection=late, work=work, scenario="fails_at_finalizing")
    assert await store.indexed_keys(tenant.id, late, keys, at=T0 + 1e9) == set(keys)
    _, job = await create(store, tenant, collection=early, work=work, scenario="failed")
    fails = state_at(job.plan, (), T0 + 1e9)
    assert fails.status is Status.FAILED and 0 < fails.settled < len(keys)
    assert await store.indexed_keys(tenant.id, early, keys, at=T0 + 1e9) == set(
        keys[: fails.settled]
    )


async def test_indexed_keys_with_many_keys(store):
    tenant = await make_tenant(store)
    collection = unique("collection")
    keys = [f"s3://bucket/doc-{i:05d}.pdf" for i in range(1_234)]
    await create(store, tenant, collection=collection, work=[Work(key) for key in keys])
    unknown = [f"s3://bucket/other-{i:05d}.pdf" for i in range(600)]
    asked = [key for pair in zip(unknown, keys, strict=False) for key in pair] + keys[600:]
    assert await store.indexed_keys(tenant.id, collection, asked, at=T0 + 1e9) == set(keys)


# -- counters and server-wide values ------------------------------------------------------


async def test_next_sequence_per_tenant_and_name(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    assert [await store.next_sequence(acme.id, "upload") for _ in range(3)] == [1, 2, 3]
    assert await store.next_sequence(acme.id, "conversation") == 1
    assert await store.next_sequence(globex.id, "upload") == 1
    assert await store.next_sequence(acme.id, "upload") == 4


async def test_next_sequence_is_independent_of_item_serials(store):
    tenant = await make_tenant(store)
    await create(store, tenant, n=10)
    assert await store.next_sequence(tenant.id, "item") == 1
    first, _ = await create(store, tenant, n=2)
    assert await store.next_sequence(tenant.id, "item") == 2
    second, _ = await create(store, tenant, n=2)
    assert first.serial_base != second.serial_base


async def test_meta_first_write_wins(store):
    name = unique("meta")
    assert await store.meta(name, "first") == "first"
    assert await store.meta(name, "second") == "first"
    other = unique("meta")
    assert await store.meta(other, "second") == "second"
    assert await store.meta(name, "third") == "first"


# -- test clocks ----------------------------------------------------------------------------


async def test_create_get_and_list_clocks(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    made = [
        await store.create_clock(acme.id, now=T0 + i, name=f"c{i}", created_at=T0 - 1)
        for i in range(5)
    ]
    unnamed = await store.create_clock(acme.id, now=T0)
    assert unnamed.name is None and unnamed.created_at == 0.0
    foreign = await store.create_clock(globex.id, now=T0, name="theirs")
    assert all(clock.id.startswith("clk_") for clock in [*made, foreign])
    for clock in made:
        assert await store.get_clock(acme.id, clock.id) == clock
        assert (clock.tenant_id, clock.created_at) == (acme.id, T0 - 1)
    assert [c.now for c in made] == [T0 + i for i in range(5)]
    everyone = sorted([*made, unnamed], key=lambda clock: clock.id)
    assert await store.list_clocks(acme.id, limit=100) == everyone
    first = await store.list_clocks(acme.id, limit=4)
    rest = await store.list_clocks(acme.id, after=first[-1].id, limit=4)
    assert first + rest == everyone
    with pytest.raises(NotFound):
        await store.get_clock(acme.id, foreign.id)
    with pytest.raises(NotFound):
        await store.get_clock(globex.id, made[0].id)
    assert await store.list_clocks(globex.id, limit=10) == [foreign]
    with pytest.raises(NotFound):
        await store.create_clock(str(uuid.uuid4()), now=T0)


async def test_a_clock_only_moves_forward(store):
    tenant = await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    assert (await store.advance_clock(tenant.id, clock.id, to=T0 + 10)).now == T0 + 10
    assert (await store.advance_clock(tenant.id, clock.id, to=T0 + 10)).now == T0 + 10
    with pytest.raises(ClockWouldGoBack) as refused:
        await store.advance_clock(tenant.id, clock.id, to=T0 + 9.5)
    assert isinstance(refused.value, Conflict) and refused.value.clock.now == T0 + 10
    assert (await store.get_clock(tenant.id, clock.id)).now == T0 + 10
    moved = await store.advance_clock(tenant.id, clock.id, by=2.5)
    assert moved.now == T0 + 12.5 and await store.get_clock(tenant.id, clock.id) == moved
    for wrong in ({}, {"to": T0 + 20, "by": 1.0}, {"by": 0.0}, {"by": -1.0}):
        with pytest.raises(ValueError):
            await store.advance_clock(tenant.id, clock.id, **wrong)
    other = await make_tenant(store)
    for owner, clock_id in ((other.id, clock.id), (tenant.id, "clk_0000000000000000")):
        with pytest.raises(NotFound):
            await store.advance_clock(owner, clock_id, by=1.0)
        with pytest.raises(NotFound):
            await store.advance_clock(owner, clock_id, to=T0 + 100)
    assert (await store.get_clock(tenant.id, clock.id)).now == T0 + 12.5


async def test_concurrent_advances_never_take_a_clock_back(store):
    tenant = await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    targets = [T0 + (i * 37) % 50 for i in range(50)]

    async def advance(to: float) -> float | None:
        try:
            return (await store.advance_clock(tenant.id, clock.id, to=to)).now
        except ClockWouldGoBack as refused:
            assert refused.clock.now > to
            return None

    moved = await asyncio.gather(*(advance(to) for to in targets))
    assert all(now == to for now, to in zip(moved, targets, strict=True) if now is not None)
    assert (await store.get_clock(tenant.id, clock.id)).now == max(targets)
    steps = await asyncio.gather(
        *(store.advance_clock(tenant.id, clock.id, by=1) for _ in range(20))
    )
    assert sorted(step.now for step in steps) == [max(targets) + i for i in range(1, 21)]


async def test_jobs_are_bound_to_a_clock_of_their_tenant(store):
    acme, globex = await make_tenant(store, credits=10.0), await make_tenant(store)
    clock = await store.create_clock(acme.id, now=T0)
    record, _ = await create(store, acme, clock_id=clock.id)
    assert record.clock_id == clock.id
    assert (await store.get_job(acme.id, record.job_id)).clock_id == clock.id
    unbound, _ = await create(store, acme)
    assert (await store.get_job(acme.id, unbound.job_id)).clock_id is None
    listed = await store.list_jobs(acme.id, api="captain", now=T0, limit=10)
    assert {r.job_id: r.clock_id for r in listed.jobs} == {
        record.job_id: clock.id,
        unbound.job_id: None,
    }
    theirs = await store.create_clock(globex.id, now=T0)
    for clock_id in (theirs.id, "clk_0000000000000000"):
        job = new_job(clock_id=clock_id, credits=4.0)
        with pytest.raises(NotFound):
            await store.create_job(acme.id, job)
        with pytest.raises(NotFound):
            await store.get_job(acme.id, job.plan.job_id)
    assert (await store.get_tenant(acme.id)).credits == 10.0


async def test_list_jobs_status_filter_reads_each_jobs_clock(store):
    tenant = await make_tenant(store)
    early = await store.create_clock(tenant.id, now=T0)
    late = await store.create_clock(tenant.id, now=T0)
    records = [
        (await create(store, tenant, created_at=T0, n=3, clock_id=clock_id))[0]
        for clock_id in (early.id, late.id, None, early.id, None)
    ]
    end = state_at(records[0].plan, (), T0 + 1e7).ended_at
    moves = [(None, T0 + 0.5), (late.id, end + 1), (early.id, T0 + 5), (None, end + 10)]
    clocks = {early.id: T0, late.id: T0}
    seen = set()
    for moved, real in [(None, T0), *moves]:
        if moved is not None:
            clocks[moved] = (await store.advance_clock(tenant.id, moved, to=real)).now
            real = T0
        truth = {
            r.job_id: state_at(r.plan, r.events, clocks[r.clock_id] if r.clock_id else real).status
            for r in records
        }
        seen.update(truth.values())
        for status in Status:
            page = await store.list_jobs(
                tenant.id, api="captain", now=real, status=status, limit=10
            )
            expected = {job_id for job_id, truly in truth.items() if truly is status}
            assert {job.job_id for job in page.jobs} == expected, (status, clocks, real)
            assert page.total == len(expected)
    assert {Status.PENDING, Status.RUNNING, Status.COMPLETED} <= seen


async def test_deleting_a_clock_deletes_its_jobs_and_unbinds_its_keys(store):
    tenant = await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    other = await store.create_clock(tenant.id, now=T0)
    key = Idempotency(unique("idem"), "same")
    doomed = [
        (await create(store, tenant, clock_id=clock.id, n=4, idempotency=key))[0],
        (await create(store, tenant, clock_id=clock.id, n=2, collection="docs"))[0],
    ]
    kept = [
        (await create(store, tenant, n=3))[0],
        (await create(store, tenant, clock_id=other.id, n=3, collection="docs"))[0],
    ]
    bound_key = await store.add_key(
        tenant.id, api="captain", key_hash=unique("sha"), label="cap", clock_id=clock.id
    )
    assert bound_key.clock_id == clock.id
    await store.delete_clock(tenant.id, clock.id)
    with pytest.raises(NotFound):
        await store.get_clock(tenant.id, clock.id)
    for record in doomed:
        with pytest.raises(NotFound):
            await store.get_job(tenant.id, record.job_id)
    for record in kept:
        assert (await store.get_job(tenant.id, record.job_id)).clock_id == record.clock_id
        assert len(await store.items(tenant.id, record.job_id, limit=10)) == 3
    page = await store.list_jobs(tenant.id, api="captain", now=T0, limit=10)
    assert {r.job_id for r in page.jobs} == {r.job_id for r in kept}
    # The idempotency key went with its job: using it again makes a new job.
    _, created = await store.create_job(tenant.id, new_job(idempotency=key))
    assert created is True
    keys = await store.list_keys(tenant.id)
    assert [k.clock_id for k in keys if k.id == bound_key.id] == [None]
    assert await store.list_clocks(tenant.id, limit=10) == [other]
    with pytest.raises(NotFound):
        await store.delete_clock(tenant.id, clock.id)
    with pytest.raises(NotFound):
        await store.delete_clock((await make_tenant(store)).id, other.id)


async def test_keys_are_bound_to_a_clock_of_their_tenant(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    clock = await store.create_clock(acme.id, now=T0)
    key_hash = unique("sha")
    record = await store.add_key(
        acme.id, api="crosmos", key_hash=key_hash, label="csk_", clock_id=clock.id
    )
    found = await store.key_for("crosmos", key_hash)
    assert found is not None and found[1].clock_id == clock.id == record.clock_id
    theirs = await store.create_clock(globex.id, now=T0)
    for clock_id in (theirs.id, "clk_0000000000000000"):
        with pytest.raises(NotFound):
            await store.add_key(
                acme.id, api="crosmos", key_hash=unique("sha"), label="csk_", clock_id=clock_id
            )
    assert len(await store.list_keys(acme.id)) == 1


async def test_reset_and_delete_forget_a_tenants_clocks(store):
    tenant, other = await make_tenant(store), await make_tenant(store)
    clock = await store.create_clock(tenant.id, now=T0)
    theirs = await store.create_clock(other.id, now=T0)
    await create(store, tenant, clock_id=clock.id)
    key = await store.add_key(
        tenant.id, api="captain", key_hash=unique("sha"), label="cap", clock_id=clock.id
    )
    await store.reset_tenant(tenant.id)
    assert await store.list_clocks(tenant.id, limit=10) == []
    with pytest.raises(NotFound):
        await store.get_clock(tenant.id, clock.id)
    assert [k.clock_id for k in await store.list_keys(tenant.id) if k.id == key.id] == [None]
    again = await store.create_clock(tenant.id, now=T0)
    await store.delete_tenant(tenant.id)
    with pytest.raises(NotFound):
        await store.get_clock(tenant.id, again.id)
    assert await store.list_clocks(tenant.id, limit=10) == []
    assert await store.get_clock(other.id, theirs.id) == theirs


# -- request log ----------------------------------------------------------------------------


def log_entry(tenant_id: str | None, at: float, **fields) -> RequestEntry:
    values = {
        "id": "req_" + uuid.uuid4().hex[:24],
        "tenant_id": tenant_id,
        "at": at,
        "method": "GET",
        "path": "/v2/jobs/job-1",
        "query": "",
        "status": 200,
        "duration_ms": 1.5,
        "request": LoggedMessage({"authorization": "[redacted]"}),
        "response": LoggedMessage({"content-type": "application/json"}, "{}", 2),
        **fields,
    }
    return RequestEntry(**values)


async def test_request_log_keeps_every_field(store):
    tenant = await make_tenant(store)
    entry = log_entry(
        tenant.id,
        T0 + 0.25,
        method="POST",
        path="/v2/collections/c/index/s3",
        query="a=1&b=%20",
        status=202,
        duration_ms=12.75,
        request=LoggedMessage(
            {"content-type": "application/json", "x-fern-sdk-name": "captain-sdk"},
            '{"bucket_name":"b","aws_secret_access_key":"[redacted]"}',
            70_000,
            True,
        ),
        response=LoggedMessage({"request-id": "req_x"}, '{"job_id":"j"}', 14),
        api="captain",
        operation_id="index_s3bucket_v2",
        job_id="job-9",
        clock_time=T0 + 3600.5,
        key_id="key_0123",
        sdk={
            "generator": "fern",
            "name": "captain-sdk",
            "version": "0.1.1",
            "language": "Python",
            "runtime": None,
        },
        retry_count=2,
    )
    await store.append_requests([entry])
    assert await store.get_request(tenant.id, entry.id) == entry
    assert await store.list_requests(tenant.id, limit=10) == [entry]
    bare = log_entry(tenant.id, T0, request=LoggedMessage(), response=LoggedMessage())
    await store.append_requests([bare])
    assert await store.get_request(tenant.id, bare.id) == bare


async def test_request_logs_are_separate(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    path = "/" + unique("path")
    mine, theirs, nobodys = (
        log_entry(acme.id, T0, path=path),
        log_entry(globex.id, T0, path=path),
        log_entry(None, T0, path=path),
    )
    await store.append_requests([mine, theirs, nobodys])
    where = RequestFilter(path=path)
    assert await store.list_requests(acme.id, where, limit=10) == [mine]
    assert await store.list_requests(globex.id, where, limit=10) == [theirs]
    assert await store.list_requests(None, where, limit=10) == [nobodys]
    for owner, other in ((acme.id, theirs), (globex.id, nobodys), (None, mine)):
        with pytest.raises(NotFound):
            await store.get_request(owner, other.id)
    assert await store.get_request(None, nobodys.id) == nobodys
    assert await store.count_requests(acme.id) == 1
    assert await store.delete_requests(acme.id, RequestFilter(path=path)) == 1
    assert await store.count_requests(globex.id, where) == 1
    assert await store.count_requests(None, where) == 1


async def test_request_log_filters_count_and_delete_alike(store):
    tenant = await make_tenant(store)
    entries = [
        log_entry(tenant.id, T0 + i, job_id=f"job-{i % 3}", method=("GET", "POST")[i % 2],
                  status=(200, 404, 422, 202)[i % 4], api=("captain", "crosmos")[i % 2 == 0],
                  path=f"/p/{i % 5}")
        for i in range(30)
    ]  # fmt: skip
    await store.append_requests(entries[:17])
    await store.append_requests(entries[17:])
    filters = [
        RequestFilter(),
        RequestFilter(job_id="job-1"),
        RequestFilter(job_id="job-none"),
        RequestFilter(method="POST"),
        RequestFilter(status=404),
        RequestFilter(api="crosmos"),
        RequestFilter(path="/p/3"),
        RequestFilter(since=T0 + 10),
        RequestFilter(until=T0 + 10),
        RequestFilter(since=T0 + 5, until=T0 + 25, method="GET", job_id="job-2"),
    ]
    for where in filters:
        expected = sorted(
            (e for e in entries if where.matches(e)), key=lambda e: e.at, reverse=True
        )
        assert await store.list_requests(tenant.id, where, limit=100) == expected, where
        assert await store.count_requests(tenant.id, where) == len(expected), where
    assert RequestFilter(since=T0 + 10).matches(entries[10])
    assert not RequestFilter(until=T0 + 10).matches(entries[10])
    assert await store.delete_requests(tenant.id, RequestFilter(status=404, method="GET")) == 0
    assert await store.delete_requests(tenant.id, RequestFilter(status=404)) == 8
    assert await store.count_requests(tenant.id) == 22
    assert await store.count_requests(tenant.id, RequestFilter(status=404)) == 0
    assert await store.delete_requests(tenant.id) == 22
    assert await store.list_requests(tenant.id, limit=10) == []


async def test_request_log_pages_are_stable_while_entries_arrive(store):
    tenant = await make_tenant(store)
    # Entries sharing an instant are ordered by id.
    old = [log_entry(tenant.id, T0 + i // 2) for i in range(25)]
    await store.append_requests(old)
    seen: list[RequestEntry] = []
    before = None
    while True:
        page = await store.list_requests(tenant.id, before=before, limit=4)
        seen.extend(page)
        if len(page) < 4:
            break
        before = (page[-1].at, page[-1].id)
        await store.append_requests([log_entry(tenant.id, T0 + 100 + len(seen))])
    assert seen == sorted(old, key=lambda e: (e.at, e.id), reverse=True)
    assert await store.count_requests(tenant.id) == 25 + 6


async def test_request_log_is_pruned_by_age_and_by_count(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    path = "/" + unique("path")
    acme_entries = [log_entry(acme.id, T0 + i, path=path) for i in range(10)]
    globex_entries = [log_entry(globex.id, T0 + i, path=path) for i in range(10)]
    nobody = [log_entry(None, T0 + i, path=path) for i in range(10)]
    await store.append_requests(acme_entries + globex_entries + nobody)
    # Age applies to every log; the count only to the logs named.
    deleted = await store.prune_requests(keep=4, older_than=T0 + 3, tenants=[acme.id, None])
    assert deleted >= 3 + 6 + 3 + 3
    newest_first = lambda entries: list(reversed(entries))  # noqa: E731
    assert await store.list_requests(acme.id, limit=20) == newest_first(acme_entries[6:])
    assert await store.list_requests(globex.id, limit=20) == newest_first(globex_entries[3:])
    where = RequestFilter(path=path)
    assert await store.list_requests(None, where, limit=20) == newest_first(nobody[6:])
    # Every log.
    await store.prune_requests(keep=2, older_than=0.0)
    assert await store.list_requests(globex.id, limit=20) == newest_first(globex_entries[8:])
    assert await store.prune_requests(keep=2, older_than=0.0, tenants=[acme.id]) == 0
    assert await store.count_requests(acme.id) == 2


async def test_reset_and_delete_forget_the_tenants_request_log(store):
    acme, globex = await make_tenant(store), await make_tenant(store)
    await store.append_requests(
        [log_entry(acme.id, T0), log_entry(acme.id, T0 + 1), log_entry(globex.id, T0)]
    )
    await store.reset_tenant(acme.id)
    assert await store.count_requests(acme.id) == 0
    assert await store.count_requests(globex.id) == 1
    await store.append_requests([log_entry(acme.id, T0 + 2)])
    await store.delete_tenant(globex.id)
    assert await store.count_requests(globex.id) == 0
    assert await store.count_requests(acme.id) == 1
