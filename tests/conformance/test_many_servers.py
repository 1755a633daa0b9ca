"""Many servers on one store coordinate only through it: ``serve --workers N`` and separate
``serve`` processes, on a SQLite file and on one PostgreSQL database.

A revoked key and an advanced clock are seen by every process at once; creations sharing
an ``Idempotency-Key`` and cancels of one job are exactly-once whichever servers they
reach, however concurrent; the request log of every process is one log; and under all of
it at once every answer is one the served contract allows."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from pollable.store.base import Store
from tests.conformance.conftest import ON_EVERY_STORE
from tests.conformance.in_contract import Tally
from tests.conformance.live import Servers, Tenant, on_store, poll

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ON_EVERY_STORE, indirect=True)]

JOB = "/api/v1/jobs/3c90c3cc-0d44-4b50-8888-8dd25736052a"
#: Idempotency keys in the mixed-load proof; each is sent to every server at once.
KEYS = 45
SLOW = {"Prefer": "scenario=slow"}


def stored_events(url: str, who: Tenant) -> dict[str, int]:
    """Each of ``who``'s Captain jobs in the store, with how many events it holds."""

    async def read(store: Store) -> dict[str, int]:
        tenant = await store.find_tenant(who.name)
        assert tenant is not None
        page = await store.list_jobs(tenant.id, api="captain", now=0.0, limit=10 * KEYS)
        return {job.job_id: len(job.events) for job in page.jobs}

    result: dict[str, int] = on_store(url, read)
    return result


def test_three_servers_under_creates_cancels_and_polls_with_shared_keys(
    servers: Servers, db_url: str, tenants: dict[str, Tenant], figures: list[str]
) -> None:
    """Every Idempotency-Key is sent by three clients at once, one per server; each client
    then cancels the job it was given and polls it, through a server of its own. 0 errors,
    0 duplicated jobs or cancels, every answer in contract."""
    acme = tenants["acme"]
    # Real time and slow jobs: every job is still running when its cancels arrive.
    bases = [server.url for server in servers.start_many(3, db_url, time_scale=1.0)]
    tally = Tally()
    given: dict[int, set[str]] = defaultdict(set)
    cancels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    shuffle = random.Random(9)

    def chain(step: tuple[int, int]) -> None:
        key, client = step
        create, cancel, read = (bases[(client + shift) % 3] for shift in range(3))
        body = {"url": f"https://example.com/shared-{key}.pdf", "processing_type": "basic"}
        made = tally.check(
            http.post(
                f"{create}/v2/collections/shared/index/url",
                json=body,
                headers={**acme.captain, "Idempotency-Key": f"proof-{key}", **SLOW},
            )
        )
        if made.status_code != 202:
            return
        job_id = made.json()["job_id"]
        given[key].add(job_id)
        cancelled = tally.check(
            http.post(f"{cancel}/v2/jobs/{job_id}/cancel", headers=acme.captain)
        )
        if cancelled.status_code == 200:
            cancels[job_id].append(cancelled.json())
        tally.check(http.get(f"{read}/v2/jobs/{job_id}", headers=acme.captain))
        tally.check(http.get(f"{read}/v2/jobs", params={"limit": 5}, headers=acme.captain))

    # The three clients of a key are neighbours in the queue, so they run together.
    steps = [(key, client) for key in range(KEYS) for client in shuffle.sample(range(3), 3)]
    with (
        httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=24)) as http,
        ThreadPoolExecutor(max_workers=24) as pool,
    ):
        list(pool.map(chain, steps))

    duplicated = [key for key, jobs in given.items() if len(jobs) != 1]
    changed = Counter(
        sum(answer["message"] == "Job cancelled" for answer in answers)
        for answers in cancels.values()
    )
    events = stored_events(db_url, acme)
    figures.append(
        f"{sum(tally.statuses.values())} answers {dict(sorted(tally.statuses.items()))}, "
        f"{len(tally.breaches)} out of contract, {sum(tally.unanswered.values())} unanswered; "
        f"{KEYS} keys -> {len(events)} jobs, {len(duplicated)} duplicated; "
        f"cancels that changed a job, per job: {dict(changed)}"
    )
    assert not tally.breaches, tally.breaches[:5]
    assert not tally.unanswered, tally.unanswered
    assert set(tally.statuses) <= {200, 202}, tally.statuses
    assert not duplicated and len(given) == KEYS, duplicated
    assert len(events) == KEYS and set(events) == set().union(*given.values())
    # Of the three cancels of each job, exactly one changed it; all report one instant.
    assert changed == {1: KEYS}, changed
    differ = [
        answers for answers in cancels.values() if len({a["cancelled_at"] for a in answers}) != 1
    ]
    assert not differ, differ[:3]
    assert set(events.values()) == {1}, "one cancel event stored per job"


