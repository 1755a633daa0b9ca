"""Scale: GET cost against the number of jobs in the store, creation throughput, and polls
per second with 1, 2 and 3 server processes on one PostgreSQL.

    python -m bench.scale                    # the full run (seeds 1,000,000 jobs twice)
    python -m bench.scale --quick            # smoke run: 1,000 vs 20,000 jobs, short rounds
    python -m bench.scale --only create      # one part: get, create or servers
    python -m bench.scale --big 200000 --rounds 4 --duration 5

Three parts, each with its baseline in the same run and interleaved rounds (round r runs
every target, in an order rotated by r, so noise on a shared machine hits them alike):

- ``get``: ``GET /api/v1/jobs/{id}`` on a store of 1,000 jobs (the baseline) and on one of
  1,000,000, on SQLite and on PostgreSQL, one server per store. Each request names one of
  1,000 jobs sampled evenly across its store (a wrk Lua script cycles through them), so
  the big store is read all over, not at one hot row. The stores are seeded in this
  process through ``Store.create_job``, many calls at once (on SQLite the writer commits
  concurrent creates together), with jobs shaped as ``POST /api/v1/sources`` with 3
  sources makes them; the seeding time is measured. Target: big / small within 1.2x.
- ``create``: ``POST /api/v1/sources`` (3 sources) and ``POST
  /v2/collections/{c}/index/url`` (3 URLs) on SQLite and on PostgreSQL, one server
  process each, wrk -c32 with a Lua script that gives every request its own body. Issue
  11's target: at least 2,000 Crosmos creations a second on each backend. The baseline,
  in the same rounds: the create path as it was before (``bench.serve
  --one-commit-per-create --plan-on-thread``: a transaction and an fsync per create, and
  every plan made on a thread), each variant on a store of its own.
- ``servers``: the Crosmos GET with 1, 2 and 3 ``pollable serve`` processes (the command
  itself, rate limit out of reach) on one PostgreSQL. No load
  balancer: one wrk per server, the 32 connections split between them (11+11+10 for 3),
  started together; req/s summed. Server CPU per request (/proc) beside it.

Servers are ``bench.serve`` (``create_app(Settings)`` under uvicorn, one worker, response
validation and the request log on, as ``pollable serve`` runs; the rate limit set out of
reach). PostgreSQL databases ``pollable_scale_*`` are created on ``--postgres`` and
dropped afterwards. Raw results go to bench/results/scale-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pollable.server.provision import TenantKeys

from . import harness as h

#: The GET target: a store this many times larger may cost at most this much more a GET.
GET_RATIO = 1.2
#: Issue 11: Crosmos creations (3 sources each) a second, one server process.
CREATE_TARGET = 2_000
#: Jobs each GET load cycles through, sampled evenly across the store.
SAMPLED = 1_000
SPACE_ID = "6f1c2b9e-4d1a-4c1e-9a51-3c0e2f6b7a10"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--only",
        choices=("get", "create", "servers"),
        action="append",
        help="run only this part (repeatable); default: all three",
    )
    parser.add_argument("--small", type=int, default=1_000, help="jobs in the small store")
    parser.add_argument("--big", type=int, default=1_000_000, help="jobs in the big store")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (32)")
    parser.add_argument(
        "--backends",
        default="sqlite,postgres",
        help="comma-separated: sqlite, postgres (default: both)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL URL whose server the bench may create databases on",
    )
    parser.add_argument(
        "--max-servers", type=int, default=3, help="servers part: up to this many processes (3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1,000 vs 20,000 jobs, 1 round x 2 s"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.big, args.rounds, args.duration, args.warmup = 20_000, 1, 2.0, 1.0
    args.parts = args.only or ["get", "create", "servers"]
    args.backend_list = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backend_list) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    if "postgres" not in args.backend_list and "servers" in args.parts:
        args.parts.remove("servers")
    return args


# -- PostgreSQL databases -----------------------------------------------------------------


class Databases:
    """``pollable_scale_<name>`` databases on the server of ``base``, dropped on exit."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.made: list[str] = []

    def url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.base)._replace(path=f"/pollable_scale_{name}"))

    def create(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        db = f"pollable_scale_{name}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        self.made.append(db)
        return self.url(name)

    def drop_all(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.base, autocommit=True) as conn:
            for db in self.made:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(db)
                        )
                    )
        self.made.clear()


