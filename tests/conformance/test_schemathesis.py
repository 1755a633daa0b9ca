"""Schemathesis as users run it: the ``st`` command, started from the repository root so it
reads the shipped ``schemathesis.toml`` and nothing else, with ``--checks all`` and every
phase (examples, coverage, fuzzing, stateful), against a real ``pollable serve``.

Every contract (Crosmos, Captain, and the sandbox control plane as the admin and as a
tenant's key) runs on both backends, each with its own seed, so each meets two seeds. A contract's two runs go side by side, each against its own server. The tenant and
its fixed keys come from ``fixtures/schemathesis.yaml``, loaded by ``serve --fixtures``,
and reach Schemathesis as a user passes them: ``-H``. Jobs run 1000x faster than real
time, so the stateful phase meets them pending, running and done.

A run passes when ``st`` exits 0 and its JSON report shows every operation tested, every
phase run, no failure, no error, no warning, and valid data accepted by every operation
that takes it (so a broken key cannot pass as a run of 401s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pollable.handlers.registry import APIS
from pollable.server import contract
from pollable.server.operation import compile_operations
from tests.conformance.live import ROOT, Servers

pytestmark = pytest.mark.slow

ST = Path(sys.executable).with_name("st")
CONFIG = ROOT / "schemathesis.toml"
FIXTURE = ROOT / "fixtures" / "schemathesis.yaml"
ORGANIZATION = "5c1e7d2a-9f4b-4c3e-8a6d-2b7f0e9c1d45"
#: The control plane's admin token, given to every server with --admin-token.
ADMIN_TOKEN = "schemathesis-admin-token-0001"
HEADERS = {
    "crosmos": ["Authorization: Bearer csk_schemathesis_0001"],
    "captain": [
        "Authorization: Bearer cap_dev_schemathesis_0001",
        f"X-Organization-ID: {ORGANIZATION}",
    ],
    # The control plane, as its two kinds of caller: the admin, and a tenant's own key.
    "sandbox-admin": [f"Authorization: Bearer {ADMIN_TOKEN}"],
    "sandbox-tenant": ["Authorization: Bearer csk_schemathesis_0001"],
}


def _operations(api: str) -> int:
    return sum(1 for _ in compile_operations(contract.load(APIS[api]).document))


#: The served document of each run's contract, and how many operations it has.
CONTRACTS = {
    "crosmos": ("/openapi.json", _operations("crosmos")),
    "captain": ("/v2/openapi.json", _operations("captain")),
    "sandbox-admin": ("/sandbox/openapi.json", _operations("sandbox")),
    "sandbox-tenant": ("/sandbox/openapi.json", _operations("sandbox")),
}
#: Operations a caller can never be granted: a tenant's key is refused what only the admin
#: may do (403), so no valid request of its run is accepted there.
NEVER_GRANTED = {
    "sandbox-tenant": {"POST /sandbox/v1/tenants", "DELETE /sandbox/v1/tenants/{tenant_id}"}
}
_CLOCK_OPERATIONS = {
    "GET /sandbox/v1/clocks/{clock_id}", "DELETE /sandbox/v1/clocks/{clock_id}",
    "POST /sandbox/v1/clocks/{clock_id}/advance",
}  # fmt: skip
#: Fault rules, like clocks, belong to the tenant the admin names (tenant_id).
_FAULT_OPERATIONS = {
    "GET /sandbox/v1/faults/{fault_id}", "DELETE /sandbox/v1/faults/{fault_id}",
}  # fmt: skip
#: A request id comes only from a response's Request-Id header, which no link can follow.
_LOG_ENTRY = {"GET /sandbox/v1/requests/{request_id}"}
#: A job, like a clock, belongs to the tenant the admin names; its id comes from a job
#: API's create, which no link of this contract can follow.
_JOB = {"GET /sandbox/v1/jobs/{job_id}", "GET /sandbox/v1/jobs/{job_id}/items"}
#: Warnings a run may end with, by kind, and only for these operations; each says why.
#: - missing_auth: only 401/403 came back where the caller is never granted the operation.
#: - missing_test_data: only 404s: an id only a created resource gives, and the run's
#:   creations were mostly refused by design (the admin without `tenant_id`; a key bound
#:   to an invented clock), so few links had a resource to follow.
#: - validation_mismatch: mostly 422s: the admin names no tenant as often as not; and an
#:   advance ``until`` a job names it by id, which a generator invents (a job the tenant
#:   does not have is 422 on that field), so a tenant's advances can be mostly 422 too.
EXPECTED_WARNINGS = {
    "sandbox-admin": {
        "missing_test_data": _CLOCK_OPERATIONS | _FAULT_OPERATIONS | _LOG_ENTRY | _JOB,
        "validation_mismatch": _CLOCK_OPERATIONS | _FAULT_OPERATIONS | _JOB,
    },
    "sandbox-tenant": {
        "missing_auth": NEVER_GRANTED["sandbox-tenant"],
        "validation_mismatch": {"POST /sandbox/v1/clocks/{clock_id}/advance"},
        "missing_test_data": _CLOCK_OPERATIONS
        | _LOG_ENTRY
        | {"DELETE /sandbox/v1/tenants/{tenant_id}/keys/{key_id}"},
    },
}
#: (contract, backend, seed): each contract on each backend, with two seeds in all.
RUNS = [
    ("crosmos", "memory", 1),
    ("crosmos", "sqlite", 2),
    ("captain", "memory", 1),
    ("captain", "sqlite", 2),
    ("sandbox-admin", "memory", 1),
    ("sandbox-admin", "sqlite", 2),
    ("sandbox-tenant", "memory", 2),
    ("sandbox-tenant", "sqlite", 1),
]
TIME_SCALE = 0.001
TIMEOUT = 900


@dataclass
class Run:
    api: str
    backend: str
    seed: int
    process: subprocess.Popen[bytes]
    output: Path
    report_dir: Path

    def wait(self) -> tuple[str, dict[str, Any]]:
        """The command's output and its JSON report, once it has exited."""
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        text = self.output.read_text(encoding="utf-8", errors="replace")
        reports = sorted(self.report_dir.glob("*.json"))
        assert reports, f"st wrote no JSON report:\n{text}"
        return text, json.loads(reports[-1].read_text(encoding="utf-8"))