def request_ids(http: httpx.Client, base: str, who: Tenant) -> set[str]:
    """The ids of every entry in ``who``'s request log, read through ``base``."""
    found: set[str] = set()
    cursor = None
    for _ in itertools.count():
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = http.get(f"{base}/sandbox/v1/requests", params=params, headers=who.crosmos)
        assert page.status_code == 200, page.text
        found.update(entry["id"] for entry in page.json()["data"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("unreachable")


def test_workers_and_servers_share_keys_clocks_and_one_log(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    """``serve --workers 2`` beside a plain ``serve``: three processes on one store. Every
    request opens a connection of its own, so each may reach either worker."""
    acme = tenants["acme"]
    workers, single = servers.start_each(db_url, ("--workers", "2"), ())
    bases = [workers.url, single.url]
    sent: set[str] = set()

    def send(method: str, url: str, **kwargs: Any) -> httpx.Response:
        # A new connection per request: the kernel spreads them over the workers.
        with httpx.Client(timeout=10.0) as fresh:
            response = fresh.request(method, url, **kwargs)
        if response.status_code != 401:  # refused keys go to the log of no tenant
            sent.add(response.headers["Request-Id"])
        return response

    keys = f"/sandbox/v1/tenants/{acme.tenant.id}/keys"
    made = send("POST", single.url + keys, json={"api": "crosmos"}, headers=acme.crosmos)
    assert made.status_code == 201, made.text
    key = made.json()
    fresh_key = {"Authorization": f"Bearer {key['key']}"}
    for base in bases * 3:
        assert send("GET", base + JOB, headers=fresh_key).status_code == 404
    revoked = send("DELETE", f"{workers.url}{keys}/{key['id']}", headers=acme.crosmos)
    assert revoked.status_code == 200, revoked.text
    for base in bases * 3:
        assert send("GET", base + JOB, headers=fresh_key).status_code == 401

    clock = send("POST", single.url + "/sandbox/v1/clocks", json={"now": "2030-01-01T00:00:00Z"},
                 headers=acme.crosmos).json()["id"]  # fmt: skip
    for step in range(1, 4):
        base = bases[step % 2]
        moved = send("POST", f"{base}/sandbox/v1/clocks/{clock}/advance",
                     json={"seconds": 60 * step}, headers=acme.captain)  # fmt: skip
        assert moved.status_code == 200, moved.text
        for other in bases * 2:
            seen = send("GET", f"{other}/sandbox/v1/clocks/{clock}", headers=acme.crosmos)
            assert seen.json()["now"] == moved.json()["now"]

    # Every request above, whichever process answered it, is in the one log, read
    # through any of them (each writes its entries a fraction of a second after), on
    # connections of their own (so through either worker).
    def read_log(base: str) -> set[str]:
        with httpx.Client(timeout=10.0) as fresh:
            return request_ids(fresh, base, acme)

    for base in bases * 2:
        poll(lambda base=base: read_log(base), sent.issubset, timeout=10.0)
