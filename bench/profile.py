"""Where a GET's time goes: py-spy attached to pollable while wrk loads one job.

    python -m bench.profile --api captain               # the hot-path Captain job (50 files)
    python -m bench.profile --api crosmos
    python -m bench.profile --api captain --files 100000 --scenario slow --time-scale 0.001
    python -m bench.profile --api captain --no-validate-responses --duration 20

Needs py-spy (``pip install py-spy``) and permission to attach to a process (ptrace).
Prints the functions with the most samples on the stack (inclusive), those where the
samples land (self), and self time by package. The raw collapsed stacks are kept in
bench/results/ for flame graphs (e.g. with inferno or speedscope).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from . import harness as h


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--api", choices=("captain", "crosmos"), default="captain")
    parser.add_argument("--files", type=int, default=50, help="files in the Captain job (50)")
    parser.add_argument("--scenario", default="instant", help="the job's scenario (instant)")
    parser.add_argument("--time-scale", type=float, default=None)
    parser.add_argument("--query", default="", help="query string, e.g. files_limit=50")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds profiled (15)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-validate-responses", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="5 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 5.0
    return args


def frame_name(frame: str) -> str:
    """``func (module/path.py:123)`` -> ``func (module/path.py)``."""
    func, _, _ = frame.partition(" (")
    path = _path(frame)
    return f"{func} ({path})" if path else func


OWN = ("server", "handlers", "lifecycle", "store")


def _path(frame: str) -> str:
    """The file of a py-spy frame (py-spy already shortens it to a module path)."""
    _, _, where = frame.partition(" (")
    return where.rstrip(")").rsplit(":", 1)[0]


def _own_part(frame: str) -> str | None:
    """The layer of pollable a frame is in (``store``), or None: py-spy names pollable's
    files ``pollable/store/sqlite.py`` (the installed package) or ``store/sqlite.py``."""
    parts = _path(frame).removeprefix("pollable/").split("/", 1)
    return parts[0] if len(parts) == 2 and parts[0] in OWN else None


def package_of(frame: str) -> str:
    """``store/sqlite.py`` -> ``pollable store``; ``uvicorn/...`` -> ``uvicorn``."""
    own = _own_part(frame)
    if own is not None:
        return f"pollable {own}"
    return _path(frame).split("/", 1)[0].removesuffix(".py") or "?"


def summarise(raw: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = elsewhere = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f]  # drop the thread/process header
        if not frames:
            continue
        if not frames[0].startswith("_run_module_as_main"):
            # Another thread (the store's writer, the request log's, idle pool threads):
            # py-spy samples each thread, so they would dilute the event loop's shares.
            elsewhere += count
            continue
        total += count
        for name in {frame_name(f) for f in frames if _own_part(f) is not None}:
            inclusive[name] += count
        own[frame_name(frames[-1])] += count
        packages[package_of(frames[-1])] += count
    if not total:
        return "no samples (is ptrace allowed?)"

    def rows(counter: Counter[str], n: int) -> list[list[str]]:
        return [[f"{c / total:6.1%}", name] for name, c in counter.most_common(n)]

    return "\n\n".join(
        [
            f"{total} samples of the event loop's thread ({elsewhere} of other threads left "
            "out); `Runner.run` itself is the loop's C code: uvloop, httptools, the sockets",
            "### pollable's functions, inclusive (share of samples with it on the stack)\n\n"
            + h.table(["share", "function"], rows(inclusive, top)),
            "### Self (share of samples where the function itself was running)\n\n"
            + h.table(["share", "function"], rows(own, top)),
            "### Self time by package\n\n" + h.table(["share", "package"], rows(packages, 20)),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The venv's own, when it is not on PATH (.venv/bin/python -m bench.profile).
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with h.workdir("profile") as work:
        store_url = f"sqlite:///{work}/pollable.db"
        tenant = h.provision(store_url)
        server = h.pollable_server(
            "pollable",
            store_url,
            work,
            validate_responses=not args.no_validate_responses,
            time_scale=args.time_scale,
        ).start()
        try:
            if args.api == "crosmos":
                job_id = h.create_crosmos_job(server.url, tenant, scenario=args.scenario)
                path, headers = f"/api/v1/jobs/{job_id}", tenant.crosmos
            else:
                job_id = h.create_captain_job(
                    server.url,
                    tenant,
                    collection="profile",
                    bucket="bench-profile",
                    max_files=args.files,
                    scenario=args.scenario,
                )
                path, headers = f"/v2/jobs/{job_id}", tenant.captain
            if args.query:
                path += "?" + args.query
            body = h.fetch(server.url, path, headers)
            h.log(f"GET {path} answers {len(body):,} bytes; warming up")
            h.run_load(server.url + path, headers, duration=2, connections=args.connections)
            h.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            raw = h.RESULTS_DIR / f"profile-{args.api}-{stamp}.txt"
            h.log(f"profiling pid {server.pid} for {args.duration:g}s under wrk load")
            recorder = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(round(args.duration)),
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)
            load = h.run_load(
                server.url + path, headers, duration=args.duration, connections=args.connections
            )
            _, err = recorder.communicate(timeout=args.duration + 60)
            if recorder.returncode != 0:
                raise SystemExit(f"py-spy failed: {err}")
        finally:
            server.stop()
    items = args.files if args.api == "captain" else 3
    validation = "off" if args.no_validate_responses else "on"
    route = (
        path.split("?")[0].rsplit("/", 1)[0] + "/{id}" + ("?" + args.query if args.query else "")
    )
    print(
        f"## Profile: GET {route} ({args.api}, {items} items, scenario {args.scenario}, "
        f"response validation {validation})"
    )
    print()
    print(
        f"Under profiling: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms (py-spy adds some cost)"
    )
    print()
    print(summarise(raw, args.top))
    print()
    print(f"Raw collapsed stacks: {raw.relative_to(h.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
