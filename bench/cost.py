"""What a GET costs the server, in instructions: a count that does not move with the load.

    python -m bench.cost                     # every variant, 600 requests per target
    python -m bench.cost --requests 200      # quicker, a little less exact
    python -m bench.cost --parallel 1        # one server under valgrind at a time

Throughput on a shared machine moves by tens of percent with whatever else runs (see
``hot_path``), which hides a 5% or 10% cost. This runs the same servers as ``hot_path`` (the
bare Starlette ceiling, pollable, and pollable without response validation, without the
request log, without polling headers), each under ``valgrind --tool=callgrind``, and counts
the instructions its event loop's thread executes between two marks (``bench.marks``)
around ``--requests`` sequential GETs of the same job on one keep-alive connection: the
same three jobs as ``hot_path`` (Crosmos completed, Captain completed with 50 files, Captain
running on a frozen test clock). That is each request's own path: parsing, routing,
authentication, the store's reads, the handler, validation, encoding, and what the request
log does on the loop (building the entry, turning a batch into rows). The same build counts
the same, give or take a few per mille, however busy the machine.

The other threads (the request log's writer, which inserts and prunes with the GIL released
while SQLite works, and the store's writer) are counted over the whole run, start-up
included, and shown per GET as an upper bound. Under valgrind a request takes some 50 times
longer, so the log's writer, which runs on a timer (a batch every 0.25 s, a prune every
second), does its fixed work for far fewer entries than under real load: its share comes
out much larger than it is.

Left out, and which way it leans: kernel time (socket reads and writes), the same for every
variant, so each feature's share looks larger than it is; cache misses and stalls
(instructions are not cycles); and the CPU's own accelerations (SHA-NI hashes the ``ETag``'s
bytes in far fewer instructions natively than under valgrind's emulation, if it hides them).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import harness as h
from .hot_path import _running_captain_job
from .marks import MARK_PATH
from .peer_fastapi import build_db

#: The variants, as in ``hot_path``: name -> (label, ``bench.serve`` flags).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "pollable": ("pollable (validation, request log, polling headers)", []),
    "pollable-novalidate": ("pollable without response validation", ["--no-validate-responses"]),
    "pollable-nolog": ("pollable without the request log", ["--no-request-log"]),
    "pollable-noheaders": ("pollable without polling headers", ["--no-polling-headers"]),
}
COSTS = {
    "response validation": "pollable-novalidate",
    "the request log": "pollable-nolog",
    "polling headers": "pollable-noheaders",
}
#: The hand-written FastAPI peer (``bench.peer_fastapi``), counted on the Crosmos GET: name ->
#: style (both async def).
PEERS = {"fastapi-async": "tutorial", "fastapi-lean": "lean"}
#: Seconds after a measured run before its closing mark: the log's last batch is written.
SETTLE = 1.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=600, help="GETs per target (600)")
    parser.add_argument("--warmup", type=int, default=60, help="GETs before each mark (60)")
    parser.add_argument(
        "--parallel", type=int, default=2, help="servers under valgrind at once (2)"
    )
    parser.add_argument("--captain-files", type=int, default=50, help="files in the Captain job")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("bench.cost needs valgrind (apt-get install valgrind)")
    env = h.environment()
    h.log(f"environment: {h.describe(env)}")
    with h.workdir("cost") as work:
        results = run(args, work, valgrind)
    report(args, env, results)
    return 0


def run(args: argparse.Namespace, work: Path, valgrind: str) -> dict[str, Any]:
    store_url = f"sqlite:///{work}/pollable.db"
    tenant = h.provision(store_url)
    h.log("making the jobs with a pollable outside valgrind")
    with h.pollable_server("setup", store_url, work).start() as setup:
        base = setup.url
        crosmos_id = h.create_crosmos_job(base, tenant)
        captain_id = h.create_captain_job(
            base, tenant, collection="cost", bucket="bench-cost",
            max_files=args.captain_files, scenario="instant",
        )  # fmt: skip
        running_id = _running_captain_job(base, tenant)
        targets = {
            "crosmos": (f"/api/v1/jobs/{crosmos_id}", tenant.crosmos),
            "captain": (f"/v2/jobs/{captain_id}", tenant.captain),
            "captain-running": (f"/v2/jobs/{running_id}", tenant.captain),
        }
        bodies = {path: h.fetch(base, path, headers) for path, headers in targets.values()}
    peer_db = work / "peer.db"
    crosmos_path = targets["crosmos"][0]
    key = tenant.crosmos["Authorization"].removeprefix("Bearer ")
    build_db(peer_db, key, {crosmos_id: json.loads(bodies[crosmos_path])})

    def counted(name: str) -> dict[str, float]:
        mine, answers = targets, bodies
        if name == "ceiling":
            path = work / "ceiling-bodies.json"
            path.write_text(json.dumps({p: b.decode() for p, b in bodies.items()}))
            serve = ["-m", "bench.ceiling_app", "--bodies", str(path)]
        elif name in PEERS:
            serve = ["-m", "bench.peer_fastapi", "--db", str(peer_db), "--style", PEERS[name]]
            # The Crosmos GET only; pydantic writes the same job's instants its own way.
            mine = {"crosmos": targets["crosmos"]}
            answers = {crosmos_path: _peer_body(peer_db, crosmos_path, targets["crosmos"][1])}
        else:
            serve = ["-m", "bench.serve", "--store", store_url, *VARIANTS[name][1]]
        out = work / f"callgrind-{name}"
        port = h.free_port()
        argv = [
            valgrind, "--tool=callgrind", "--dump-before=os_getppid", "--separate-threads=yes",
            f"--callgrind-out-file={out}.%p", sys.executable, *serve,
            "--port", str(port), "--marks",
        ]  # fmt: skip
        h.log(f"{name}: starting under callgrind (a few minutes)")
        server = h.Server(name, argv, port, work).start(timeout=1200)
        try:
            for target, (path, headers) in mine.items():
                _get(server.port, path, headers, args.warmup, answers[path])
                _get(server.port, MARK_PATH, {}, 1, b"")
                _get(server.port, path, headers, args.requests, answers[path])
                time.sleep(SETTLE)
                _get(server.port, MARK_PATH, {}, 1, b"")
                h.log(f"{name}: {target} counted")
        finally:
            pid = server.pid
            server.stop(timeout=600)
        loop = _windows(Path(f"{out}.{pid}"), len(mine))
        others = [p for p in work.glob(f"{out.name}.{pid}-*") if not p.name.endswith("-01")]
        background = sum(_total(part) for part in others)
        served = len(mine) * (args.warmup + args.requests)
        counted = {t: count / args.requests for t, count in zip(mine, loop, strict=True)}
        return {**counted, "background": background / served}

    names = ["ceiling", *VARIANTS, *PEERS]
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        per_request = dict(zip(names, pool.map(counted, names), strict=True))
    return {
        "targets": list(targets),
        "requests": args.requests,
        "body_bytes": {t: len(bodies[path]) for t, (path, _) in targets.items()},
        "instructions_per_request": per_request,
    }


def _peer_body(db: Path, path: str, headers: Mapping[str, str]) -> bytes:
    """What the peer answers for ``path``, from a peer outside valgrind."""
    with h.peer_server("peer-setup", db, db.parent, sync=False, style="lean").start() as peer:
        return h.fetch(peer.url, path, headers)


def _get(port: int, path: str, headers: Mapping[str, str], times: int, body: bytes) -> None:
    """``times`` GETs of ``path`` on one keep-alive connection, each answering ``body``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        for _ in range(times):
            conn.request("GET", path, headers=dict(headers))
            reply = conn.getresponse()
            got = reply.read()
            if reply.status >= 300 or got != body:
                raise h.ServerError(f"GET {path} -> {reply.status}: {got[:300]!r}")
    finally:
        conn.close()