def st_command(url: str, api: str, seed: int, report_dir: Path) -> list[str]:
    headers = [part for header in HEADERS[api] for part in ("-H", header)]
    return [
        str(ST), "run", url,
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--seed", str(seed),
        *headers,
        "--report", "json", "--report-dir", str(report_dir),
    ]  # fmt: skip


class Runs:
    """Starts the runs of one contract together (one server each, so that no run waits for
    another's requests) and keeps them until the module ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers = Servers(directory)
        self.started: dict[tuple[str, str], Run] = {}

    def get(self, api: str, backend: str) -> Run:
        if (api, backend) not in self.started:
            for name, other, seed in RUNS:
                if name == api:
                    self.started[(api, other)] = self._start(api, other, seed)
        return self.started[(api, backend)]

    def _start(self, api: str, backend: str, seed: int) -> Run:
        name = f"{api}-{backend}"
        store = "memory://" if backend == "memory" else f"sqlite:///{self.directory}/{name}.db"
        server = self.servers.start(
            store, "--fixtures", str(FIXTURE), "--admin-token", ADMIN_TOKEN, time_scale=TIME_SCALE
        )
        report_dir = self.directory / f"report-{name}"
        output = self.directory / f"st-{name}.txt"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("POLLABLE_")}
        with output.open("wb") as sink:
            process = subprocess.Popen(
                st_command(server.url + CONTRACTS[api][0], api, seed, report_dir),
                cwd=ROOT,
                env=environ,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        return Run(api, backend, seed, process, output, report_dir)

    def close(self) -> None:
        for run in self.started.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(10)
        self.servers.stop_all()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    started = Runs(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield started
    finally:
        started.close()


def _summary(text: str) -> str:
    """The command's closing summary (from its SUMMARY banner on)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "SUMMARY" in line), 0)
    return "\n".join(lines[start:])


def _accepted(report: dict[str, Any], operation: str) -> int:
    phases = report["valid_rates"].get(operation, {}).values()
    return sum(int(phase.get("accepted", 0)) for phase in phases)


@pytest.mark.parametrize(("api", "backend", "seed"), RUNS)
def test_schemathesis_finds_nothing(
    runs: Runs, schemathesis_runs: list[str], api: str, backend: str, seed: int
) -> None:
    run = runs.get(api, backend)
    text, report = run.wait()
    summary = _summary(text)
    print(f"\n-- st run {api} on {backend}, seed {seed} --\n{summary}")
    counts = report["test_cases"]
    schemathesis_runs.append(
        f"{api:8} {backend:7} seed {seed}: {counts['generated']:5} cases, "
        f"{counts['with_failures']} failed, {report['running_time']:5.1f} s"
    )
    assert run.process.returncode == 0, text[-20000:]
    # It ran with the shipped configuration, found as a user's run finds it.
    assert re.search(rf"Configuration:\s+{re.escape(str(CONFIG))}\n", text), text[:2000]
    assert (report["exit_code"], report["complete"]) == (0, True), summary
    assert report["failures"] == [] and report["errors"] == [], summary
    assert report["seed"] == seed
    expected = EXPECTED_WARNINGS.get(api, {})
    warnings = {
        name: unexpected
        for name, found in report["warnings"].items()
        if (unexpected := set(found or ()) - expected.get(name, set()))
    }
    if api.startswith("sandbox"):
        # Whether a run's links met a resource to follow (a key, a clock, a tenant) depends
        # on ids the server makes at random: any operation that addresses one by id may
        # end a run with only 404s.
        by_id = {name for name in warnings.get("missing_test_data", ()) if "{" in name}
        if by_id:
            warnings["missing_test_data"] -= by_id
            warnings = {name: found for name, found in warnings.items() if found}
    assert not warnings, warnings
    operations = report["operations"]
    total = CONTRACTS[api][1]
    assert operations["total"] == operations["tested"] == total, operations
    phases = {name: phase["status"] for name, phase in report["phases"].items()}
    # The contracts carry no examples: that phase runs and has nothing to send.
    assert phases["examples"] in ("skip", "success"), phases
    assert {phases[name] for name in ("coverage", "fuzzing", "stateful")} == {"success"}, phases
    # Valid data got through: every operation that needs no existing resource accepted
    # some, unless its caller can never be granted it.
    for operation in report["valid_rates"]:
        if "{" not in operation and operation not in NEVER_GRANTED.get(api, set()):
            assert _accepted(report, operation) > 0, (operation, report["valid_rates"])
