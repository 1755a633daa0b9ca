"""No request holds up other tenants' requests: while one tenant creates the largest jobs
the contracts allow (a 100,000-file bucket; ten 1 MB sources), another tenant's polls
keep being answered promptly. Measured over a real socket against ``pollable serve``."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conformance.live import LiveServer, Servers, Tenant, provision

pytestmark = pytest.mark.slow

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
#: How much longer than its quiet worst case a poll may take while the big job is made.
#: The issue's bound is "about 50 ms"; the machine running the suite is shared and noisy.
STALL_BOUND = 0.050


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, Tenant]]]:
    url = f"sqlite:///{tmp_path / 'stalls.db'}"
    tenants = provision(url, "big", "small")
    servers = Servers(tmp_path)
    try:
        yield servers.start(url, time_scale=1.0), tenants
    finally:
        servers.stop_all()


class Prober:
    """Polls one job of the small tenant in a loop and records each answer's latency."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                assert client.get(self.url, headers=self.headers).status_code == 200
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.002)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def worst_since(self, start: int) -> float:
        return max(self.latencies[start:])


def test_big_creations_do_not_stall_other_tenants(
    served: tuple[LiveServer, dict[str, Tenant]],
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
    sources = {"space_id": SPACE_ID, "sources": [{"content": text}] * 10}
    with Prober(job, small.crosmos) as prober:
        time.sleep(1.0)
        quiet = statistics.quantiles(prober.latencies, n=100)[98]
        mark = len(prober.latencies)
        made = httpx.post(f"{server.url}/v2/collections/docs/index/s3", json=bucket,
                          headers=big.captain, timeout=120)  # fmt: skip
        assert made.status_code == 202, made.text
        made = httpx.post(f"{server.url}/api/v1/sources", json=sources, headers=big.crosmos,
                          timeout=120)  # fmt: skip
        assert made.status_code == 202, made.text
        time.sleep(0.2)
    during = prober.latencies[mark:]
    assert len(during) > 20, "the prober was starved of answers"
    worst = max(during)
    print(f"polls: quiet p99 {quiet * 1000:.1f} ms; during big creations n={len(during)}, "
          f"median {statistics.median(during) * 1000:.1f} ms, worst {worst * 1000:.1f} ms")  # fmt: skip
    assert worst - quiet <= STALL_BOUND
