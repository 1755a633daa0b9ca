"""A tenant's bounds on PostgreSQL hold across processes: servers that share one database
never spend past a balance nor store past a cap, whoever races whom."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pollable.store import open_store
from tests import postgres

ROOT = Path(__file__).resolve().parents[2]

_SPEND_WORKER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from pollable.lifecycle.planner import Work, plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store import open_store
from pollable.store.base import InsufficientCredits, NewJob, StorageFull

async def create(store, tenant_id, job_id):
    plan, items = plan_job(job_id=job_id, created_at=1_700_000_000.0,
                           scenario=CATALOGUE["happy"], work=[Work(job_id)], seed=job_id)
    job = NewJob(api="captain", kind="index", plan=plan, items=items, credits=7.0)
    try:
        await store.create_job(tenant_id, job, cap=60)
        return "created"
    except InsufficientCredits:
        return "poor"
    except StorageFull:
        return "full"

async def main(url, tenant_id, name, start):
    store = open_store(url)
    await store.open()
    time.sleep(max(0.0, float(start) - time.time()))  # all processes race from one instant
    outcomes = await asyncio.gather(*(create(store, tenant_id, f"{name}-{i}") for i in range(25)))
    await store.close()
    print(json.dumps(outcomes))

asyncio.run(main(*sys.argv[2:]))
"""


@pytest.mark.postgres
def test_postgresql_two_processes_never_spend_past_the_balance_or_the_cap(tmp_path):
    """Two processes, each with a pool of connections, create 25 jobs each at once on one
    tenant: the balance never goes below zero and the count never passes the cap (each job
    stores 2: itself and its one item)."""
    with postgres.fresh_url() as base:
        url = base + "&pool_size=5"

        async def setup(credits: float) -> str:
            async with open_store(url) as store:
                tenant = await store.create_tenant(
                    f"t{credits}", organization_id="o", credits=credits
                )
            return tenant.id

        async def check(tenant_id: str, credits: float, expected: int) -> None:
            async with open_store(url) as store:
                tenant = await store.get_tenant(tenant_id)
                assert tenant.credits == pytest.approx(credits - 7.0 * expected)
                assert tenant.credits >= 0 and tenant.stored == 2 * expected <= 60
                page = await store.list_jobs(tenant_id, api="captain", now=0.0, limit=100)
                assert page.total == expected

        for credits, expected, refusal in ((100.0, 14, "poor"), (1000.0, 30, "full")):
            tenant_id = asyncio.run(setup(credits))
            start = str(time.time() + 1.5)
            env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", _SPEND_WORKER, str(ROOT), url, tenant_id, name, start],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=tmp_path,
                    env=env,
                )
                for name in ("p", "q")
            ]
            outcomes: list[str] = []
            for proc in procs:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                outcomes.extend(json.loads(out))
            assert outcomes.count("created") == expected
            assert outcomes.count(refusal) == 50 - expected
            asyncio.run(check(tenant_id, credits, expected))
