"""A live pollable server on a real socket, for the official SDKs and the durability tests.

The server is ``pollable serve`` (``server.cli``), started in a subprocess with the venv's
interpreter, on a free port, against a SQLite file that tests provision before start-up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from pollable.handlers.registry import JOB_APIS
from pollable.server.provision import provision_tenant
from pollable.store.base import Store
from tests.conftest import Tenant, on_store

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
#: Credits large enough that no test runs out.
CREDITS = 1e12


def provision(url: str, *names: str) -> dict[str, Tenant]:
    """Tenants with a Crosmos key and a Captain key each, written into the store at ``url``."""

    async def work(store: Store) -> dict[str, Tenant]:
        return {
            name: await provision_tenant(store, name, JOB_APIS, credits=CREDITS) for name in names
        }

    return on_store(url, work)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(
    read: Callable[[], T], done: Callable[[T], bool], *, timeout: float, interval: float = 0.02
) -> T:
    """Call ``read`` until ``done`` holds for its value; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not done after {timeout}s: {value!r}")
        time.sleep(interval)


@dataclass
class LiveServer:
    """One ``pollable serve`` process; its stdout and stderr go to ``log``."""

    store: str
    log: Path
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> LiveServer:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        """Start the process without waiting for it to serve."""
        command = [
            sys.executable,
            "-c",
            "from pollable.server.cli import main; main()",
            "serve",
            "--store",
            self.store,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.options,
        ]
        environ = {
            name: value for name, value in os.environ.items() if not name.startswith("POLLABLE_")
        }
        environ.update(self.env)
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), environ.get("PYTHONPATH")])
        )
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=environ, stdout=sink, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float) -> None:
        """Poll GET /openapi.json until it answers 200. A port taken between choosing it and
        binding it is chosen again."""
        deadline = time.monotonic() + timeout
        retries = 3
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                if retries and "already in use" in self.output().lower():
                    retries -= 1
                    self.port = free_port()
                    self.spawn()
                    continue
                raise AssertionError(
                    f"server exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (uvicorn shuts down cleanly), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no lifespan exit."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


class Servers:
    """Starts live servers for one test and stops whichever are still running after it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[LiveServer] = []

    def start(
        self,
        store: str,
        *options: str,
        env: dict[str, str] | None = None,
        time_scale: float = 0.01,
    ) -> LiveServer:
        (server,) = self.start_many(1, store, *options, env=env, time_scale=time_scale)
        return server

    def start_many(
        self,
        count: int,
        store: str,
        *options: str,
        env: dict[str, str] | None = None,
        time_scale: float = 0.01,
    ) -> list[LiveServer]:
        """``count`` servers on one store, started side by side."""
        return self.start_each(store, *[options] * count, env=env, time_scale=time_scale)

    def start_each(
        self,
        store: str,
        *option_sets: tuple[str, ...],
        env: dict[str, str] | None = None,
        time_scale: float = 0.01,
    ) -> list[LiveServer]:
        """One server per set of options, on one store, started side by side."""
        started = []
        for options in option_sets:
            log = self.directory / f"server-{len(self.started)}.log"
            server = LiveServer(
                store, log, ("--time-scale", str(time_scale), *options), dict(env or {})
            )
            self.started.append(server)
            server.spawn()
            started.append(server)
        for server in started:
            server.wait_ready(30.0)
        return started

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()

    def outputs(self) -> Iterable[str]:
        return (server.output() for server in self.started)
