"""Small reusable pieces for pollable's benchmarks.

- ``Server``: start a server process on a free port, wait until it answers HTTP, stop it.
- ``pollable_server`` / ``ceiling_server``: the two servers the benchmarks compare.
- ``provision``: a tenant with Crosmos and Captain keys, written into a store before the
  server that uses it starts (``store.open_store`` + ``server.provision.issue_key``).
- ``run_load``: a load generator (``wrk`` when it is on PATH, else an asyncio + httpx
  fallback that says so), parsed into ``LoadResult`` (req/s, p50, p99).
- ``median``, ``percentile``, ``table``, ``environment``, ``save_results``, ``log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pollable.handlers.registry import JOB_APIS
from pollable.server.provision import TenantKeys, provision_tenant

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"

_START = time.monotonic()


def log(message: str) -> None:
    """Progress, on stderr, with the seconds since the run started."""
    print(f"[{time.monotonic() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerError(RuntimeError):
    pass


class Server:
    """A server process (``argv`` must make it listen on 127.0.0.1:``port``)."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> Server:
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us, and we stop it
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until the server answers any HTTP request (uvicorn listens after its lifespan
        startup, so an answer means the app is ready)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"{self.name} did not answer within {timeout}s:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (lifespan end)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pollable_server(
    name: str,
    store_url: str,
    log_dir: Path,
    *,
    validate_responses: bool = True,
    request_log: bool = True,
    polling_headers: bool = True,
    time_scale: float | None = None,
    extra: Sequence[str] = (),
) -> Server:
    """pollable under uvicorn, one worker, loop/http auto (see ``bench.serve``); ``extra``
    are more of its flags."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.serve", "--store", store_url, "--port", str(port)]
    if not validate_responses:
        argv.append("--no-validate-responses")
    if not request_log:
        argv.append("--no-request-log")
    if not polling_headers:
        argv.append("--no-polling-headers")
    if time_scale is not None:
        argv += ["--time-scale", repr(time_scale)]
    argv += extra
    return Server(name, argv, port, log_dir)


def ceiling_server(name: str, bodies: Mapping[str, bytes], log_dir: Path) -> Server:
    """The bare Starlette ceiling answering ``bodies`` (path -> bytes)."""
    path = log_dir / f"{name}-bodies.json"
    path.write_text(json.dumps({p: b.decode() for p, b in bodies.items()}))
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceiling_app", "--bodies", str(path), "--port", str(port)]
    return Server(name, argv, port, log_dir)


def peer_server(
    name: str, db: Path, log_dir: Path, *, sync: bool, style: str = "tutorial"
) -> Server:
    """The FastAPI peer (``bench.peer_fastapi``) on the SQLite file ``db``."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.peer_fastapi", "--db", str(db), "--port", str(port)]
    argv += ["--style", style]
    return Server(name, [*argv, "--sync"] if sync else argv, port, log_dir)


#: Stoplight Prism, the usual alternative: a mock server generated from the same documents.
PRISM_PACKAGE = "@stoplight/prism-cli@5"
PRISM_HOME = ROOT / "bench" / ".prism"


