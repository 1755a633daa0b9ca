"""The hot path: GET of one existing job, pollable against a bare Starlette ceiling.

    python -m bench.hot_path                 # 6 rounds x 5 s per target (about 3.5 minutes)
    python -m bench.hot_path --quick         # smoke run: 1 round x 2 s
    python -m bench.hot_path --rounds 3 --duration 10 --connections 64

One run, on one machine, with the same load generator (wrk -t1 -c32 when installed):

- ceiling: ``bench.ceiling_app``, bare Starlette under uvicorn, answering the very bytes
  pollable answers for the same path (no auth, no store, no validation);
- pollable: ``create_app(Settings)`` under uvicorn (1 worker, loop/http auto, SQLite store),
  response validation on (the default);
- pollable with ``validate_responses=False`` (skip with ``--no-unvalidated``);
- pollable with the request log off (``log_enabled=False``; skip with ``--no-unlogged``):
  the log's cost is the per-round ratio of pollable (log on, the default) to it;
- pollable without polling headers (``bench.serve --no-polling-headers``: job reads answer
  as before ``ETag``/``Retry-After`` existed, on contracts without ``*.polling.json``; skip
  with ``--no-unheaded``): the headers' cost is the per-round ratio of pollable to it;
- Stoplight Prism (``prism mock``) on the very documents pollable serves, the usual
  alternative for a contract mock: it validates the request and answers a static example
  built from the schema, with no job behind it (skip with ``--no-prism``; installed with
  npm into bench/.prism on first use, left out with a note when npm is missing).

Targets: a Crosmos job (``GET /api/v1/jobs/{id}``, completed, 3 sources) and a Captain job
with 50 files (``GET /v2/jobs/{id}``, completed, default page of 50 files). Both jobs are
created over HTTP with the real POST endpoints, so they are shaped exactly like a client's.
They are completed (``Prefer: scenario=instant``) so every round serves the same bytes.
A third target, ``captain-running``, is a Captain job of 50 files in ``scenario=slow`` on a
frozen test clock, moved into its run: it is running (a prefix tally per read, and
``Retry-After`` computed from its plan), yet serves the same bytes every round.

Rounds are interleaved (round r runs every target, in an order rotated by r), so machine
noise hits all targets alike; many short rounds beat a few long ones on a shared, noisy
machine. Reported: median req/s over rounds, median p50/p99, and the ratio to the ceiling
of the same API as the median of the per-round ratios (each measured minutes apart at
most), with their range.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import harness as h


@dataclass(frozen=True)
class Target:
    api: str
    server: str
    path: str
    headers: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.api}/{self.server}"


SERVER_LABELS = {
    "ceiling": "bare Starlette ceiling (same bytes, no validation)",
    "pollable": "pollable (response validation on, request log on)",
    "pollable-novalidate": "pollable (validate_responses=False)",
    "pollable-nolog": "pollable (request log off)",
    "pollable-noheaders": "pollable (no polling headers: ETag, Retry-After)",
    "prism": "Stoplight Prism mock (static example, no state)",
    "fastapi-async": "FastAPI peer as its tutorial writes it, async def (HTTPBearer, "
    "SQLAlchemy session per request, key and row in SQLite, response_model)",
    "fastapi-sync": "FastAPI peer as its tutorial writes it, def (on FastAPI's thread pool)",
    "fastapi-lean": "FastAPI peer, lean, async def (one sqlite3 connection, two queries)",
}
#: The hand-written FastAPI peer (``bench.peer_fastapi``) serves the Crosmos GET only:
#: name -> (style, sync).
PEERS = {
    "fastapi-async": ("tutorial", False),
    "fastapi-sync": ("tutorial", True),
    "fastapi-lean": ("lean", False),
}
DOCUMENTS = {"crosmos": "/openapi.json", "captain": "/v2/openapi.json"}
#: What each baseline leaves out, to report what it costs: variant -> (server, feature).
COSTS = {
    "validation": ("pollable-novalidate", "response validation"),
    "request_log": ("pollable-nolog", "the request log"),
    "polling_headers": ("pollable-noheaders", "polling headers (ETag; Retry-After while running)"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hot_path", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (5)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (1)")
    parser.add_argument("--captain-files", type=int, default=50, help="files in the Captain job")
    parser.add_argument("--crosmos-sources", type=int, default=3, help="sources in the Crosmos job")
    parser.add_argument(
        "--no-unvalidated", action="store_true", help="skip pollable with validate_responses=False"
    )
    parser.add_argument(
        "--no-unlogged", action="store_true", help="skip pollable with the request log off"
    )
    parser.add_argument(
        "--no-unheaded", action="store_true", help="skip pollable without polling headers"
    )
    parser.add_argument("--no-prism", action="store_true", help="skip Stoplight Prism")
    parser.add_argument("--no-peer", action="store_true", help="skip the FastAPI peer")
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if installed (auto), or the Python fallback",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 2 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 2.0, 1, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = h.environment(args.load)
    h.log(f"environment: {h.describe(env)}")
    if not env["load_tool"].startswith("wrk"):
        h.log(
            "WARNING: using the Python load generator, not wrk: it saturates early, so its "
            "numbers are lower bounds, comparable only within this run"
        )
    with h.workdir("hot") as work:
        results = run(args, work)
    report(args, env, results)
    return 0


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    store_url = f"sqlite:///{work}/pollable.db"
    tenant = h.provision(store_url)
    servers: dict[str, h.Server] = {}
    try:
        h.log("starting pollable (response validation on)")
        servers["pollable"] = h.pollable_server("pollable", store_url, work).start()
        base = servers["pollable"].url
        crosmos_id = h.create_crosmos_job(base, tenant, sources=args.crosmos_sources)
        captain_id = h.create_captain_job(
            base,
            tenant,
            collection="hot-path",
            bucket="bench-hot-path",
            max_files=args.captain_files,
            scenario="instant",
        )
        running_id = _running_captain_job(base, tenant)
        paths = {
            "crosmos": (f"/api/v1/jobs/{crosmos_id}", tenant.crosmos),
            "captain": (f"/v2/jobs/{captain_id}", tenant.captain),
            "captain-running": (f"/v2/jobs/{running_id}", tenant.captain),
        }
        bodies = {path: h.fetch(base, path, headers) for path, headers in paths.values()}
        for api, (path, _) in paths.items():
            h.log(f"{api} job: GET {path} answers {len(bodies[path]):,} bytes")

        if not args.no_unvalidated:
            h.log("starting pollable (validate_responses=False), same store")
            servers["pollable-novalidate"] = h.pollable_server(
                "pollable-novalidate", store_url, work, validate_responses=False
            ).start()
        if not args.no_unlogged:
            h.log("starting pollable (request log off), same store")
            servers["pollable-nolog"] = h.pollable_server(
                "pollable-nolog", store_url, work, request_log=False
            ).start()
        if not args.no_unheaded:
            h.log("starting pollable (no polling headers), same store")
            servers["pollable-noheaders"] = h.pollable_server(
                "pollable-noheaders", store_url, work, polling_headers=False
            ).start()
        if not args.no_peer:
            import json

            from .peer_fastapi import build_db

            path = paths["crosmos"][0]
            key = tenant.crosmos["Authorization"].removeprefix("Bearer ")
            build_db(work / "peer.db", key, {crosmos_id: json.loads(bodies[path])})
            for name, (style, sync) in PEERS.items():
                h.log(f"starting the {SERVER_LABELS[name]}")
                servers[name] = h.peer_server(
                    name, work / "peer.db", work, sync=sync, style=style
                ).start()
        h.log("starting the bare Starlette ceiling")
        servers["ceiling"] = h.ceiling_server("ceiling", bodies, work).start()
        prism_bodies: dict[str, int] = {}
        if not args.no_prism:
            for api, url in DOCUMENTS.items():
                document = work / f"{api}.json"
                document.write_bytes(h.fetch(base, url, {}))
                prism = h.prism_server(f"prism-{api}", document, work)
                if prism is None:
                    h.log("npm is not available: Prism is left out of this run")
                    break
                h.log(f"starting Stoplight Prism on the {api} document")
                servers[f"{api}/prism"] = prism.start(timeout=120)

        targets = [
            Target(api, server, path, headers)
            for api, (path, headers) in paths.items()
            for server in (
                "ceiling",
                "pollable",
                "pollable-novalidate",
                "pollable-nolog",
                "pollable-noheaders",
                "prism",
                *PEERS,
            )
            if _server_name(api, server) in servers and (api == "crosmos" or server not in PEERS)
        ]
        for target in targets:  # every server but Prism answers the very same bytes
            got = h.fetch(
                servers[_server_name(target.api, target.server)].url, target.path, target.headers
            )
            if target.server == "prism":
                prism_bodies[target.api] = len(got)
            elif target.server in PEERS:  # the same job; pydantic writes its instants its way
                if not _same_job(got, bodies[target.path]):
                    raise SystemExit(f"{target.name} answers another job than pollable")
            elif got != bodies[target.path]:
                raise SystemExit(f"{target.name} answers different bytes than pollable")

        load = {"connections": args.connections, "threads": args.threads, "tool": args.load}
        if args.warmup > 0:
            for target in targets:
                h.log(f"warm-up {target.name} ({args.warmup:g}s)")
                h.run_load(
                    servers[_server_name(target.api, target.server)].url + target.path,
                    target.headers,
                    duration=args.warmup,
                    **load,
                )

        samples: dict[str, list[h.LoadResult]] = {t.name: [] for t in targets}
        cpu: dict[str, list[float]] = {t.name: [] for t in targets}
        total = args.rounds * len(targets)
        done = 0
        for round_no in range(args.rounds):
            shift = round_no % len(targets)
            for target in targets[shift:] + targets[:shift]:
                server = servers[_server_name(target.api, target.server)]
                result, micros = h.cpu_per_request(
                    server.pid,
                    lambda server=server, target=target: h.run_load(
                        server.url + target.path, target.headers, duration=args.duration, **load
                    ),
                )
                samples[target.name].append(result)
                cpu[target.name].append(micros)
                done += 1
                h.log(
                    f"[{done}/{total}] round {round_no + 1}/{args.rounds} {target.name:30} "
                    f"{result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  {micros:6.0f} us CPU/req  "
                    f"errors {result.errors}"
                )

        for api, (path, headers) in paths.items():  # the jobs did not change under load
            if h.fetch(base, path, headers) != bodies[path]:
                raise SystemExit(f"the {api} job's body changed during the run")
    finally:
        for server in servers.values():
            server.stop()
    return {
        "targets": [t.name for t in targets],
        "paths": {api: path for api, (path, _) in paths.items()},
        "body_bytes": {api: len(bodies[path]) for api, (path, _) in paths.items()},
        "prism_body_bytes": prism_bodies,
        "samples": samples,
        "cpu_us": cpu,
    }


def _running_captain_job(base: str, tenant: h.TenantKeys) -> str:
    """A Captain job of 50 files, running, on a frozen test clock: the same bytes every
    round, with a prefix tally and a ``Retry-After`` on every read."""
    import httpx

    clocks = f"{base}/sandbox/v1/clocks"
    made = httpx.post(clocks, json={"name": "hot-path"}, headers=tenant.captain, timeout=60)
    if made.status_code != 201:
        raise h.ServerError(f"POST {clocks} -> {made.status_code}: {made.text[:500]}")
    clock = made.json()["id"]
    job_id = h.create_captain_job(
        base,
        tenant,
        collection="hot-path-running",
        bucket="bench-hot-path-running",
        max_files=50,
        scenario="slow",
        extra_headers={"Pollable-Clock": clock},
    )
    # Queue 10 s and scan 20 s (give or take the jitter), then a file every 5 s.
    moved = httpx.post(
        f"{clocks}/{clock}/advance", json={"seconds": 60}, headers=tenant.captain, timeout=60
    )
    if moved.status_code != 200:
        raise h.ServerError(f"advance -> {moved.status_code}: {moved.text[:500]}")
    job = httpx.get(f"{base}/v2/jobs/{job_id}", headers=tenant.captain, timeout=60)
    if job.json()["status"] != "running" or "retry-after" not in job.headers:
        raise h.ServerError(f"the running job is not running: {job.text[:300]}")
    return job_id


def _same_job(peer: bytes, ours: bytes) -> bool:
    import json

    a, b = json.loads(peer), json.loads(ours)
    fields = ("job_id", "status", "source_ids", "result", "error_message")
    instants = ("created_at", "started_at", "completed_at")
    return all(a.get(f) == b.get(f) for f in fields) and all(
        (a.get(f) is None) == (b.get(f) is None) for f in instants
    )


def _server_name(api: str, server: str) -> str:
    """Prism mocks one document at a time: one server per API; the others serve both."""
    return f"{api}/prism" if server == "prism" else server


def paired(samples: dict[str, list[h.LoadResult]], name: str, base: str) -> list[float]:
    """Per-round ratio of ``name``'s req/s to ``base``'s (same round, minutes apart at most)."""
    return [a.rps / b.rps for a, b in zip(samples[name], samples[base], strict=True)]


def report(args: argparse.Namespace, env: dict[str, Any], results: dict[str, Any]) -> None:
    samples: dict[str, list[h.LoadResult]] = results["samples"]
    cpu: dict[str, list[float]] = results["cpu_us"]
    medians = {name: h.median([r.rps for r in runs]) for name, runs in samples.items()}
    ratios = {name: paired(samples, name, name.split("/", 1)[0] + "/ceiling") for name in samples}
    rows = []
    for name in results["targets"]:
        api, server = name.split("/", 1)
        runs = samples[name]
        rows.append(
            [
                api,
                SERVER_LABELS[server],
                f"{medians[name]:,.0f}",
                f"{h.median([r.p50_ms for r in runs]):.2f}",
                f"{h.median([r.p99_ms for r in runs]):.2f}",
                f"{h.median(ratios[name]):.2f}",
                f"{min(ratios[name]):.2f}-{max(ratios[name]):.2f}",
                f"{h.median(cpu[name]):,.0f}",
                ", ".join(f"{r.rps:,.0f}" for r in runs),
                sum(r.errors for r in runs),
            ]
        )
    headers = [
        "API",
        "server",
        "req/s (median)",
        "p50 ms",
        "p99 ms",
        "x ceiling",
        "range",
        "CPU us/req",
        "req/s per round",
        "errors",
    ]
    print()
    print(
        f"## Hot path: GET one job — {args.rounds} round(s) x {args.duration:g} s per target, "
        f"wrk -t{args.threads} -c{args.connections}"
    )
    print()
    print(f"Environment: {h.describe(env)}")
    print()
    print(h.table(headers, rows))
    print()
    apis = list(results["paths"])
    costs: dict[str, dict[str, dict[str, float]]] = {}
    for variant, (baseline, what) in COSTS.items():
        for api in apis:
            on, off = f"{api}/pollable", f"{api}/{baseline}"
            if on not in samples or off not in samples:
                continue
            ratios_rps = paired(samples, on, off)
            # CPU per request of the server with the feature over the server without it.
            ratios_cpu = [a / b for a, b in zip(cpu[on], cpu[off], strict=True)]
            share, extra = h.median(ratios_rps), h.median(ratios_cpu) - 1
            costs.setdefault(variant, {})[api] = {"throughput": 1 - share, "cpu": extra}
            print(
                f"- {api}: with {what} pollable serves {share:.2f}x the requests it serves "
                f"without (median of per-round ratios, range {min(ratios_rps):.2f}-"
                f"{max(ratios_rps):.2f}: {1 - share:.0%} of throughput), at {1 + extra:.2f}x "
                f"its CPU per request (range {min(ratios_cpu):.2f}-{max(ratios_cpu):.2f})"
            )
    peers: dict[str, float] = {}
    for peer in PEERS:
        name = f"crosmos/{peer}"
        if name in samples:
            ahead = paired(samples, "crosmos/pollable", name)
            peers[peer] = h.median(ahead)
            print(
                f"- crosmos: pollable serves {h.median(ahead):.2f}x the requests of the "
                f"{SERVER_LABELS[peer]} (median of per-round ratios, range "
                f"{min(ahead):.2f}-{max(ahead):.2f})"
            )
    for api, size in results["prism_body_bytes"].items():
        print(
            f"- {api}: Prism answers a {size:,} B example generated from the schema, the same for "
            "every job id; it keeps no jobs, so it is a speed reference, not a like-for-like"
        )
    print(
        "- 'x ceiling' is the median over rounds of (req/s / ceiling req/s in the same round); "
        "'range' is its min-max."
    )
    path = h.save_results(
        "hot_path",
        {
            "environment": env,
            "args": vars(args),
            "paths": results["paths"],
            "body_bytes": results["body_bytes"],
            "median_rps": medians,
            "ratio_to_ceiling": {name: h.median(values) for name, values in ratios.items()},
            "costs": costs,
            "ahead_of_peers": peers,
            "samples": samples,
            "cpu_us": cpu,
        },
    )
    print(f"- Raw numbers: {path.relative_to(h.ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
