"""Captain's scale claim: a page of files and the counts in ``progress`` cost the same for a
job of 100 files as for one of 100,000.

    python -m bench.paging              # 100 vs 100,000 files (about 2 minutes)
    python -m bench.paging --quick      # smoke run: 100 vs 10,000 files, few samples
    python -m bench.paging --rounds 500 --big 100000

Over HTTP, against one live pollable (uvicorn, 1 worker, SQLite store, response
validation on), with jobs created by the real endpoint (``POST
/v2/collections/{c}/index/s3`` with ``max_files``):

- running: a 100-file and a 100,000-file job mid-run (``Prefer: scenario=slow``), so every
  GET needs a prefix tally from the store (``0 < files_processed < files_total``; checked on
  every sample). The 100,000-file job is created through a second server with a smaller
  ``time_scale`` so that, while measured, it is thousands of files deep into its run (a
  prefix tally over a deep prefix, not the first few files);
- completed: the same two sizes with ``Prefer: scenario=instant``.

For each job, ``GET /v2/jobs/{id}?files_limit=50&files_cursor=...`` at the first, middle
and last page, with cursors taken from the API's own ``next_cursor``s. Samples are
interleaved (each round requests every job x page once, in a shuffled order), one
keep-alive connection, client-side latency. Reported: median and p90 per job size and the
ratio 100,000/100, which must be <= 1.5.

Correctness: paging through each 100,000-file job with ``files_limit=500`` returns every
file exactly once, in the store's order, and ends with ``next_cursor: null``.

Store level: ``SQLiteStore.items(after, 50)`` and ``SQLiteStore.tally(k)`` called directly
(in this process, on the same file) at the first, middle and last positions of both jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from . import harness as h

PAGE = 50
#: Files per request of the correctness pass (the contract's maximum).
PASS_LIMIT = 500
#: The ratio the claim allows: a job 1,000 times larger may cost at most 1.5 times more.
CLAIM_RATIO = 1.5
#: ``slow`` scenario: queue 10 s, scan 20 s, 5 s between files, 20 s per file (before scale).
SLOW_GAP, SLOW_LEAD = 5.0, 50.0


@dataclass
class Job:
    label: str  # "100" or "100,000"
    state: str  # "running" or "completed"
    size: int
    job_id: str
    #: files-before-the-page -> cursor (None for the first page)
    cursors: dict[int, str | None] = field(default_factory=lambda: {0: None})
    #: the URIs in order, when known (from the correctness pass or one page)
    uris: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.state}/{self.label}"


def positions(size: int) -> dict[str, int]:
    """Files before the first, middle and last page of ``PAGE`` files."""
    return {"first": 0, "middle": max(0, size // 2 - PAGE // 2), "last": max(0, size - PAGE)}


class Client:
    """One keep-alive HTTP/1.1 connection; ``get`` times request to last body byte."""

    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = dict(headers)

    def get(self, path: str) -> tuple[float, int, bytes]:
        start = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        reply = self.conn.getresponse()
        body = reply.read()
        return time.perf_counter() - start, reply.status, body

    def json(self, path: str) -> dict[str, Any]:
        _, status, body = self.get(path)
        if status != 200:
            raise SystemExit(f"GET {path} -> {status}: {body[:300]!r}")
        return orjson.loads(body)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.close()


def page_path(job_id: str, limit: int, cursor: str | None) -> str:
    path = f"/v2/jobs/{job_id}?files_limit={limit}"
    return path if cursor is None else f"{path}&files_cursor={quote(cursor)}"


def cursor_at(client: Client, job: Job, before: int) -> str | None:
    """The API's cursor for the page after ``before`` files, hopping from the nearest known
    cursor with pages of up to 500 files."""
    known = max(k for k in job.cursors if k <= before)
    cursor = job.cursors[known]
    while known < before:
        step = min(PASS_LIMIT, before - known)
        body = client.json(page_path(job.job_id, step, cursor))
        cursor = body["files_page"]["next_cursor"]
        known += step
        job.cursors[known] = cursor
    return cursor


def full_pass(client: Client, job: Job, truth: list[str]) -> dict[str, Any]:
    """Page through the whole job with files_limit=500; check against the store's order."""
    uris: list[str] = []
    cursor: str | None = None
    pages = 0
    start = time.perf_counter()
    while True:
        body = client.json(page_path(job.job_id, PASS_LIMIT, cursor))
        pages += 1
        uris.extend(f["uri"] for f in body["files"])
        cursor = body["files_page"]["next_cursor"]
        if cursor is None:
            break
        job.cursors[len(uris)] = cursor
        if pages > job.size // PASS_LIMIT + 2:
            raise SystemExit(f"{job.name}: more pages than files allow; the cursor loops")
    seconds = time.perf_counter() - start
    job.uris = uris
    check = {
        "job": job.name,
        "files_total": body["progress"]["files_total"],
        "pages": pages,
        "files_returned": len(uris),
        "distinct": len(set(uris)),
        "in_store_order": uris == truth,
        "ascending": all(a < b for a, b in itertools.pairwise(uris)),
        "final_next_cursor": cursor,
        "seconds": round(seconds, 2),
    }
    check["ok"] = (
        check["files_returned"] == check["distinct"] == job.size == check["files_total"]
        and check["in_store_order"]
        and check["final_next_cursor"] is None
    )
    return check


