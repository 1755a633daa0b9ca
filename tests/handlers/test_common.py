from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from pollable.handlers.api import Call, Principal
from pollable.handlers.common import (
    creation_clock,
    entity_tag,
    fingerprint,
    iso,
    job_now,
    jobs_now,
    none_match,
    preferred_scenario,
    retry_after,
)
from pollable.lifecycle.errors import InvalidInput, NotFound
from pollable.lifecycle.planner import plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import JobRecord, Store
from pollable.store.memory import MemoryStore


@pytest.mark.parametrize(
    ("header", "scenario"),
    [
        (None, None),
        ("", None),
        ("scenario=partial", "partial"),
        ("respond-async, scenario=failed", "failed"),
        ('Scenario="slow"; note=x', "slow"),
        ("wait=10", None),
        ("scenario=", None),
    ],
)
def test_the_scenario_preference_of_a_prefer_header(
    header: str | None, scenario: str | None
) -> None:
    assert preferred_scenario(header) == scenario


def test_fingerprints_ignore_key_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_timestamps_are_rfc3339_utc() -> None:
    assert iso(0.0) == "1970-01-01T00:00:00Z"
    assert iso(1.5) == "1970-01-01T00:00:01.500000Z"
    assert iso(None) is None


# -- the clock a job runs on ------------------------------------------------------------------

REAL = 1_800_000_000.0


@dataclass(frozen=True)
class Services:
    store: Store
    settings: Any = None
    now: Any = lambda: REAL
    job_apis: Any = ()


def call_with(store: Store, tenant_id: str, *, header: str | None = None, key: str | None = None):
    params = {"pollable_clock": header} if header is not None else {}
    principal = Principal(tenant_id, "acme", "org", "captain", clock_id=key)
    return Call(params, None, principal, Services(store))


def record_on(clock_id: str | None, tenant_id: str = "t") -> JobRecord:
    plan, _ = plan_job(
        job_id=str(clock_id), created_at=0.0, scenario=CATALOGUE["happy"], work=[], seed="s"
    )
    return JobRecord(tenant_id, "captain", "index", None, {}, plan, (), 0, 0.0, clock_id)


def test_the_header_names_the_clock_else_the_key_else_real_time() -> None:
    async def run() -> None:
        store = MemoryStore()
        tenant = await store.create_tenant("acme", organization_id="org", credits=1.0)
        other = await store.create_tenant("globex", organization_id="org2", credits=1.0)
        header = await store.create_clock(tenant.id, now=100.0)
        key = await store.create_clock(tenant.id, now=200.0)
        theirs = await store.create_clock(other.id, now=300.0)
        assert await creation_clock(call_with(store, tenant.id)) == (None, REAL)
        assert await creation_clock(call_with(store, tenant.id, key=key.id)) == (key.id, 200.0)
        both = call_with(store, tenant.id, header=header.id, key=key.id)
        assert await creation_clock(both) == (header.id, 100.0)
        for wrong in (theirs.id, "clk_nope"):
            with pytest.raises(InvalidInput) as refused:
                await creation_clock(call_with(store, tenant.id, header=wrong, key=key.id))
            assert refused.value.loc == ("header", "pollable-clock")

    asyncio.run(run())


def test_a_job_is_computed_at_its_clocks_time() -> None:
    async def run() -> None:
        store = MemoryStore()
        tenant = await store.create_tenant("acme", organization_id="org", credits=1.0)
        clock = await store.create_clock(tenant.id, now=100.0)
        call = call_with(store, tenant.id)
        bound, unbound = record_on(clock.id, tenant.id), record_on(None, tenant.id)
        assert await job_now(call, bound) == 100.0
        assert await job_now(call, unbound) == REAL
        await store.advance_clock(tenant.id, clock.id, by=5)
        assert await jobs_now(call, [bound, unbound, bound]) == [105.0, REAL, 105.0]
        gone = record_on("clk_gone", tenant.id)
        with pytest.raises(NotFound):
            await job_now(call, gone)
        assert await jobs_now(call, [gone]) == [REAL]

    asyncio.run(run())


def test_retry_after_is_whole_seconds_from_1_to_60() -> None:
    assert retry_after(100.0, 100.0001) == 1
    assert retry_after(100.0, 102.0) == 2
    assert retry_after(100.0, 102.5) == 3
    assert retry_after(100.0, 1000.0) == 60
    assert retry_after(100.0, None) == 60  # nothing planned: poll slowly


def test_if_none_match_compares_tags_weakly() -> None:
    tag = entity_tag(b'{"a": 1}')
    assert tag == entity_tag(b'{"a": 1}') != entity_tag(b'{"a": 2}')
    for field in (tag, f"W/{tag}", f' "x" , {tag} ', f'"a,b",{tag}', "*", " * "):
        assert none_match(field, tag), field
    for field in (None, "", '"x"', tag[1:-1], f"W/{tag[1:-1]}", f'{tag[:-1]}x"', "**"):
        assert not none_match(field, tag), field
