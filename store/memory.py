"""``memory://``: everything in dictionaries, gone when the process ends. For tests and demos."""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pollable.lifecycle.engine import applies, completes_at, status_from
from pollable.lifecycle.errors import Conflict, NotFound
from pollable.lifecycle.model import Event, Item, Plan, Status, Tally, running_tallies

from .base import (
    EVERY_REQUEST,
    Clock,
    ClockWouldGoBack,
    FaultRule,
    Idempotency,
    IdempotencyMismatch,
    InsufficientCredits,
    JobPage,
    JobRecord,
    KeyRecord,
    NewJob,
    RequestCursor,
    RequestEntry,
    RequestFilter,
    StorageFull,
    Store,
    Tenant,
    job_size,
    milestones,
    new_clock_id,
    new_fault_id,
    new_key_id,
)


@dataclass
class _Job:
    record: JobRecord
    items: Sequence[Item]
    #: prefix[k] tallies the first k items.
    prefix: list[Tally]
    started_at: float
    ends_at: float
    final: Status
    seq: int
    #: When each key's item completes (the earliest, if a key repeats), per plan.
    completes: dict[str, float]


@dataclass
class _State:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    #: (api, key hash) -> key id, and the keys' records by id.
    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    key_records: dict[str, KeyRecord] = field(default_factory=dict)
    jobs: dict[tuple[str, str], _Job] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    sequences: dict[tuple[str, str], int] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    clocks: dict[tuple[str, str], Clock] = field(default_factory=dict)
    #: Each log's entries by id (tenant id, or None for the admin's log).
    requests: dict[str | None, dict[str, RequestEntry]] = field(default_factory=dict)
    #: Each tenant's fault rules by id, in the order they were created.
    faults: dict[str, dict[str, FaultRule]] = field(default_factory=dict)


def _completions(plan: Plan, items: Sequence[Item]) -> dict[str, float]:
    completes: dict[str, float] = {}
    for item in items:
        done = completes_at(plan, item)
        if done is not None and done < completes.get(item.key, math.inf):
            completes[item.key] = done
    return completes


