"""The store goes away mid-load and comes back: pollable answers in contract meanwhile (503
with ``Retry-After`` in each API's error shape), never dies, and serves again by itself.

PostgreSQL is a private cluster of the test's own (``tests.postgres.PrivateCluster``),
stopped and started under load; the shared server is never touched. SQLite's file is
made unwritable (``chattr +i``, which needs root) or its disk full (a file-size limit
set on the running server, ``RLIMIT_FSIZE``: writes past it fail with ``EFBIG``, and
Python ignores ``SIGXFSZ``), then given back.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.conformance.bodies import SPACE_ID
from tests.conformance.live import LiveServer, Servers, Tenant, free_port, provision
from tests.conformance.load import STEPS, Load

pytestmark = pytest.mark.slow

#: How long the store stays away while the load goes on.
OUTAGE = 3.0
#: The load is faster than a tenant's default rate limit; its 429s are beside the point.
NO_RATE_LIMIT = {"POLLABLE_RATE_LIMIT": "0"}


def known_jobs(base: str, who: Tenant) -> tuple[str, str]:
    """A Captain job and a Crosmos job, for the load to poll."""
    body = {"url": "https://example.com/known.pdf", "processing_type": "basic"}
    made = httpx.post(f"{base}/v2/collections/load/index/url", json=body, headers=who.captain)
    assert made.status_code == 202, made.text
    sources = {"space_id": SPACE_ID, "sources": [{"content": "Ada wrote programs."}]}
    stored = httpx.post(f"{base}/api/v1/sources", json=sources, headers=who.crosmos)
    assert stored.status_code == 202, stored.text
    return str(made.json()["job_id"]), str(stored.json()["job_id"])


def all_listed(base: str, who: Tenant, job_ids: list[str]) -> list[str]:
    """The acknowledged jobs a server no longer finds."""
    with httpx.Client(base_url=base, timeout=10.0) as http:
        return [
            job_id
            for job_id in job_ids
            if http.get(f"/v2/jobs/{job_id}", headers=who.captain).status_code != 200
        ]


@pytest.fixture
def cluster() -> Iterator[postgres.PrivateCluster]:
    private = postgres.PrivateCluster(free_port())
    try:
        private.start()
        yield private
    finally:
        private.destroy()


def through_outage(
    server: LiveServer,
    who: Tenant,
    take_away: Callable[[], None],
    give_back: Callable[[], None],
    figures: list[str],
    *,
    reads_fail: bool,
    exact: bool = True,
    quiet: float = 0.0,
) -> None:
    """Load ``server``; take its store away (``take_away``) once it serves, for ``OUTAGE``
    seconds after its first 503s; give it back; wait until every operation answers 2xx
    again. Every answer in contract (2xx or 503), none missing, no acknowledged job lost,
    and the same process serving throughout. With ``reads_fail``, every operation (the
    control plane's and the health check too) answered 503 while the store was away;
    otherwise creations did. With ``exact``, no creation that was not acknowledged left a
    job (a commit whose acknowledgement a dying database never sent is the one exception,
    which only an ``Idempotency-Key`` settles: PostgreSQL counts them, asserting none).
    With ``quiet``, the load pauses that long (no request in flight, the request log
    written) before the store is taken away, and resumes after."""
    assert server.process is not None
    pid = server.process.pid
    load = Load(server.url, who, *known_jobs(server.url, who)).start()
    try:
        load.wait_for(20, 200, after=0.0, timeout=30.0)
        if quiet:
            load.pause()
            time.sleep(quiet)
        down = time.monotonic()
        take_away()
        load.resume()
        load.wait_for(10, 503, after=down, timeout=30.0)
        time.sleep(OUTAGE)
        give_back()
        up = time.monotonic()
        back = load.recovered(up, timeout=60.0)
        load.wait_for(20, 202, after=back, timeout=30.0)
    finally:
        load.stop()
    tally = load.tally
    unavailable = sum(1 for a in load.answers if a.status == 503)
    missing = all_listed(server.url, who, load.acked)
    listed = httpx.get(f"{server.url}/v2/jobs", params={"limit": 1}, headers=who.captain)
    unacknowledged = listed.json()["total"] - 1 - len(load.acked)  # 1: the known job
    figures.append(
        f"{sum(tally.statuses.values())} answers {dict(sorted(tally.statuses.items()))}, "
        f"{len(tally.breaches)} out of contract, {sum(tally.unanswered.values())} unanswered; "
        f"store away {up - down:.1f}s, {unavailable} answers 503; every operation answering "
        f"again {back - up:.2f}s after it was back; {len(load.acked)} acknowledged, "
        f"{len(missing)} lost, {unacknowledged} stored unacknowledged"
    )
    assert not tally.breaches, tally.breaches[:5]
    assert not tally.unanswered, tally.unanswered
    assert set(tally.statuses) <= {200, 202, 503}, tally.statuses
    assert not missing, missing[:5]
    assert unacknowledged >= 0 and (unacknowledged == 0 or not exact), unacknowledged
    refused = {a.operation for a in load.answers if a.status == 503}
    assert refused == (set(STEPS) if reads_fail else refused | {"create"}), refused
    assert server.process.poll() is None, server.output()[-2000:]
    assert server.process.pid == pid, "the same process serves throughout"


@pytest.mark.postgres
def test_postgresql_restarted_mid_load(
    servers: Servers, cluster: postgres.PrivateCluster, figures: list[str]
) -> None:
    url = cluster.url + "?connect_timeout=1"
    acme = provision(url, "acme")["acme"]
    server = servers.start(url, env=NO_RATE_LIMIT)
    through_outage(server, acme, cluster.stop, cluster.start, figures, reads_fail=True, exact=False)


@pytest.mark.parametrize("suffix", ["-shm", "-wal"])
def test_sqlite_file_made_immutable_mid_load(
    servers: Servers, tmp_path: Path, suffix: str, figures: list[str]
) -> None:
    """``-shm``: SQLite writes its mapping, where an immutable file is SIGBUS (the store
    refuses first); ``-wal``: every commit writes it (EPERM). The main file is written
    only by checkpoints, which SQLite retries later: making it immutable fails nothing.

    The ``-shm`` flag is set while no write is under way (the load paused, the request log
    written): a ``COMMIT`` already past the store's last check when the flag lands (its
    fsync: milliseconds) still faults, and that the store cannot prevent
    (``SQLiteStore._check_files``)."""
    postgres.require_root()
    url = f"sqlite:///{tmp_path}/live.db"
    acme = provision(url, "acme")["acme"]
    server = servers.start(url, env=NO_RATE_LIMIT)
    target = f"{tmp_path}/live.db{suffix}"

    def chattr(flag: str) -> None:
        subprocess.run(["chattr", flag, target], check=True)

    try:
        through_outage(
            server, acme, lambda: chattr("+i"), lambda: chattr("-i"), figures,
            reads_fail=suffix == "-shm", quiet=1.0 if suffix == "-shm" else 0.0,
        )  # fmt: skip
    finally:
        subprocess.run(["chattr", "-i", target], check=False)


def test_sqlite_disk_full_mid_load(servers: Servers, tmp_path: Path, figures: list[str]) -> None:
    """The disk is "full" for the server: a file-size limit below every offset it writes
    (``prlimit`` on its process, no privilege needed), so each write fails with EFBIG."""
    url = f"sqlite:///{tmp_path}/live.db"
    acme = provision(url, "acme")["acme"]
    server = servers.start(url, env=NO_RATE_LIMIT)
    assert server.process is not None
    pid = server.process.pid
    unlimited = resource.prlimit(pid, resource.RLIMIT_FSIZE)

    def fill() -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, unlimited[1]))

    def free() -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)

    through_outage(server, acme, fill, free, figures, reads_fail=False)

    # Whatever still kills the process (a fault inside a driver, a COMMIT caught by a
    # flag) says so, with the Python stack it hit, in the server's output.
    os.kill(pid, signal.SIGBUS)
    assert server.process.wait(30) == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in server.output()
