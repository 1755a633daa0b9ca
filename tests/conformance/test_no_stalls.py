"""No request holds up other tenants' requests: while one tenant creates the largest jobs
the contracts allow (a 100,000-file bucket; ten 1 MB sources), another tenant's polls
keep being answered promptly. Measured over real sockets against ``pollable serve``,
with the poller in a process of its own so that the client's own work (encoding ten
megabytes) cannot delay it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conformance.live import LiveServer, Servers, Tenant, provision

pytestmark = pytest.mark.slow

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
#: How much the poller's 95th percentile may grow while the big jobs are made: about 50 ms.
#: On a quiet 2-core machine, over five runs, the p95 grew by 10-25 ms and the p99 by
#: 43-61 ms (the GIL handoffs between the event loop and the threads that plan and store
#: the big job); the worst single poll took 77-101 ms.
STALL_BOUND = 0.050
#: No single poll may wait this long: a stall of the event loop would show here.
WORST_BOUND = 0.250
POLLER = """
import sys, time, httpx
url, key, out, seconds = sys.argv[1:5]
with httpx.Client(timeout=30) as client, open(out, "w") as sink:
    end = time.time() + float(seconds)
    while time.time() < end:
        started = time.time()
        assert client.get(url, headers={"Authorization": "Bearer " + key}).status_code == 200
        sink.write(f"{started} {time.time() - started}\\n")
        sink.flush()
        time.sleep(0.005)
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, Tenant]]]:
    url = f"sqlite:///{tmp_path / 'stalls.db'}"
    tenants = provision(url, "big", "small")
    servers = Servers(tmp_path)
    try:
        yield servers.start(url, time_scale=1.0), tenants
    finally:
        servers.stop_all()


def latencies(path: Path, since: float, until: float) -> list[float]:
    rows = (line.split() for line in path.read_text().splitlines() if line.strip())
    return [float(took) for started, took in rows if since <= float(started) <= until]


def test_big_creations_do_not_stall_other_tenants(
    served: tuple[LiveServer, dict[str, Tenant]], tmp_path: Path
) -> None:
    server, tenants = served
    small, big = tenants["small"], tenants["big"]
    body = {"space_id": SPACE_ID, "sources": [{"content": "Ada met Alan."}]}
    created = httpx.post(f"{server.url}/api/v1/sources", json=body, headers=small.crosmos)
    job = f"{server.url}/api/v1/jobs/{created.json()['job_id']}"
    bucket = {
        "bucket_name": "acme-docs", "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "processing_type": "basic", "max_files": 100_000,
    }  # fmt: skip
    text = ("Ada met Alan in London. " * 45_000)[:1_000_000]
    big_jobs = [
        ("/v2/collections/docs/index/s3", json.dumps(bucket).encode(), big.captain),
        ("/api/v1/sources", json.dumps({"space_id": SPACE_ID, "sources": [{"content": text}] * 10}).encode(), big.crosmos),
    ]  # fmt: skip
    record = tmp_path / "polls.txt"
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, job, small.crosmos_key, str(record), "120"]
    )
    try:
        time.sleep(2.0)
        quiet = latencies(record, 0, time.time())
        started = time.time()
        for path, payload, headers in big_jobs:
            made = httpx.post(f"{server.url}{path}", content=payload, timeout=120,
                              headers={**headers, "Content-Type": "application/json"})  # fmt: skip
            assert made.status_code == 202, made.text
        finished = time.time()
        time.sleep(0.1)
    finally:
        poller.kill()
        poller.wait()
    during = latencies(record, started, finished)
    assert len(quiet) > 20 and len(during) > 20, "the poller was starved of answers"
    p95, p99 = (statistics.quantiles(during, n=100)[i] for i in (94, 98))
    quiet_p95, quiet_p99 = (statistics.quantiles(quiet, n=100)[i] for i in (94, 98))
    print(f"polls: quiet p99 {quiet_p99 * 1000:.1f} ms; during the big creations "
          f"({finished - started:.1f} s) n={len(during)}, median "
          f"{statistics.median(during) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, "
          f"worst {max(during) * 1000:.1f} ms")  # fmt: skip
    assert p95 - quiet_p95 <= STALL_BOUND
    assert max(during) <= WORST_BOUND