@contextlib.contextmanager
def stores(args: argparse.Namespace, work: Path) -> Iterator[Databases]:
    databases = Databases(args.postgres)
    try:
        yield databases
    finally:
        if databases.made:
            h.log(f"dropping {len(databases.made)} PostgreSQL database(s)")
            databases.drop_all()


def store_url(backend: str, name: str, work: Path, databases: Databases) -> str:
    if backend == "sqlite":
        return f"sqlite:///{work}/{name}.db"
    return databases.create(name)


# -- seeding ------------------------------------------------------------------------------


def crosmos_job(job_id: str, now: float) -> Any:
    """A ``NewJob`` as ``POST /api/v1/sources`` with 3 sources and ``Prefer:
    scenario=instant`` stores it (the handler's own work items and planner)."""
    from pollable.handlers.crosmos.jobs import _work
    from pollable.lifecycle.planner import plan_job
    from pollable.lifecycle.scenarios import get as scenario
    from pollable.store.base import NewJob

    work = [
        _work(str(uuid.uuid4()), f"Meeting notes {i}: the team agreed to ship the API. " * 4)
        for i in range(3)
    ]
    plan, items = plan_job(
        job_id=job_id, created_at=now, scenario=scenario("instant"), work=work, seed=job_id
    )
    return NewJob(
        api="crosmos", kind="sources", plan=plan, items=items, attrs={"space_id": SPACE_ID}
    )


