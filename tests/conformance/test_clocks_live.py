"""Clock time lives in the store: two server processes on one SQLite file see an advance
made through either of them at once, and advances through both never take a clock back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from tests.conformance.conftest import ON_EVERY_STORE
from tests.conformance.live import Servers, Tenant

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ON_EVERY_STORE, indirect=True)]

T0 = "2030-01-01T00:00:00Z"
BUCKET = {
    "bucket_name": "acme-docs",
    "processing_type": "basic",
    "max_files": 5,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_two_processes_see_an_advance_at_once(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    first, second = servers.start_many(2, db_url, time_scale=1.0)
    with httpx.Client(timeout=10.0) as http:
        made = http.post(f"{first.url}/sandbox/v1/clocks", json={"now": T0}, headers=acme.crosmos)
        assert made.status_code == 201, made.text
        clock = made.json()["id"]
        created = http.post(
            f"{second.url}/v2/collections/docs/index/s3",
            json=BUCKET,
            headers={**acme.captain, "Pollable-Clock": clock},
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        for stage in ("scanning", "embedding", "finalizing"):
            advanced = http.post(
                f"{first.url}/sandbox/v1/clocks/{clock}/advance",
                json={"until": {"job_id": job_id, "stage": stage}},
                headers=acme.crosmos,
            )
            assert advanced.status_code == 200, advanced.text
            # The other process, asked right away, is at the same time.
            seen = http.get(f"{second.url}/sandbox/v1/clocks/{clock}", headers=acme.captain)
            assert seen.json()["now"] == advanced.json()["now"]
            job = http.get(f"{second.url}/v2/jobs/{job_id}", headers=acme.captain).json()
            assert (job["status"], job["progress"]["current_stage"]) == ("running", stage)
        done = http.post(
            f"{second.url}/sandbox/v1/clocks/{clock}/advance",
            json={"until": {"job_id": job_id, "status": "completed"}},
            headers=acme.captain,
        )
        assert done.status_code == 200, done.text
        listed = http.get(
            f"{first.url}/v2/jobs", params={"status": "completed"}, headers=acme.captain
        )
        assert [job["job_id"] for job in listed.json()["jobs"]] == [job_id]


def test_advances_through_two_processes_never_take_a_clock_back(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    bases = [server.url for server in servers.start_many(2, db_url)]
    with httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=16)) as http:
        made = http.post(f"{bases[0]}/sandbox/v1/clocks", json={"now": T0}, headers=acme.crosmos)
        clock = made.json()["id"]
        start = seconds(T0)
        steps = [(bases[n % 2], start + (n * 7919) % 100) for n in range(80)]

        def send(step: tuple[str, float]) -> tuple[int, float, float]:
            base, to = step
            moved = http.post(
                f"{base}/sandbox/v1/clocks/{clock}/advance",
                json={"to": datetime.fromtimestamp(to).astimezone().isoformat()},
                headers=acme.crosmos,
            )
            read = http.get(f"{base}/sandbox/v1/clocks/{clock}", headers=acme.crosmos)
            return moved.status_code, to, seconds(read.json()["now"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(send, steps))
        for status, to, now in results:
            # Moved (or already there), or refused because another advance had passed it;
            # either way, read afterwards, the clock is at least there.
            assert status in (200, 409), status
            assert now >= to if status == 200 else now > to, (status, to, now)
        final = http.get(f"{bases[1]}/sandbox/v1/clocks/{clock}", headers=acme.crosmos).json()
        assert seconds(final["now"]) == max(to for _, to in steps)
