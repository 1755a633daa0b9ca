"""Steady load on a live server from a few threads, every answer checked against the served
contract, for the proofs that take the store away and give it back mid-load."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.conformance.in_contract import Tally
from tests.conformance.live import Tenant

STEPS = ("create", "poll", "crosmos", "list", "clocks", "health")


@dataclass(frozen=True)
class Answer:
    at: float
    operation: str
    status: int | None


@dataclass
class Load:
    """Threads cycling through a Captain create, a poll of a known job, a Crosmos poll, a
    listing, a control-plane read and the health check, until ``stop``."""

    base: str
    who: Tenant
    #: A Captain job and a Crosmos job to poll.
    job_id: str
    crosmos_job_id: str
    threads: int = 6
    tally: Tally = field(default_factory=Tally)
    answers: list[Answer] = field(default_factory=list)
    #: The job ids of acknowledged (202) creations.
    acked: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    #: Set while the threads may send; cleared by ``pause``.
    _running: threading.Event = field(default_factory=threading.Event)
    _in_flight: int = 0
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        self._running.set()
        self._workers = [threading.Thread(target=self._run, args=(n,)) for n in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def pause(self) -> None:
        """Stop sending, and return once no request is in flight."""
        self._running.clear()
        while True:
            with self._lock:
                if self._in_flight == 0:
                    return
            time.sleep(0.01)

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self, worker: int) -> None:
        captain, crosmos = self.who.captain, self.who.crosmos
        steps = itertools.cycle(STEPS)
        counter = itertools.count()
        with httpx.Client(base_url=self.base, timeout=30.0) as http:
            for step in itertools.islice(steps, worker, None):
                self._running.wait()
                if self._stop.is_set():
                    return
                with self._lock:
                    if not self._running.is_set():
                        continue
                    self._in_flight += 1
                n = f"{worker}-{next(counter)}"
                try:
                    if step == "create":
                        body = {"url": f"https://example.com/{n}.pdf", "processing_type": "basic"}
                        response = http.post("/v2/collections/load/index/url", json=body,
                                             headers=captain)  # fmt: skip
                    elif step == "poll":
                        response = http.get(f"/v2/jobs/{self.job_id}", headers=captain)
                    elif step == "crosmos":
                        response = http.get(f"/api/v1/jobs/{self.crosmos_job_id}", headers=crosmos)
                    elif step == "list":
                        response = http.get("/v2/jobs", params={"limit": 5}, headers=captain)
                    elif step == "clocks":
                        response = http.get("/sandbox/v1/clocks", headers=captain)
                    else:
                        response = http.get("/health")
                except httpx.TransportError as exc:
                    self.tally.lost(exc)
                    self._answer(step, None)
                    continue
                finally:
                    with self._lock:
                        self._in_flight -= 1
                self.tally.check(response)
                self._answer(step, response.status_code)
                if step == "create" and response.status_code == 202:
                    with self._lock:
                        self.acked.append(response.json()["job_id"])

    def _answer(self, step: str, status: int | None) -> None:
        with self._lock:
            self.answers.append(Answer(time.monotonic(), step, status))

    def wait_for(self, count: int, status: int, *, after: float, timeout: float) -> float:
        """When (monotonic) the ``count``-th answer ``status`` after ``after`` came."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = [a.at for a in self.answers if a.at > after and a.status == status]
            if len(seen) >= count:
                return seen[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(seen)} answers {status} after {timeout}s")
            time.sleep(0.05)

    def recovered(self, after: float, *, timeout: float) -> float:
        """When every operation had answered 2xx again after ``after``: the last of the
        first successes of each."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                firsts: dict[str, float] = {}
                for a in self.answers:
                    if a.at > after and a.status is not None and a.status < 300:
                        firsts.setdefault(a.operation, a.at)
            if len(firsts) == len(STEPS):
                return max(firsts.values())
            if time.monotonic() > deadline:
                raise AssertionError(f"not recovered after {timeout}s: only {sorted(firsts)}")
            time.sleep(0.05)