def store_truth(store_path: str, tenant_id: str, job_id: str, size: int) -> list[str]:
    """The job's item keys in ordinal order, read from the store itself."""
    from pollable.store.sqlite import SQLiteStore

    async def read() -> list[str]:
        store = SQLiteStore(store_path)
        await store.open()
        try:
            items = await store.items(tenant_id, job_id, limit=size + 1)
        finally:
            await store.close()
        return [item.key for item in items]

    return asyncio.run(read())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.paging")
    parser.add_argument("--small", type=int, default=100, help="files in the small job (100)")
    parser.add_argument("--big", type=int, default=100_000, help="files in the big job (100000)")
    parser.add_argument("--rounds", type=int, default=300, help="samples per job x page (300)")
    parser.add_argument(
        "--duration", type=float, default=120.0, help="cap on the HTTP sampling phase, s (120)"
    )
    parser.add_argument(
        "--store-rounds", type=int, default=3000, help="store-level samples per job x page"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.2,
        help="time scale of the server (and of the small running job) (0.2)",
    )
    parser.add_argument(
        "--big-run-seconds",
        type=float,
        default=600.0,
        help="how long the big running job's files take to process, s (600)",
    )
    parser.add_argument("--seed", type=int, default=7, help="shuffle seed")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10,000 files, 30 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.big, args.rounds, args.store_rounds, args.time_scale = 10_000, 30, 300, 0.1
    return args


