"""Acknowledged jobs survive a SIGKILL mid-load, and two server processes on one store (a
SQLite file, a PostgreSQL database) neither lose nor duplicate a job."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from pollable.store.base import Store
from tests.conformance.conftest import ON_EVERY_STORE
from tests.conformance.live import Servers, Tenant, on_store

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ON_EVERY_STORE, indirect=True)]

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"


def crosmos_create(http: httpx.Client, base: str, who: Tenant, n: int) -> httpx.Response:
    body = {"space_id": SPACE_ID, "sources": [{"content": f"fact number {n}"}]}
    return http.post(f"{base}/api/v1/sources", json=body, headers=who.crosmos)


def captain_create(http: httpx.Client, base: str, who: Tenant, n: int) -> httpx.Response:
    body = {"url": f"https://example.com/doc-{n}.pdf", "processing_type": "basic"}
    return http.post(f"{base}/v2/collections/durable/index/url", json=body, headers=who.captain)


def acknowledged(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert isinstance(job_id, str)
    return job_id


def stored_totals(url: str, who: Tenant) -> dict[str, int]:
    """How many jobs of each API the store holds for ``who``, read past any server."""

    async def count(store: Store) -> dict[str, int]:
        tenant = await store.find_tenant(who.name)
        assert tenant is not None
        totals = {}
        for api in ("crosmos", "captain"):
            page = await store.list_jobs(tenant.id, api=api, now=0.0, limit=1)
            totals[api] = page.total
        return totals

    result: dict[str, int] = on_store(url, count)
    return result


def captain_listing(http: httpx.Client, base: str, who: Tenant) -> tuple[int, list[str]]:
    ids: list[str] = []
    total = None
    for offset in itertools.count(0, 200):
        response = http.get(
            f"{base}/v2/jobs", params={"limit": 200, "offset": offset}, headers=who.captain
        )
        assert response.status_code == 200, response.text
        page = response.json()
        total = page["total"]
        ids.extend(job["job_id"] for job in page["jobs"])
        if not page["jobs"]:
            break
    assert total is not None
    return total, ids


def assert_all_there(
    http: httpx.Client, base: str, who: Tenant, crosmos: list[str], captain: list[str]
) -> None:
    for job_id in crosmos:
        response = http.get(f"{base}/api/v1/jobs/{job_id}", headers=who.crosmos)
        assert response.status_code == 200, (job_id, response.text)
        assert response.json()["job_id"] == job_id
    for job_id in captain:
        response = http.get(f"{base}/v2/jobs/{job_id}", headers=who.captain)
        assert response.status_code == 200, (job_id, response.text)
        assert response.json()["job_id"] == job_id
    total, listed = captain_listing(http, base, who)
    assert total == len(captain), "GET /v2/jobs counts exactly the acknowledged jobs"
    assert Counter(listed) == Counter(captain), "every acknowledged job listed, once"


def test_two_processes_on_one_file(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    first, second = servers.start_many(2, db_url)
    bases = [first.url, second.url]
    plan = [
        (bases[n % 2], who, create, n)
        for n in range(60)
        for who in (acme, globex)
        for create in (crosmos_create, captain_create)
    ]

    def send(step: tuple[str, Tenant, Any, int]) -> tuple[str, str, str]:
        base, who, create, n = step
        return who.name, create.__name__.split("_")[0], acknowledged(create(http, base, who, n))

    # Interleaved and concurrent: both processes write the file at the same time.
    with (
        httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=16)) as http,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        results = list(pool.map(send, plan))

    with httpx.Client(timeout=10.0) as http:
        for who in (acme, globex):
            crosmos = [j for name, api, j in results if name == who.name and api == "crosmos"]
            captain = [j for name, api, j in results if name == who.name and api == "captain"]
            assert len(crosmos) == len(captain) == 60
            for base in bases:
                assert_all_there(http, base, who, crosmos, captain)
            assert stored_totals(db_url, who) == {"crosmos": 60, "captain": 60}
    assert len({job_id for _, _, job_id in results}) == len(plan)


def test_a_killed_sibling_leaves_a_usable_file(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    """A second process keeps serving (and writing) while its sibling is killed."""
    acme = tenants["acme"]
    doomed, survivor = servers.start_many(2, db_url)
    with httpx.Client(timeout=10.0) as http:
        before = acknowledged(captain_create(http, doomed.url, acme, 1))
        doomed.kill()
        after = acknowledged(captain_create(http, survivor.url, acme, 2))
        assert_all_there(http, survivor.url, acme, [], [before, after])


def stored_collections(url: str, who: Tenant) -> Counter[str]:
    """How many Captain jobs the store holds for ``who`` in each collection."""

    async def read(store: Store) -> Counter[str]:
        tenant = await store.find_tenant(who.name)
        assert tenant is not None
        found: Counter[str] = Counter()
        for offset in itertools.count(0, 500):
            page = await store.list_jobs(
                tenant.id, api="captain", now=0.0, limit=500, offset=offset
            )
            found.update(str(job.collection) for job in page.jobs)
            if not page.jobs:
                return found
        raise AssertionError("unreachable")

    result: Counter[str] = on_store(url, read)
    return result


CREATIONS = 1_000
#: Acknowledged creations after which the server is killed: mid-load, requests in flight.
KILL_AFTER = 400


def test_sigkill_during_concurrent_creations_loses_and_duplicates_nothing(
    servers: Servers, db_url: str, tenants: dict[str, Tenant], figures: list[str]
) -> None:
    """1,000 creations, 32 at a time, each into a collection of its own; SIGKILL once 400
    are acknowledged. Every acknowledged job is there after a restart, and no creation
    made two jobs (each collection holds at most one)."""
    acme = tenants["acme"]
    server = servers.start(db_url)
    acked: dict[int, str] = {}
    refused: Counter[str] = Counter()
    killed = threading.Event()

    def send(n: int) -> None:
        body = {"url": f"https://example.com/doc-{n}.pdf", "processing_type": "basic"}
        try:
            response = http.post(
                f"{server.url}/v2/collections/kill-{n}/index/url", json=body, headers=acme.captain
            )
        except httpx.TransportError as exc:
            assert killed.is_set(), f"no answer before the kill: {exc!r}"
            refused[type(exc).__name__] += 1
            return
        assert response.status_code == 202, response.text
        acked[n] = response.json()["job_id"]
        if len(acked) >= KILL_AFTER and not killed.is_set():
            killed.set()
            server.kill()

    with (
        httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=32)) as http,
        ThreadPoolExecutor(max_workers=32) as pool,
    ):
        list(pool.map(send, range(CREATIONS)))
    assert killed.is_set() and server.process is not None and server.process.returncode == -9

    restarted = servers.start(db_url)
    with httpx.Client(timeout=10.0) as http:
        total, listed = captain_listing(http, restarted.url, acme)
    stored = stored_collections(db_url, acme)
    lost = [n for n, job_id in acked.items() if job_id not in set(listed)]
    duplicated = [name for name, count in stored.items() if count > 1]
    figures.append(
        f"{CREATIONS} sent, {len(acked)} acknowledged, {sum(refused.values())} unanswered "
        f"({dict(refused)}), {total} stored ({total - len(acked)} of them unacknowledged), "
        f"{len(lost)} lost, {len(duplicated)} duplicated"
    )
    assert not lost, f"acknowledged but gone after SIGKILL: {lost[:10]}"
    assert not duplicated, f"creations stored twice: {duplicated[:10]}"
    assert len(set(acked.values())) == len(acked)
    assert Counter(listed) == Counter(set(listed)) and total == len(listed) == sum(stored.values())
    assert len(acked) <= total <= CREATIONS