def _windows(base: Path, count: int) -> list[int]:
    """The event loop's instructions in each marked window. With separate threads,
    callgrind writes the marking thread's counts to ``<base>.N-01`` before each mark, so
    the even parts hold what ran between a window's two marks; the other threads' counts
    go to ``<base>-TT`` at the end."""
    parts = sorted(
        base.parent.glob(base.name + ".*-01"), key=lambda p: int(p.name.rsplit(".", 1)[1][:-3])
    )
    if len(parts) != 2 * count:
        raise h.ServerError(
            f"{len(parts)} callgrind parts for {count} windows: something else called "
            "os.getppid() in the server"
        )
    return [_total(part) for part in parts[1::2]]


def _total(part: Path) -> int:
    match = re.search(r"^totals:\s+(\d+)", part.read_text(errors="replace"), re.MULTILINE)
    if match is None:
        raise h.ServerError(f"no totals in {part}")
    return int(match.group(1))


def report(args: argparse.Namespace, env: dict[str, Any], results: dict[str, Any]) -> None:
    counts: dict[str, dict[str, float]] = results["instructions_per_request"]
    targets: list[str] = results["targets"]
    print()
    print(
        f"## Instructions per GET (`python -m bench.cost`, {results['requests']} requests per "
        "target, callgrind, every thread of the server)"
    )
    print()
    print(f"Environment: {h.describe(env)}")
    print()
    labels = {"ceiling": "bare Starlette ceiling (same bytes)"} | {
        name: label for name, (label, _) in VARIANTS.items()
    }
    labels |= {
        "fastapi-async": "FastAPI peer as its tutorial writes it, async def (SQLAlchemy session)",
        "fastapi-lean": "FastAPI peer, lean, async def (one sqlite3 connection)",
    }
    rows = []
    for target in targets:
        ceiling = counts["ceiling"][target]
        for name in ("ceiling", *VARIANTS, *PEERS):
            if target not in counts[name]:
                continue
            mine = counts[name][target]
            rows.append([target, labels[name], f"{mine / 1000:,.0f}k", f"{ceiling / mine:.2f}"])
    print(h.table(["target", "server", "event loop: instructions / GET", "ceiling / server"], rows))
    print()
    print(
        "Other threads, over the whole run (start-up included), per GET: "
        + ", ".join(f"{name} {counts[name]['background'] / 1000:,.0f}k" for name in counts)
    )
    print()
    costs: dict[str, dict[str, float]] = {}
    for feature, without in COSTS.items():
        for target in targets:
            share = counts["pollable"][target] / counts[without][target] - 1
            costs.setdefault(feature, {})[target] = share
        shown = ", ".join(f"{t} {costs[feature][t]:+.1%}" for t in targets)
        print(f"- {feature}: {shown} of the event loop's instructions per GET")
    for peer in PEERS:
        ahead = counts[peer]["crosmos"] / counts["pollable"]["crosmos"]
        print(f"- crosmos: {labels[peer]} runs {ahead:.2f}x pollable's instructions per GET")
    print(
        "- 'ceiling / server' is what the event loop's count says the server's throughput "
        "would be next to the ceiling's, if instructions were time (kernel time, the same "
        "for all, is left out, so the real ratios are closer to 1)."
    )
    path = h.save_results("cost", {"environment": env, "args": vars(args), **results,
                                   "costs": costs})  # fmt: skip
    print(f"- Raw numbers: {path.relative_to(h.ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