def label(size: int) -> str:
    return f"{size:,}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = h.environment()
    env["load_tool"] = "one keep-alive http.client connection, sequential GETs"
    h.log(f"environment: {h.describe(env)}")
    with h.workdir("paging") as work:
        results = run(args, work)
    report(args, env, results)
    return 0 if results["claim_ok"] and results["correct"] else 1


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    store_path = f"{work}/pollable.db"
    store_url = f"sqlite:///{store_path}"
    tenant = h.provision(store_url)
    small, big = args.small, args.big
    creation: dict[str, float] = {}

    def create(base: str, size: int, scenario: str, tag: str) -> str:
        start = time.perf_counter()
        job_id = h.create_captain_job(
            base,
            tenant,
            collection=f"paging-{tag}",
            bucket=f"bench-paging-{tag}",
            max_files=size,
            scenario=scenario,
        )
        seconds = creation[f"{scenario} {label(size)}"] = time.perf_counter() - start
        h.log(f"created a {label(size)}-file {scenario} job in {seconds:.1f}s")
        return job_id

    jobs: dict[str, Job] = {}
    # The big running job comes from a server whose time scale spreads its files over
    # ``big_run_seconds``: measured a minute or two later, it is thousands of files in.
    big_scale = args.big_run_seconds / (big * SLOW_GAP)
    h.log(f"starting a creation-only server (time_scale={big_scale:.6g}) for the big running job")
    with h.pollable_server("creator", store_url, work, time_scale=big_scale).start() as creator:
        big_run = create(creator.url, big, "slow", "big-run")
    jobs["running/big"] = Job(label(big), "running", big, big_run)

    server = h.pollable_server("pollable", store_url, work, time_scale=args.time_scale).start()
    h.log(f"pollable (time_scale={args.time_scale:g}, response validation on) at {server.url}")
    client = Client(server.url, tenant.captain)
    try:
        jobs["completed/big"] = Job(
            label(big), "completed", big, create(server.url, big, "instant", "big-done")
        )
        jobs["completed/small"] = Job(
            label(small), "completed", small, create(server.url, small, "instant", "small-done")
        )

        checks = []
        for key in ("completed/big", "running/big"):
            job = jobs[key]
            h.log(f"correctness: paging through {job.name} with files_limit={PASS_LIMIT}")
            truth = store_truth(store_path, tenant.tenant.id, job.job_id, job.size)
            check = full_pass(client, job, truth)
            checks.append(check)
            h.log(
                f"  {check['files_returned']:,} files in {check['pages']} pages, "
                f"{check['distinct']:,} distinct, store order: {check['in_store_order']}, "
                f"final next_cursor: {check['final_next_cursor']}, "
                f"{check['seconds']}s -> {'OK' if check['ok'] else 'WRONG'}"
            )

        # The small running job last: its whole run is a minute or two at this time scale.
        jobs["running/small"] = Job(
            label(small), "running", small, create(server.url, small, "slow", "small-run")
        )
        for key in ("completed/small", "running/small"):
            job = jobs[key]
            job.uris = [f["uri"] for f in client.json(page_path(job.job_id, small, None))["files"]]

        targets: list[tuple[Job, str, str | None, str]] = []
        for key in ("running/small", "running/big", "completed/small", "completed/big"):
            job = jobs[key]
            for where, before in positions(job.size).items():
                cursor = cursor_at(client, job, before)
                targets.append((job, where, cursor, job.uris[before]))

        lead = SLOW_LEAD * args.time_scale
        h.log(f"waiting for the small running job to settle its first file (~{lead:.0f}s)")
        deadline = time.monotonic() + lead * 2 + 30
        while True:
            progress = client.json(page_path(jobs["running/small"].job_id, PAGE, None))["progress"]
            if progress["files_processed"] > 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the small running job never started processing")
            time.sleep(0.5)

        samples, processed, problems = sample_http(client, targets, args)
    finally:
        client.close()
        server.stop()

    store_samples = sample_store(store_path, tenant.tenant.id, jobs, args)
    http_stats = summarise(samples)
    claim = {
        state: http_stats[(state, "big")]["median"] / http_stats[(state, "small")]["median"]
        for state in ("running", "completed")
    }
    return {
        "sizes": {"small": small, "big": big},
        "creation_seconds": creation,
        "checks": checks,
        "correct": all(c["ok"] for c in checks) and not problems,
        "problems": problems,
        "processed": processed,
        "http": http_stats,
        "http_by_page": {
            f"{state}/{size}/{where}": stats
            for (state, size, where), stats in summarise_pages(samples).items()
        },
        "store": store_samples,
        "claim": claim,
        "claim_ok": all(ratio <= CLAIM_RATIO for ratio in claim.values()),
    }