def prism_binary() -> Path | None:
    """Prism's CLI, installed with npm into bench/.prism on first use; None without npm."""
    binary = PRISM_HOME / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        return None
    log(f"installing {PRISM_PACKAGE} into {PRISM_HOME.relative_to(ROOT)} (once)")
    PRISM_HOME.mkdir(parents=True, exist_ok=True)
    command = [
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--prefix",
        str(PRISM_HOME),
        PRISM_PACKAGE,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log(f"npm could not install Prism: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return binary if binary.exists() else None


def prism_server(name: str, document: Path, log_dir: Path) -> Server | None:
    """Prism mocking ``document`` (static examples, request validation on), or None."""
    binary = prism_binary()
    if binary is None:
        return None
    port = free_port()
    argv = [str(binary), "mock", "--host", "127.0.0.1", "--port", str(port), str(document)]
    return Server(name, argv, port, log_dir)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A scratch directory in /tmp for stores, logs and bodies; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"pollable-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- tenants and jobs ---------------------------------------------------------------------


def provision(store_url: str, name: str = "bench", credits: float = 1e12) -> TenantKeys:
    """A tenant with one key per API, written into the store before a server opens it."""
    from pollable.store import open_store

    async def run() -> TenantKeys:
        store = open_store(store_url)
        await store.open()
        try:
            return await provision_tenant(store, name, JOB_APIS, credits=credits)
        finally:
            await store.close()

    return asyncio.run(run())


#: Shape-valid, fake credentials (checked for shape only; never stored).
FAKE_AWS = {
    "aws_access_key_id": "AKIA" + "BENCHMARK0000000",
    "aws_secret_access_key": "b" * 40,
}


def create_crosmos_job(
    base_url: str, tenant: TenantKeys, *, sources: int = 3, scenario: str = "instant"
) -> str:
    """POST /api/v1/sources: a Crosmos job, exactly as a client makes one."""
    import httpx

    body = {
        "space_id": "6f1c2b9e-4d1a-4c1e-9a51-3c0e2f6b7a10",
        "sources": [
            {"content": f"Meeting notes {i}: the team agreed to ship the ingestion API. " * 4}
            for i in range(sources)
        ],
    }
    headers = {**tenant.crosmos, "Prefer": f"scenario={scenario}"}
    reply = httpx.post(f"{base_url}/api/v1/sources", json=body, headers=headers, timeout=60)
    if reply.status_code != 202:
        raise ServerError(f"POST /api/v1/sources -> {reply.status_code}: {reply.text[:500]}")
    return str(reply.json()["job_id"])


def create_captain_job(
    base_url: str,
    tenant: TenantKeys,
    *,
    collection: str,
    bucket: str,
    max_files: int,
    scenario: str,
    extra_headers: Mapping[str, str] | None = None,
) -> str:
    """POST /v2/collections/{c}/index/s3 with ``max_files``: a Captain job of that many
    (synthetic) files, exactly as a client makes one."""
    import httpx

    body = {
        "bucket_name": bucket,
        **FAKE_AWS,
        "processing_type": "basic",
        "max_files": max_files,
        "skip_existing": False,
    }
    headers = {**tenant.captain, "Prefer": f"scenario={scenario}", **(extra_headers or {})}
    url = f"{base_url}/v2/collections/{collection}/index/s3"
    reply = httpx.post(url, json=body, headers=headers, timeout=600)
    if reply.status_code != 202:
        raise ServerError(f"POST {url} -> {reply.status_code}: {reply.text[:500]}")
    return str(reply.json()["job_id"])


def fetch(base_url: str, path: str, headers: Mapping[str, str]) -> bytes:
    """One GET that must answer 200; the body's bytes."""
    import httpx

    reply = httpx.get(base_url + path, headers=dict(headers), timeout=60)
    if reply.status_code != 200:
        raise ServerError(f"GET {path} -> {reply.status_code}: {reply.text[:500]}")
    return reply.content


# -- load generation ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    #: Socket errors, timeouts and responses with a status >= 400.
    errors: int


_WRK_SCRIPT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %.0f, \"duration_us\": %.0f, \"connect\": %.0f, " ..
    "\"read\": %.0f, \"write\": %.0f, \"status\": %.0f, \"timeout\": %.0f, " ..
    "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f}\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    path = wrk_path()
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def load_tool(tool: str = "auto") -> str:
    version = wrk_version() if tool != "python" else None
    if version is not None:
        return version
    if tool == "python":
        return "python asyncio+httpx load generator (chosen with --load python)"
    return "python asyncio+httpx load generator (FALLBACK: wrk is not installed)"


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, every thread's (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(pid: int, load: Callable[[], LoadResult]) -> tuple[LoadResult, float]:
    """``load()``, and the server's CPU microseconds per request it answered meanwhile: on a
    shared machine a steadier measure of a server's own cost than its throughput, which
    also moves with whatever else takes the CPUs."""
    before = cpu_seconds(pid)
    result = load()
    spent = cpu_seconds(pid) - before
    return result, spent / max(result.requests, 1) * 1e6


def run_load(
    url: str,
    headers: Mapping[str, str],
    *,
    duration: float,
    connections: int = 32,
    threads: int = 1,
    tool: str = "auto",
) -> LoadResult:
    """Load ``url`` with GETs for ``duration`` seconds over ``connections`` keep-alive
    connections: wrk when available (``tool="auto"``), else the Python fallback."""
    if tool == "wrk" or (tool == "auto" and wrk_path() is not None):
        return run_wrk(url, headers, duration=duration, connections=connections, threads=threads)
    return run_python_load(url, headers, duration=duration, connections=connections)


def run_wrk(
    url: str,
    headers: Mapping[str, str],
    *,
    duration: float,
    connections: int = 32,
    threads: int = 1,
    lua: str = "",
) -> LoadResult:
    """wrk on ``url``; ``lua`` is prepended to the script that reports the numbers (a
    ``request`` function or ``wrk.method``/``wrk.body`` make other requests than a GET)."""
    path = wrk_path()
    assert path is not None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + _WRK_SCRIPT)
    try:
        argv = [
            path,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
        ]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        argv.append(url)
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        os.unlink(script.name)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            break
    else:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    seconds = data["duration_us"] / 1e6
    errors = sum(int(data[k]) for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        tool="wrk",
        requests=int(data["requests"]),
        seconds=seconds,
        rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
    )


def run_python_load(
    url: str, headers: Mapping[str, str], *, duration: float, connections: int = 32
) -> LoadResult:
    """The fallback load generator: ``connections`` asyncio tasks, each a keep-alive GET
    loop over httpx. One Python process: it may saturate before the server does, so its
    numbers are lower bounds and only comparable with each other."""
    import httpx

    async def run() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        # One client (one connection) per worker: httpx's shared pool slows down sharply
        # with many concurrent requests.
        clients = [
            httpx.AsyncClient(
                headers=dict(headers), timeout=10, limits=httpx.Limits(max_connections=1)
            )
            for _ in range(connections)
        ]
        start = time.perf_counter()
        deadline = start + duration

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    reply = await client.get(url)
                    if reply.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        try:
            await asyncio.gather(*(worker(client) for client in clients))
        finally:
            seconds = time.perf_counter() - start
            for client in clients:
                await client.aclose()
        return latencies, errors, seconds

    try:
        import uvloop

        latencies, errors, seconds = uvloop.run(run())
    except ImportError:
        latencies, errors, seconds = asyncio.run(run())
    ms = [x * 1000 for x in latencies]
    return LoadResult(
        tool="python-httpx",
        requests=len(latencies),
        seconds=seconds,
        rps=len(latencies) / seconds,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        errors=errors,
    )


# -- statistics and reporting -------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(tool: str = "auto") -> dict[str, Any]:
    """Where and with what a run happened."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    packages = (
        "uvicorn",
        "uvloop",
        "httptools",
        "starlette",
        "connexion",
        "jsonschema-rs",
        "orjson",
        "httpx",
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": usable,
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_tool": load_tool(tool),
        "packages": {name: _version(name) for name in packages},
    }


def describe(env: Mapping[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    return (
        f"{env['date']}; {env['cpus']} CPUs ({env['cpu_model'] or 'unknown model'}); "
        f"Python {env['python']}; SQLite {env['sqlite']}; load: {env['load_tool']}; {packages}"
    )


def save_results(name: str, data: Mapping[str, Any]) -> Path:
    """Write a run's numbers to bench/results/<name>-<UTC time>.json (git-ignored)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=_jsonable))
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)
