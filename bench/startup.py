"""Start-up and idle footprint: ``pollable serve`` (the real CLI) against baselines.

    python -m bench.startup                  # 7 interleaved rounds (about a minute)
    python -m bench.startup --quick          # smoke run: 2 rounds
    python -m bench.startup --phases         # also: where a process's memory and time go

Each round starts every target once, in an order rotated by the round, as a fresh process
with no ``POLLABLE_*`` variables, and measures:

- **first answer**: seconds from spawning the process to the first complete HTTP response
  to ``GET /health`` (any status: the ceiling answers 404), polled every 5 ms;
- **CPU**: the process's CPU seconds (user + system, every thread) when it is measured
  idle, the start-up's own cost; steadier than wall time on a shared machine;
- **idle RSS**: ``VmRSS`` from ``/proc/<pid>/status`` once it answered and idled
  ``--idle`` seconds (1 by default), and its peak (``VmHWM``).

Targets:

- the interpreter alone (``python -c``: its answer is a line on stdout, then it idles);
- ``ceiling``: ``bench.ceiling_app``, bare Starlette under the same uvicorn (the floor of
  any Starlette app served this way);
- ``pollable serve --store memory://``;
- ``pollable serve`` on its default store (``sqlite:///pollable.db``), in a new directory
  each time: the first start a user sees, with its schema, admin token and demo tenant.

``--phases`` also runs, ``--rounds`` times, one process that reports its RSS and the time
at each step of start-up (interpreter, ``import pollable.server.cli``, ``import
pollable.server.app``, ``create_app`` on memory://, ``gc.collect()``): what each step adds.
Reported: medians over rounds, with the range. Raw numbers go to bench/results/. The source
trees' bytecode is written first (as ``pip install`` does), so no start compiles pollable.
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import harness as h

#: The console script ``pip install`` made beside this interpreter: the real CLI.
POLLABLE = Path(sys.executable).with_name("pollable")
PROBE_PATH = "/health"
INTERPRETER = "python (interpreter alone)"
POLL_SECONDS = 0.005


@dataclass(frozen=True)
class Sample:
    target: str
    first_answer_s: float
    status: int
    cpu_s: float
    idle_rss_mb: float
    peak_rss_mb: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument(
        "--idle", type=float, default=1.0, help="seconds idle after the first answer (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds")
    parser.add_argument("--phases", action="store_true", help="also measure each start-up step")
    parser.add_argument(
        "--no-sqlite", action="store_true", help="leave out the default (SQLite) store"
    )
    parser.add_argument(
        "--tree",
        dest="trees",
        action="append",
        default=[],
        type=tree_option,
        metavar="DIR[=LABEL]",
        help="also run pollable from this source tree (e.g. `git archive <commit>` unpacked), "
        "first on sys.path, with the same venv: a before/after in one run; repeatable",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 2
    return args


def clean_env(tree: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLLABLE_")}
    env.pop("PYTHONPATH", None)
    if tree is not None:
        env["PYTHONPATH"] = tree
    return env


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def first_answer(process: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> int:
    """The status of the first complete answer to ``GET /health`` on ``port``."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise h.ServerError(f"exited with {process.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", PROBE_PATH)
            reply = conn.getresponse()
            reply.read()
            conn.close()
            return reply.status
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise h.ServerError(f"no answer within {timeout}s")
        time.sleep(POLL_SECONDS)


def serve_once(
    name: str,
    argv: Sequence[str],
    port: int,
    idle: float,
    log: Path,
    tree: str | None,
    cwd: Path,
) -> Sample:
    with open(log, "ab") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=cwd, env=clean_env(tree), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            status = first_answer(process, port)
            answered = time.perf_counter() - start
            time.sleep(idle)
            rss = status_kb(process.pid, "VmRSS")
            peak = status_kb(process.pid, "VmHWM")
            cpu = h.cpu_seconds(process.pid)
        except h.ServerError as exc:
            process.kill()
            process.wait()
            raise h.ServerError(
                f"{name}: {exc}\n{log.read_text(errors='replace')[-3000:]}"
            ) from None
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return Sample(name, answered, status, cpu, rss / 1024, peak / 1024)


def interpreter_once(idle: float) -> Sample:
    """The interpreter alone: its "answer" is a line on stdout, then it idles on stdin."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; print(flush=True); sys.stdin.readline()"],
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdout.readline()
    answered = time.perf_counter() - start
    time.sleep(idle)
    rss, peak = status_kb(process.pid, "VmRSS"), status_kb(process.pid, "VmHWM")
    cpu = h.cpu_seconds(process.pid)
    process.communicate(b"\n")
    return Sample(INTERPRETER, answered, 0, cpu, rss / 1024, peak / 1024)


@dataclass(frozen=True)
class Target:
    name: str
    #: The command, given the port to listen on; None for the interpreter alone.
    argv: Callable[[int], list[str]] | None
    #: A source tree put first on sys.path (``--tree``), else the installed pollable.
    tree: str | None = None


def targets(work: Path, round_no: int, args: argparse.Namespace) -> list[Target]:
    bodies = work / "ceiling-bodies.json"
    if not bodies.exists():
        bodies.write_text("{}")

    def ceiling(port: int) -> list[str]:
        argv = [sys.executable, "-m", "bench.ceiling_app", "--bodies", str(bodies)]
        return [*argv, "--port", str(port)]

    def memory(port: int) -> list[str]:
        return [str(POLLABLE), "serve", "--store", "memory://", "--port", str(port)]

    def default_store(port: int) -> list[str]:
        return [str(POLLABLE), "serve", "--port", str(port)]

    found = [
        Target(INTERPRETER, None),
        # Run from a new directory like the others: the repository on sys.path finds bench/.
        Target("ceiling (bare Starlette, same uvicorn)", ceiling, str(h.ROOT)),
    ]
    for tree, label in [(None, ""), *args.trees]:
        suffix = f" [{label}]" if label else ""
        found.append(Target(f"pollable serve --store memory://{suffix}", memory, tree))
        if not args.no_sqlite:
            found.append(
                Target(f"pollable serve (default store, new){suffix}", default_store, tree)
            )
    return found


def tree_option(value: str) -> tuple[str, str]:
    path, _, label = value.partition("=")
    if not (Path(path) / "pollable" / "__init__.py").exists():
        raise argparse.ArgumentTypeError(f"{path} is not a pollable source tree")
    return str(Path(path).resolve()), label or Path(path).name


PHASES_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, time
    start, cpu = time.perf_counter(), time.process_time()
    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    out = [("interpreter", 0.0, 0.0, rss(), len(sys.modules))]
    def mark(name):
        at = (time.perf_counter() - start, time.process_time() - cpu)
        out.append((name, *at, rss(), len(sys.modules)))
    import pollable.server.cli
    mark("import pollable.server.cli")
    from pollable.server.app import create_app
    from pollable.server.settings import Settings
    mark("import pollable.server.app")
    app = create_app(Settings.build({}, store="memory://"))
    mark("create_app(memory://)")
    gc.collect()
    mark("gc.collect()")
    print("PHASES " + json.dumps(out))
    """
)