class MemoryStore(Store):
    def __init__(self) -> None:
        self._s = _State()
        self._seq = itertools.count()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create_tenant(
        self,
        name: str,
        *,
        organization_id: str,
        credits: float,
        default_scenario: str | None = None,
        created_at: float = 0.0,
    ) -> Tenant:
        if await self.find_tenant(name) is not None:
            raise Conflict(f"tenant {name!r} already exists")
        tenant = Tenant(
            str(uuid.uuid4()), name, organization_id, credits, default_scenario, created_at,
            credits,
        )  # fmt: skip
        self._s.tenants[tenant.id] = tenant
        return tenant

    async def find_tenant(self, name: str) -> Tenant | None:
        return next((t for t in self._s.tenants.values() if t.name == name), None)

    async def get_tenant(self, tenant_id: str) -> Tenant:
        try:
            return self._s.tenants[tenant_id]
        except KeyError:
            raise NotFound("tenant not found") from None

    async def count_tenants(self) -> int:
        return len(self._s.tenants)

    async def set_default_scenario(self, tenant_id: str, scenario: str | None) -> Tenant:
        tenant = replace(await self.get_tenant(tenant_id), default_scenario=scenario)
        self._s.tenants[tenant_id] = tenant
        return tenant

    async def list_tenants(self, *, after: str | None = None, limit: int) -> list[Tenant]:
        ids = sorted(i for i in self._s.tenants if after is None or i > after)
        return [self._s.tenants[i] for i in ids[:limit]]

    async def set_credits(self, tenant_id: str, credits: float) -> Tenant:
        tenant = await self.get_tenant(tenant_id)
        tenant = replace(tenant, credits=credits, initial_credits=credits)
        self._s.tenants[tenant_id] = tenant
        return tenant

    async def delete_tenant(self, tenant_id: str) -> None:
        await self.reset_tenant(tenant_id)
        del self._s.tenants[tenant_id]
        for ref, key_id in list(self._s.keys.items()):
            if self._s.key_records[key_id].tenant_id == tenant_id:
                del self._s.keys[ref], self._s.key_records[key_id]

    async def reset_tenant(self, tenant_id: str) -> None:
        tenant = await self.get_tenant(tenant_id)
        for table in (self._s.jobs, self._s.idempotency, self._s.sequences):
            for key in [k for k in table if k[0] == tenant_id]:
                del table[key]
        for owner, clock_id in [k for k in self._s.clocks if k[0] == tenant_id]:
            await self.delete_clock(owner, clock_id)
        self._s.requests.pop(tenant_id, None)
        keys = sum(1 for k in self._s.key_records.values() if k.tenant_id == tenant_id)
        self._s.tenants[tenant_id] = replace(tenant, credits=tenant.initial_credits, stored=keys)
        self._s.faults.pop(tenant_id, None)

    async def add_key(
        self,
        tenant_id: str,
        *,
        api: str,
        key_hash: str,
        label: str,
        environment: str = "",
        clock_id: str | None = None,
        created_at: float = 0.0,
        cap: int | None = None,
    ) -> KeyRecord:
        await self.get_tenant(tenant_id)
        if clock_id is not None:
            await self.get_clock(tenant_id, clock_id)
        if (api, key_hash) in self._s.keys:
            raise Conflict("this key is already stored")
        self._store(tenant_id, 1, cap)
        record = KeyRecord(new_key_id(), tenant_id, api, environment, label, created_at, clock_id)
        self._s.keys[(api, key_hash)] = record.id
        self._s.key_records[record.id] = record
        return record

    async def key_for(self, api: str, key_hash: str) -> tuple[Tenant, KeyRecord] | None:
        key_id = self._s.keys.get((api, key_hash))
        record = None if key_id is None else self._s.key_records[key_id]
        if record is None or record.revoked_at is not None:
            return None
        tenant = self._s.tenants[record.tenant_id]
        rules = bool(self._s.faults.get(record.tenant_id))
        return replace(tenant, has_fault_rules=rules), record

    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        await self.get_tenant(tenant_id)
        return [k for k in self._s.key_records.values() if k.tenant_id == tenant_id]

    async def revoke_key(self, tenant_id: str, key_id: str, *, at: float) -> KeyRecord:
        record = self._s.key_records.get(key_id)
        if record is None or record.tenant_id != tenant_id:
            raise NotFound("key not found")
        if record.revoked_at is None:
            record = replace(record, revoked_at=at)
            self._s.key_records[key_id] = record
        return record

    async def idempotent_job(self, tenant_id: str, idempotency: Idempotency) -> JobRecord | None:
        seen = self._s.idempotency.get((tenant_id, idempotency.key))
        if seen is None:
            return None
        fingerprint, job_id = seen
        if fingerprint != idempotency.fingerprint:
            raise IdempotencyMismatch("idempotency key reused with a different body")
        return await self.get_job(tenant_id, job_id)

    # -- fault rules --------------------------------------------------------------------

    async def create_fault(
        self, tenant_id: str, spec: Mapping[str, Any], *, limit: int, created_at: float = 0.0
    ) -> FaultRule:
        await self.get_tenant(tenant_id)
        rules = self._s.faults.setdefault(tenant_id, {})
        if len(rules) >= limit:
            raise Conflict(f"a tenant has at most {limit} fault rules")
        rule = FaultRule(new_fault_id(), tenant_id, dict(spec), created_at)
        rules[rule.id] = rule
        return rule

    async def list_faults(self, tenant_id: str) -> list[FaultRule]:
        return list(self._s.faults.get(tenant_id, {}).values())

    async def get_fault(self, tenant_id: str, fault_id: str) -> FaultRule:
        try:
            return self._s.faults[tenant_id][fault_id]
        except KeyError:
            raise NotFound("fault rule not found") from None

    async def delete_fault(self, tenant_id: str, fault_id: str) -> None:
        await self.get_fault(tenant_id, fault_id)
        del self._s.faults[tenant_id][fault_id]

    async def match_fault(self, tenant_id: str, fault_id: str) -> int:
        rule = await self.get_fault(tenant_id, fault_id)
        rule = replace(rule, matched=rule.matched + 1)
        self._s.faults[tenant_id][fault_id] = rule
        return rule.matched

    # -- test clocks ----------------------------------------------------------------------

    async def create_clock(
        self,
        tenant_id: str,
        *,
        now: float,
        name: str | None = None,
        created_at: float = 0.0,
        cap: int | None = None,
    ) -> Clock:
        await self.get_tenant(tenant_id)
        self._store(tenant_id, 1, cap)
        clock = Clock(new_clock_id(), tenant_id, name, now, created_at)
        self._s.clocks[(tenant_id, clock.id)] = clock
        return clock

    def _store(self, tenant_id: str, size: int, cap: int | None, credits: float = 0.0) -> Tenant:
        """Count ``size`` more stored items and spend ``credits``, or raise and change
        nothing. (No await in it: atomic on the event loop.)"""
        tenant = self._s.tenants[tenant_id]
        if credits > 0 and credits > tenant.credits:
            raise InsufficientCredits(credits, tenant.credits)
        if cap is not None and tenant.stored + size > cap:
            raise StorageFull(cap)
        tenant = replace(tenant, credits=tenant.credits - credits, stored=tenant.stored + size)
        self._s.tenants[tenant.id] = tenant
        return tenant

    async def get_clock(self, tenant_id: str, clock_id: str) -> Clock:
        try:
            return self._s.clocks[(tenant_id, clock_id)]
        except KeyError:
            raise NotFound("clock not found") from None

    async def list_clocks(
        self, tenant_id: str, *, after: str | None = None, limit: int
    ) -> list[Clock]:
        ids = sorted(
            i for t, i in self._s.clocks if t == tenant_id and (after is None or i > after)
        )
        return [self._s.clocks[(tenant_id, i)] for i in ids[:limit]]

    async def advance_clock(
        self, tenant_id: str, clock_id: str, *, to: float | None = None, by: float | None = None
    ) -> Clock:
        if (to is None) == (by is None):
            raise ValueError("advance a clock to an instant or by seconds")
        clock = await self.get_clock(tenant_id, clock_id)
        if by is not None:
            if not by > 0:
                raise ValueError("a clock advances by a positive number of seconds")
            to = clock.now + by
        assert to is not None
        if to < clock.now:
            raise ClockWouldGoBack(clock)
        clock = replace(clock, now=to)
        self._s.clocks[(tenant_id, clock_id)] = clock
        return clock

    async def delete_clock(self, tenant_id: str, clock_id: str) -> None:
        await self.get_clock(tenant_id, clock_id)
        gone = {
            job_id
            for (owner, job_id), job in self._s.jobs.items()
            if owner == tenant_id and job.record.clock_id == clock_id
        }
        freed = 1  # the clock
        for job_id in gone:
            freed += 1 + len(self._s.jobs.pop((tenant_id, job_id)).items)
        tenant = self._s.tenants[tenant_id]
        self._s.tenants[tenant_id] = replace(tenant, stored=tenant.stored - freed)
        for key, (_, job_id) in list(self._s.idempotency.items()):
            if key[0] == tenant_id and job_id in gone:
                del self._s.idempotency[key]
        for key_id, record in list(self._s.key_records.items()):
            if record.tenant_id == tenant_id and record.clock_id == clock_id:
                self._s.key_records[key_id] = replace(record, clock_id=None)
        del self._s.clocks[(tenant_id, clock_id)]

    # -- jobs ---------------------------------------------------------------------------

    async def create_job(
        self, tenant_id: str, job: NewJob, *, cap: int | None = None
    ) -> tuple[JobRecord, bool]:
        await self.get_tenant(tenant_id)
        if job.clock_id is not None:
            await self.get_clock(tenant_id, job.clock_id)
        if job.idempotency is not None:
            earlier = await self.idempotent_job(tenant_id, job.idempotency)
            if earlier is not None:
                return earlier, False
        job_key = (tenant_id, job.plan.job_id)
        if job_key in self._s.jobs:
            raise Conflict("job id already exists")
        remaining = self._store(tenant_id, job_size(job), cap, job.credits).credits
        serial_base = self._s.sequences.get((tenant_id, "item"), 0)
        self._s.sequences[(tenant_id, "item")] = serial_base + len(job.items)
        record = JobRecord(
            tenant_id=tenant_id,
            api=job.api,
            kind=job.kind,
            collection=job.collection,
            attrs=dict(job.attrs),
            plan=job.plan,
            events=(),
            serial_base=serial_base,
            credits_remaining=remaining,
            clock_id=job.clock_id,
        )
        started_at, ends_at, final = milestones(job.plan)
        self._s.jobs[job_key] = _Job(
            record,
            tuple(job.items),
            [Tally(), *running_tallies(job.items)],
            started_at,
            ends_at,
            final,
            next(self._seq),
            _completions(job.plan, job.items),
        )
        if job.idempotency is not None:
            self._s.idempotency[(tenant_id, job.idempotency.key)] = (
                job.idempotency.fingerprint,
                job.plan.job_id,
            )
        return record, True

    def _job(self, tenant_id: str, job_id: str) -> _Job:
        try:
            return self._s.jobs[(tenant_id, job_id)]
        except KeyError:
            raise NotFound("job not found") from None

    async def get_job(self, tenant_id: str, job_id: str) -> JobRecord:
        return self._job(tenant_id, job_id).record

    async def items(
        self, tenant_id: str, job_id: str, *, after: int = -1, limit: int
    ) -> list[Item]:
        # Ordinals are 0..n-1 in order, so the item after ``after`` sits at ``after + 1``.
        items = self._job(tenant_id, job_id).items
        start = max(0, after + 1)
        return list(items[start : start + limit])

    async def tally(self, tenant_id: str, job_id: str, k: int) -> Tally:
        prefix = self._job(tenant_id, job_id).prefix
        return prefix[max(0, min(k, len(prefix) - 1))]

    async def append_event(
        self, tenant_id: str, job_id: str, event: Event, *, refund: float = 0.0
    ) -> tuple[JobRecord, bool]:
        # No await between the check and the append: atomic on the event loop.
        stored = self._job(tenant_id, job_id)
        if not applies(stored.record.plan, stored.record.events, event):
            return stored.record, False
        stored.record = replace(stored.record, events=(*stored.record.events, event))
        stored.started_at, stored.ends_at, stored.final = milestones(
            stored.record.plan, stored.record.events
        )
        if refund:
            tenant = self._s.tenants[tenant_id]
            self._s.tenants[tenant_id] = replace(tenant, credits=tenant.credits + refund)
        return stored.record, True

    async def list_jobs(
        self,
        tenant_id: str,
        *,
        api: str | None,
        now: float,
        status: Status | None = None,
        collection: str | None = None,
        clock_id: str | None = None,
        limit: int,
        offset: int = 0,
    ) -> JobPage:

        def job_now(job: _Job) -> float:
            clock_id = job.record.clock_id
            return now if clock_id is None else self._s.clocks[(tenant_id, clock_id)].now

        matching = [
            job
            for (owner, _), job in self._s.jobs.items()
            if owner == tenant_id
            and (api is None or job.record.api == api)
            and (clock_id is None or job.record.clock_id == clock_id)
            and (collection is None or job.record.collection == collection)
            and (
                status is None
                or status_from(job.started_at, job.ends_at, job.final, job_now(job)) is status
            )
        ]
        matching.sort(key=lambda job: (job.record.plan.created_at, job.seq), reverse=True)
        page = [job.record for job in matching[offset : offset + limit]]
        return JobPage(page, len(matching))

    async def indexed_keys(
        self, tenant_id: str, collection: str, keys: Sequence[str], *, at: float
    ) -> set[str]:
        wanted = set(keys)
        found: set[str] = set()
        for (owner, _), job in self._s.jobs.items():
            if owner != tenant_id or job.record.collection != collection:
                continue
            until = min(at, job.ends_at)
            if len(job.completes) < len(wanted):
                found.update(
                    k for k, done in job.completes.items() if done <= until and k in wanted
                )
            else:
                for key in wanted:
                    done = job.completes.get(key)
                    if done is not None and done <= until:
                        found.add(key)
        return found

    async def next_sequence(self, tenant_id: str, name: str, *, cap: int | None = None) -> int:
        value = self._s.sequences.get((tenant_id, f"seq:{name}"), 0) + 1
        if value == 1:
            await self.get_tenant(tenant_id)
            self._store(tenant_id, 1, cap)
        self._s.sequences[(tenant_id, f"seq:{name}")] = value
        return value

    # -- request log --------------------------------------------------------------------

    @staticmethod
    def _newest_first(entries: Collection[RequestEntry]) -> list[RequestEntry]:
        return sorted(entries, key=lambda e: (e.at, e.id), reverse=True)

    async def append_requests(self, entries: Sequence[RequestEntry]) -> None:
        for entry in entries:
            self._s.requests.setdefault(entry.tenant_id, {})[entry.id] = entry

    def _matching(self, tenant_id: str | None, where: RequestFilter) -> list[RequestEntry]:
        log = self._s.requests.get(tenant_id, {})
        return [entry for entry in log.values() if where.matches(entry)]

    async def list_requests(
        self,
        tenant_id: str | None,
        where: RequestFilter = EVERY_REQUEST,
        *,
        before: RequestCursor | None = None,
        limit: int,
    ) -> list[RequestEntry]:
        found = self._newest_first(self._matching(tenant_id, where))
        if before is not None:
            found = [e for e in found if (e.at, e.id) < before]
        return found[:limit]

    async def count_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        return len(self._matching(tenant_id, where))

    async def get_request(self, tenant_id: str | None, request_id: str) -> RequestEntry:
        try:
            return self._s.requests[tenant_id][request_id]
        except KeyError:
            raise NotFound("request not found") from None

    async def delete_requests(
        self, tenant_id: str | None, where: RequestFilter = EVERY_REQUEST
    ) -> int:
        doomed = self._matching(tenant_id, where)
        for entry in doomed:
            del self._s.requests[tenant_id][entry.id]
        return len(doomed)

    async def prune_requests(
        self, *, keep: int, older_than: float, tenants: Collection[str | None] | None = None
    ) -> int:
        deleted = 0
        for tenant_id, log in self._s.requests.items():
            kept = [e for e in log.values() if e.at >= older_than]
            if (tenants is None or tenant_id in tenants) and len(kept) > keep:
                kept = self._newest_first(kept)[:keep]
            if len(kept) < len(log):
                deleted += len(log) - len(kept)
                self._s.requests[tenant_id] = {e.id: e for e in kept}
        return deleted

    async def meta(self, name: str, default: str) -> str:
        return self._s.meta.setdefault(name, default)