def seed(url: str, jobs: int, *, batch: int = 2_000) -> tuple[TenantKeys, list[str], float]:
    """A tenant and ``jobs`` Crosmos jobs through ``Store.create_job``, ``batch`` calls at a
    time; the ids of ``SAMPLED`` of them spread evenly over the store, and the seconds the
    creates took."""
    from pollable.handlers.registry import JOB_APIS
    from pollable.server.provision import provision_tenant
    from pollable.store import open_store

    async def run() -> tuple[TenantKeys, list[str], float]:
        store = open_store(url)
        await store.open()
        try:
            tenant = await provision_tenant(store, "bench", JOB_APIS, credits=1e15)
            template = crosmos_job(str(uuid.uuid4()), time.time())
            every = max(1, jobs // SAMPLED)
            sampled: list[str] = []
            start = time.perf_counter()
            last = start
            for first in range(0, jobs, batch):
                ids = [str(uuid.uuid4()) for _ in range(first, min(jobs, first + batch))]
                made = [
                    dataclasses.replace(
                        template, plan=dataclasses.replace(template.plan, job_id=job_id)
                    )
                    for job_id in ids
                ]
                await asyncio.gather(*(store.create_job(tenant.tenant.id, job) for job in made))
                sampled += [j for n, j in enumerate(ids, first) if n % every == 0]
                now = time.perf_counter()
                if now - last > 10 or first + batch >= jobs:
                    done = min(jobs, first + batch)
                    h.log(
                        f"  seeded {done:,}/{jobs:,} jobs ({done / (now - start):,.0f}/s, "
                        f"{now - start:.0f}s)"
                    )
                    last = now
            return tenant, sampled[:SAMPLED], time.perf_counter() - start
        finally:
            await store.close()

    return asyncio.run(run())


# -- wrk scripts --------------------------------------------------------------------------


def cycling_gets(paths: Sequence[str]) -> str:
    """A wrk script whose requests cycle through ``paths`` (each connection from its own
    offset)."""
    listed = ",".join(json.dumps(p) for p in paths)
    return f"""
local paths = {{{listed}}}
local i = 0
init = function(args) i = math.random(#paths) end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def posts(path: str, body_template: str) -> str:
    """A wrk script POSTing JSON to ``path``; ``%d`` in the template becomes a counter, so
    every request has its own body (and its own plan seed)."""
    return f"""
local n = 0
local template = {json.dumps(body_template)}
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = string.gsub(template, "%%d", tostring(n) .. "-" .. tostring(math.random(1e9)))
  return wrk.format("POST", {json.dumps(path)}, nil, body)
end
"""


CROSMOS_BODY = json.dumps(
    {
        "space_id": SPACE_ID,
        "sources": [
            {"content": f"Meeting notes %d/{i}: the team agreed to ship the ingestion API."}
            for i in range(3)
        ],
    }
)
CAPTAIN_BODY = json.dumps(
    {
        "urls": [f"https://example.com/docs/%d/page-{i}.html" for i in range(3)],
        "processing_type": "basic",
    }
)


# -- running load -------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float
    #: The machine's CPUs busy meanwhile (all processes, the other users' too), 0-1.
    busy: float = 0.0


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measure(
    servers: Sequence[h.Server],
    path: str,
    headers: dict[str, str],
    lua: str,
    *,
    duration: float,
    connections: int,
) -> Sample:
    """One load run over ``servers`` at once: one wrk per server, ``connections`` split
    between them; req/s summed, latencies the worst server's median, CPU per request over
    all the servers."""
    from concurrent.futures import ThreadPoolExecutor

    shares = [connections // len(servers)] * len(servers)
    for i in range(connections % len(servers)):
        shares[i] += 1
    before = [h.cpu_seconds(s.pid) for s in servers]
    ticks = machine_ticks()
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(
            pool.map(
                lambda pair: h.run_wrk(
                    pair[0].url + path,
                    headers,
                    duration=duration,
                    connections=pair[1],
                    lua=lua,
                ),
                zip(servers, shares, strict=True),
            )
        )
    spent = sum(h.cpu_seconds(s.pid) - b for s, b in zip(servers, before, strict=True))
    busy, total = (after - then for after, then in zip(machine_ticks(), ticks, strict=True))
    requests = sum(r.requests for r in results)
    return Sample(
        rps=sum(r.rps for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=requests,
        cpu_us=spent / max(requests, 1) * 1e6,
        busy=busy / max(total, 1),
    )


@dataclasses.dataclass
class Target:
    name: str
    servers: list[h.Server]
    path: str
    headers: dict[str, str]
    lua: str


def interleave(
    args: argparse.Namespace, targets: Sequence[Target], part: str
) -> dict[str, list[Sample]]:
    """Warm every target up, then ``args.rounds`` rounds over all of them, rotated."""
    for target in targets:
        if args.warmup > 0:
            h.log(f"{part}: warm-up {target.name} ({args.warmup:g}s)")
            measure(
                target.servers,
                target.path,
                target.headers,
                target.lua,
                duration=args.warmup,
                connections=args.connections,
            )
    samples: dict[str, list[Sample]] = {t.name: [] for t in targets}
    total, done = args.rounds * len(targets), 0
    for round_no in range(args.rounds):
        shift = round_no % len(targets)
        for target in [*targets[shift:], *targets[:shift]]:
            sample = measure(
                target.servers,
                target.path,
                target.headers,
                target.lua,
                duration=args.duration,
                connections=args.connections,
            )
            samples[target.name].append(sample)
            done += 1
            h.log(
                f"{part} [{done}/{total}] round {round_no + 1}/{args.rounds} {target.name:24} "
                f"{sample.rps:8.0f} req/s  p50 {sample.p50_ms:6.2f} ms  "
                f"p99 {sample.p99_ms:7.2f} ms  {sample.cpu_us:6.0f} us CPU/req  "
                f"errors {sample.errors}"
            )
    return samples


# -- the parts ----------------------------------------------------------------------------


def part_get(args: argparse.Namespace, work: Path, databases: Databases) -> dict[str, Any]:
    seeding: dict[str, dict[str, float]] = {}
    targets: list[Target] = []
    servers: list[h.Server] = []
    try:
        for backend in args.backend_list:
            for size_name, size in (("small", args.small), ("big", args.big)):
                url = store_url(backend, f"get_{size_name}", work, databases)
                h.log(f"get: seeding {size:,} jobs into the {size_name} {backend} store")
                tenant, sampled, seconds = seed(url, size)
                seeding.setdefault(backend, {})[size_name] = seconds
                name = f"{backend}/{size:,}"
                server = h.pollable_server(f"get-{backend}-{size_name}", url, work).start()
                servers.append(server)
                paths = [f"/api/v1/jobs/{job_id}" for job_id in sampled]
                for path in (paths[0], paths[len(paths) // 2], paths[-1]):
                    h.fetch(server.url, path, tenant.crosmos)  # answers 200, or stops here
                targets.append(
                    Target(name, [server], paths[0], tenant.crosmos, cycling_gets(paths))
                )
        samples = interleave(args, targets, "get")
    finally:
        for server in servers:
            server.stop()
    return {"seeding_seconds": seeding, "samples": samples}


def part_create(args: argparse.Namespace, work: Path, databases: Databases) -> dict[str, Any]:
    targets: list[Target] = []
    servers: list[h.Server] = []
    try:
        index = "/v2/collections/bench/index/url"
        for backend in args.backend_list:
            for variant, extra in CREATE_VARIANTS.items():
                url = store_url(backend, f"create_{variant}", work, databases)
                tenant = h.provision(url, credits=1e15)
                server = h.pollable_server(f"create-{backend}-{variant}", url, work, extra=extra)
                servers.append(server.start())
                for api, path, body in (
                    ("crosmos", "/api/v1/sources", CROSMOS_BODY),
                    ("captain", index, CAPTAIN_BODY),
                ):
                    headers = tenant.crosmos if api == "crosmos" else tenant.captain
                    targets.append(
                        Target(
                            f"{backend}/{api}/{variant}",
                            [server],
                            path,
                            headers,
                            posts(path, body),
                        )
                    )
        samples = interleave(args, targets, "create")
    finally:
        for server in servers:
            server.stop()
    return {"samples": samples}


def part_servers(args: argparse.Namespace, work: Path, databases: Databases) -> dict[str, Any]:
    url = store_url("postgres", "servers", work, databases)
    h.log(f"servers: seeding {args.small:,} jobs into PostgreSQL")
    tenant, sampled, _ = seed(url, args.small)
    paths = [f"/api/v1/jobs/{job_id}" for job_id in sampled]
    servers: list[h.Server] = []
    try:
        for n in range(args.max_servers):
            servers.append(cli_server(f"servers-{n + 1}", url, work).start())
            h.fetch(servers[-1].url, paths[0], tenant.crosmos)
        targets = [
            Target(f"{n} server{'s' if n > 1 else ''}", servers[:n], paths[0], tenant.crosmos,
                   cycling_gets(paths))
            for n in range(1, args.max_servers + 1)
        ]  # fmt: skip
        samples = interleave(args, targets, "servers")
    finally:
        for server in servers:
            server.stop()
    return {"samples": samples}


def cli_server(name: str, url: str, work: Path) -> h.Server:
    """``pollable serve`` itself (the command a deployment runs), with its rate limit out
    of reach and uvicorn's access log off (``--log-level warning``)."""
    port = h.free_port()
    pollable = str(Path(sys.executable).parent / "pollable")
    argv = [
        pollable, "serve", "--store", url, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--rate-limit", "1e9", "--rate-burst", str(10**9),
    ]  # fmt: skip
    return h.Server(name, argv, port, work)


#: The create path now, and as it was before group commit and planning small creates on the
#: event loop (``bench.serve``'s baseline flags), each on a store of its own.
CREATE_VARIANTS = {"now": (), "before": ("--one-commit-per-create", "--plan-on-thread")}

PARTS = {"get": part_get, "create": part_create, "servers": part_servers}


# -- reporting ----------------------------------------------------------------------------


def _row(name: str, runs: Sequence[Sample]) -> list[str]:
    return [
        name,
        f"{h.median([r.rps for r in runs]):,.0f}",
        f"{h.median([r.p50_ms for r in runs]):.2f}",
        f"{h.median([r.p99_ms for r in runs]):.2f}",
        f"{h.median([r.cpu_us for r in runs]):,.0f}",
        f"{h.median([r.busy for r in runs]):.0%}",
        ", ".join(f"{r.rps:,.0f}" for r in runs),
        str(sum(r.errors for r in runs)),
    ]


HEADERS = [
    "target",
    "req/s (median)",
    "p50 ms",
    "p99 ms",
    "server CPU us/req",
    "machine busy",
    "per round",
    "errors",
]


def _ratios(a: Sequence[Sample], b: Sequence[Sample], attr: str) -> list[float]:
    return [getattr(x, attr) / getattr(y, attr) for x, y in zip(a, b, strict=True)]


def report(
    args: argparse.Namespace, env: dict[str, Any], results: dict[str, Any]
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    print()
    print(f"Environment: {h.describe(env)}; load average {os.getloadavg()[0]:.1f} at the end")
    if "get" in results:
        samples = results["get"]["samples"]
        print()
        print(
            f"## GET /api/v1/jobs/{{id}}: {args.small:,} vs {args.big:,} jobs in the store — "
            f"{args.rounds} rounds x {args.duration:g} s, wrk -t1 -c{args.connections}, "
            f"{SAMPLED:,} jobs cycled"
        )
        print()
        print(h.table(HEADERS, [_row(name, runs) for name, runs in samples.items()]))
        print()
        for backend in args.backend_list:
            small, big = samples[f"{backend}/{args.small:,}"], samples[f"{backend}/{args.big:,}"]
            rps = _ratios(small, big, "rps")  # small/big req/s: how much more a big GET costs
            cpu = _ratios(big, small, "cpu_us")
            seeded = results["get"]["seeding_seconds"][backend]
            verdict = "PASS" if h.median(rps) <= GET_RATIO else "FAIL"
            summary[f"get_{backend}"] = {"cost_ratio": h.median(rps), "cpu_ratio": h.median(cpu)}
            print(
                f"- {backend}: a GET on {args.big:,} jobs costs {h.median(rps):.2f}x one on "
                f"{args.small:,} (median of per-round req/s ratios small/big, range "
                f"{min(rps):.2f}-{max(rps):.2f}; server CPU per request {h.median(cpu):.2f}x, "
                f"range {min(cpu):.2f}-{max(cpu):.2f}): {verdict} (<= {GET_RATIO}). Seeding "
                f"{args.big:,} jobs through Store.create_job took {seeded['big']:.0f} s "
                f"({args.big / seeded['big']:,.0f} jobs/s)"
            )
    if "create" in results:
        samples = results["create"]["samples"]
        print()
        print(
            f"## Creations, one server process — {args.rounds} rounds x {args.duration:g} s, "
            f"wrk -t1 -c{args.connections}; Crosmos POST /api/v1/sources (3 sources), Captain "
            "POST /v2/collections/bench/index/url (3 URLs)"
        )
        print()
        print(h.table(HEADERS, [_row(name, runs) for name, runs in samples.items()]))
        print()
        for backend in args.backend_list:
            for api in ("crosmos", "captain"):
                now, before = samples[f"{backend}/{api}/now"], samples[f"{backend}/{api}/before"]
                gain = _ratios(now, before, "rps")
                cpu = _ratios(now, before, "cpu_us")
                rate = h.median([r.rps for r in now])
                summary[f"create_{backend}_{api}"] = {"rps": rate, "gain": h.median(gain)}
                verdict = ""
                if api == "crosmos":
                    verdict = " " + ("PASS" if rate >= CREATE_TARGET else "FAIL")
                    verdict += f" (>= {CREATE_TARGET:,});"
                print(
                    f"- {backend} {api}: {rate:,.0f} creations/s;{verdict} {h.median(gain):.2f}x "
                    f"the creations of the create path before (median of per-round ratios, "
                    f"range {min(gain):.2f}-{max(gain):.2f}), at {h.median(cpu):.2f}x its server "
                    "CPU per create"
                )
    if "servers" in results:
        samples = results["servers"]["samples"]
        names = list(samples)
        print()
        print(
            f"## Polls per second, N server processes on one PostgreSQL — {args.rounds} rounds x "
            f"{args.duration:g} s, {args.connections} connections split over one wrk per server"
        )
        print()
        print(h.table(HEADERS, [_row(name, runs) for name, runs in samples.items()]))
        print()
        for name in names[1:]:
            gain = _ratios(samples[name], samples[names[0]], "rps")
            summary[f"servers_{name}"] = h.median(gain)
            print(
                f"- {name}: {h.median(gain):.2f}x the polls of 1 server (median of per-round "
                f"ratios, range {min(gain):.2f}-{max(gain):.2f})"
            )
    path = h.save_results(
        "scale", {"environment": env, "args": vars(args), "summary": summary, "results": results}
    )
    print(f"- Raw numbers: {path.relative_to(h.ROOT)}")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = h.environment("wrk")
    h.log(f"environment: {h.describe(env)}")
    if h.wrk_path() is None:
        raise SystemExit("bench.scale needs wrk on PATH (its Lua scripts make the requests)")
    results: dict[str, Any] = {}
    with h.workdir("scale") as work, stores(args, work) as databases:
        for part in args.parts:
            h.log(f"== {part}")
            results[part] = PARTS[part](args, work, databases)
    report(args, env, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