#: Per step: its name, wall and CPU seconds since the interpreter was up, RSS MB, modules.
Phases = list[tuple[str, float, float, float, int]]


def phases_once(tree: str | None) -> Phases:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PHASES_SCRIPT],
        cwd=tree or h.ROOT,  # python -c puts its working directory first on sys.path
        env=clean_env(tree),
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith("PHASES "):
            steps = json.loads(line.removeprefix("PHASES "))
            return [(str(n), float(at), float(c), float(r), int(m)) for n, at, c, r, m in steps]
    raise RuntimeError(done.stdout + done.stderr)


def compile_tree(tree: Path) -> None:
    """Write the bytecode of a source tree's modules, as ``pip install`` does for a wheel: with
    ``PYTHONDONTWRITEBYTECODE`` set (it is on this machine) every start would otherwise
    compile pollable's source again. pollable/ links the top-level folders, which
    ``compileall`` does not follow, so they are compiled one by one."""
    h.log(f"compiling the bytecode of {tree}")
    for part in sorted(tree.iterdir()):
        if (part / "__init__.py").is_file() and not part.is_symlink():
            compileall.compile_dir(part, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not POLLABLE.exists():
        print(f"no {POLLABLE}: install pollable into this venv (pip install -e .)", file=sys.stderr)
        return 2
    for tree in [str(h.ROOT), *(tree for tree, _ in args.trees)]:
        compile_tree(Path(tree))
    env = h.environment()
    env["loadavg_before"] = os.getloadavg()
    h.log(f"environment: {h.describe(env)}; load average {_loads(env['loadavg_before'])}")
    samples: list[Sample] = []
    #: Per source tree's label ("" for the installed one), one list of steps per round.
    phases: dict[str, list[Phases]] = {}
    with h.workdir("startup") as work:
        for round_no in range(args.rounds):
            listed = targets(work, round_no, args)
            shift = round_no % len(listed)
            for target in listed[shift:] + listed[:shift]:
                name = target.name
                if target.argv is None:
                    sample = interpreter_once(args.idle)
                else:
                    port = h.free_port()
                    log = work / f"round-{round_no}.log"
                    argv = target.argv(port)
                    # Each in a new directory: the default store is ./pollable.db.
                    cwd = work / f"round-{round_no}-{port}"
                    cwd.mkdir()
                    sample = serve_once(name, argv, port, args.idle, log, target.tree, cwd)
                samples.append(sample)
                h.log(
                    f"round {round_no + 1}/{args.rounds} {name}: first answer "
                    f"{sample.first_answer_s:.3f} s, cpu {sample.cpu_s:.2f} s, "
                    f"idle RSS {sample.idle_rss_mb:.1f} MB"
                )
            if args.phases:
                for tree, label in [(None, ""), *args.trees]:
                    phases.setdefault(label, []).append(phases_once(tree))
    env["loadavg_after"] = os.getloadavg()
    report(args, env, samples, phases)
    return 0


def _took(runs: list[Phases], i: int, field: int) -> float:
    """The median over runs of what step ``i`` added to ``field`` (wall, CPU, RSS)."""
    return h.median([run[i][field] - (run[i - 1][field] if i else 0) for run in runs])  # type: ignore[operator]


def _loads(loads: Sequence[float]) -> str:
    return "/".join(f"{x:.1f}" for x in loads)


def spread(values: Sequence[float], digits: int) -> tuple[str, str]:
    return (
        f"{h.median(values):.{digits}f}",
        f"{min(values):.{digits}f}-{max(values):.{digits}f}",
    )


def report(
    args: argparse.Namespace,
    env: dict[str, Any],
    samples: list[Sample],
    phases: dict[str, list[Phases]],
) -> None:
    names = list(dict.fromkeys(s.target for s in samples))
    rows = []
    summary: dict[str, Any] = {}
    for name in names:
        mine = [s for s in samples if s.target == name]
        answer, answer_range = spread([s.first_answer_s for s in mine], 3)
        cpu, _ = spread([s.cpu_s for s in mine], 2)
        rss, rss_range = spread([s.idle_rss_mb for s in mine], 1)
        peak, _ = spread([s.peak_rss_mb for s in mine], 1)
        statuses = sorted({s.status for s in mine})
        rows.append([name, answer, answer_range, cpu, rss, rss_range, peak, statuses])
        summary[name] = {
            "first_answer_s": h.median([s.first_answer_s for s in mine]),
            "cpu_s": h.median([s.cpu_s for s in mine]),
            "idle_rss_mb": h.median([s.idle_rss_mb for s in mine]),
            "peak_rss_mb": h.median([s.peak_rss_mb for s in mine]),
        }
    print()
    print(f"## Start-up (`python -m bench.startup`: {args.rounds} rounds, idle {args.idle:g} s)")
    print()
    print(
        h.describe(env)
        + f"; load average {_loads(env['loadavg_before'])} -> {_loads(env['loadavg_after'])}"
    )
    print()
    print(
        h.table(
            [
                "target",
                "first answer s (median)",
                "range",
                "CPU s",
                "idle RSS MB (median)",
                "range",
                "peak RSS MB",
                "status",
            ],
            rows,
        )
    )
    phase_summary: dict[str, list[dict[str, Any]]] = {}
    for label, runs in phases.items():
        print()
        print(f"Start-up steps, one process{f' [{label}]' if label else ''}, {len(runs)} runs:")
        print()
        step_rows: list[list[Any]] = []
        for i, (step, *_) in enumerate(runs[0]):
            step_rows.append(
                [
                    step,
                    f"{_took(runs, i, 1):.3f}",
                    f"{_took(runs, i, 2):.3f}",
                    f"{h.median([run[i][2] for run in runs]):.3f}",
                    f"{_took(runs, i, 3):+.1f}",
                    f"{h.median([run[i][3] for run in runs]):.1f}",
                    runs[0][i][4],
                ]
            )
            phase_summary.setdefault(label, []).append(
                {
                    "step": step,
                    "took_s": _took(runs, i, 1),
                    "cpu_s": _took(runs, i, 2),
                    "rss_mb": h.median([run[i][3] for run in runs]),
                }
            )
        print(
            h.table(
                ["step", "took s", "CPU s", "CPU s so far", "RSS added MB", "RSS MB", "modules"],
                step_rows,
            )
        )
    path = h.save_results(
        "startup",
        {
            "environment": env,
            "args": vars(args),
            "summary": summary,
            "phases": phase_summary,
            "samples": samples,
            "phase_runs": phases,
        },
    )
    print()
    print(f"raw numbers: {path.relative_to(h.ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