def sample_http(
    client: Client, targets: list[tuple[Job, str, str | None, str]], args: argparse.Namespace
) -> tuple[dict[tuple[str, str, str], list[float]], dict[str, list[int]], list[str]]:
    """``rounds`` x every target, shuffled per round; checks every answer."""
    rng = random.Random(args.seed)
    samples: dict[tuple[str, str, str], list[float]] = {}
    processed: dict[str, list[int]] = {}
    problems: list[str] = []
    small_size = min(job.size for job, *_ in targets)
    start = time.monotonic()
    total = args.rounds * len(targets)
    h.log(f"sampling {len(targets)} job x page targets x {args.rounds} rounds = {total:,} GETs")
    for round_no in range(args.rounds):
        order = targets[:]
        rng.shuffle(order)
        for job, where, cursor, first_uri in order:
            seconds, status, raw = client.get(page_path(job.job_id, PAGE, cursor))
            size_key = "small" if job.size == small_size else "big"
            samples.setdefault((job.state, size_key, where), []).append(seconds)
            body = orjson.loads(raw) if status == 200 else {}
            files = body.get("files", [])
            prog = body.get("progress", {})
            if status != 200 or len(files) != PAGE or files[0]["uri"] != first_uri:
                problems.append(f"{job.name} {where}: status {status}, unexpected page")
            if job.state == "running":
                done = prog.get("files_processed", -1)
                processed.setdefault(job.name, []).append(done)
                if body.get("status") != "running" or not 0 < done < job.size:
                    problems.append(
                        f"{job.name} {where}: not mid-run (status {body.get('status')}, "
                        f"{done} of {job.size} processed): no prefix tally was needed"
                    )
            elif body.get("status") != "completed":
                problems.append(f"{job.name} {where}: status {body.get('status')}")
        if (round_no + 1) % max(1, args.rounds // 10) == 0 or round_no + 1 == args.rounds:
            small_ms = h.median(samples[("running", "small", "first")]) * 1000
            big_ms = h.median(samples[("running", "big", "first")]) * 1000
            h.log(
                f"  round {round_no + 1}/{args.rounds}: running first page median "
                f"{small_ms:.2f} ms (small) / {big_ms:.2f} ms (big); problems {len(problems)}"
            )
        if time.monotonic() - start > args.duration:
            h.log(f"  stopping after {round_no + 1} rounds: --duration {args.duration:g}s reached")
            break
    if problems:
        h.log(f"PROBLEMS ({len(problems)}): " + "; ".join(sorted(set(problems))[:5]))
    return samples, processed, problems


def summarise(samples: Mapping[tuple[str, str, str], list[float]]) -> dict[tuple[str, str], Any]:
    """Per (state, size): median and p90 (ms) over all pages' samples."""
    pooled: dict[tuple[str, str], list[float]] = {}
    for (state, size, _), values in samples.items():
        pooled.setdefault((state, size), []).extend(values)
    return {key: stats(values) for key, values in pooled.items()}


def summarise_pages(
    samples: Mapping[tuple[str, str, str], list[float]],
) -> dict[tuple[str, str, str], Any]:
    return {key: stats(values) for key, values in samples.items()}


def stats(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "median": h.median(ms), "p90": h.percentile(ms, 90)}


def sample_store(
    store_path: str, tenant_id: str, jobs: Mapping[str, Job], args: argparse.Namespace
) -> dict[str, Any]:
    """``items(after, 50)`` and ``tally(k)`` on SQLiteStore, at the first, middle and last
    positions of both running jobs (items and prefix sums do not depend on the time)."""
    from pollable.store.sqlite import SQLiteStore

    async def measure() -> dict[tuple[str, str, str], list[float]]:
        store = SQLiteStore(store_path)
        await store.open()
        out: dict[tuple[str, str, str], list[float]] = {}
        try:
            targets = []
            for key in ("running/small", "running/big"):
                job = jobs[key]
                size_key = key.split("/")[1]
                for where, before in positions(job.size).items():
                    # tally over a prefix ending where the page starts (at least 1 file)
                    k = min(job.size - 1, max(1, before))
                    targets.append((size_key, where, job.job_id, before - 1, k))
            rng = random.Random(args.seed)
            perf = time.perf_counter
            for _ in range(args.store_rounds):
                rng.shuffle(targets)
                for size_key, where, job_id, after, k in targets:
                    t0 = perf()
                    page = await store.items(tenant_id, job_id, after=after, limit=PAGE)
                    t1 = perf()
                    await store.tally(tenant_id, job_id, k)
                    t2 = perf()
                    assert len(page) == PAGE
                    out.setdefault((size_key, where, "items"), []).append(t1 - t0)
                    out.setdefault((size_key, where, "tally"), []).append(t2 - t1)
                    out.setdefault((size_key, where, "both"), []).append(t2 - t0)
        finally:
            await store.close()
        return out

    h.log(f"store level: items(after, {PAGE}) + tally(k), {args.store_rounds} rounds")
    raw = asyncio.run(measure())
    result: dict[str, Any] = {}
    for op in ("items", "tally", "both"):
        for size_key in ("small", "big"):
            values = [v for (s, _, o), vs in raw.items() if s == size_key and o == op for v in vs]
            result[f"{op}/{size_key}"] = stats(values)  # ms
    return result


def report(args: argparse.Namespace, env: dict[str, Any], results: dict[str, Any]) -> None:
    small, big = label(results["sizes"]["small"]), label(results["sizes"]["big"])
    http = results["http"]
    print()
    print(f"## Paging: a page of {PAGE} files + progress counts, {small} vs {big} files")
    print()
    print(f"Environment: {h.describe(env)}")
    print()
    print("### Correctness (files_limit=500 through the whole job)")
    print()
    print(
        h.table(
            [
                "job",
                "files_total",
                "pages",
                "files returned",
                "distinct",
                "store order",
                "final next_cursor",
                "result",
            ],
            [
                [
                    c["job"],
                    f"{c['files_total']:,}",
                    c["pages"],
                    f"{c['files_returned']:,}",
                    f"{c['distinct']:,}",
                    c["in_store_order"],
                    c["final_next_cursor"] or "null",
                    "OK" if c["ok"] else "WRONG",
                ]
                for c in results["checks"]
            ],
        )
    )
    print()
    print(
        f"### HTTP: GET /v2/jobs/{{id}}?files_limit={PAGE}&files_cursor=... "
        f"(first, middle, last page pooled; ms, client-side)"
    )
    print()
    rows = []
    for state in ("running", "completed"):
        s, b = http[(state, "small")], http[(state, "big")]
        ratio = results["claim"][state]
        rows.append(
            [
                state,
                f"{s['median']:.2f}",
                f"{s['p90']:.2f}",
                f"{b['median']:.2f}",
                f"{b['p90']:.2f}",
                f"{ratio:.2f}",
                f"{b['p90'] / s['p90']:.2f}",
                "PASS" if ratio <= CLAIM_RATIO else "FAIL",
                s["n"] + b["n"],
            ]
        )
    print(
        h.table(
            [
                "job state",
                f"{small}: median",
                f"{small}: p90",
                f"{big}: median",
                f"{big}: p90",
                "ratio (median)",
                "ratio (p90)",
                f"<= {CLAIM_RATIO}",
                "samples",
            ],
            rows,
        )
    )
    print()
    print("Per page (median ms):")
    print()
    by_page = results["http_by_page"]

    def page_ms(state: str, size: str, where: str) -> float:
        return float(by_page[f"{state}/{size}/{where}"]["median"])

    print(
        h.table(
            ["job state", "page", small, big, "ratio"],
            [
                [
                    state,
                    where,
                    f"{page_ms(state, 'small', where):.2f}",
                    f"{page_ms(state, 'big', where):.2f}",
                    f"{page_ms(state, 'big', where) / page_ms(state, 'small', where):.2f}",
                ]
                for state in ("running", "completed")
                for where in ("first", "middle", "last")
            ],
        )
    )
    print()
    for name, values in results["processed"].items():
        print(f"- {name}: files_processed from {min(values):,} to {max(values):,} while sampled")
    for name, seconds in results["creation_seconds"].items():
        print(f"- POST index/s3 ({name} files) took {seconds:.1f}s")
    print()
    store = results["store"]
    print(f"### Store level: SQLiteStore.items(after, {PAGE}) and tally(k) (µs, in-process)")
    print()
    print(
        h.table(
            [
                "call",
                f"{small}: median",
                f"{small}: p90",
                f"{big}: median",
                f"{big}: p90",
                "ratio (median)",
            ],
            [
                [
                    op,
                    f"{store[f'{op}/small']['median'] * 1000:.1f}",
                    f"{store[f'{op}/small']['p90'] * 1000:.1f}",
                    f"{store[f'{op}/big']['median'] * 1000:.1f}",
                    f"{store[f'{op}/big']['p90'] * 1000:.1f}",
                    f"{store[f'{op}/big']['median'] / store[f'{op}/small']['median']:.2f}",
                ]
                for op in ("items", "tally", "both")
            ],
        )
    )
    print()
    verdict = "holds" if results["claim_ok"] else "DOES NOT HOLD"
    print(
        f"- Claim (ratio {big}/{small} of median page time <= {CLAIM_RATIO}) {verdict}: "
        + ", ".join(f"{state} {ratio:.2f}" for state, ratio in results["claim"].items())
    )
    if results["problems"]:
        print(f"- PROBLEMS: {len(results['problems'])}, e.g. {results['problems'][:3]}")
    path = h.save_results(
        "paging",
        {
            "environment": env,
            "args": vars(args),
            **{k: v for k, v in results.items() if k != "http"},
            "http": {f"{state}/{size}": v for (state, size), v in http.items()},
        },
    )
    print(f"- Raw numbers: {path.relative_to(h.ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
