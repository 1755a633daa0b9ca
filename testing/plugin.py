"""pollable's pytest plugin, registered as the ``pytest11`` entry point ``pollable``: pytest
loads it wherever pollable is installed.

Fixtures:

- ``pollable`` (per test): a ``Sandbox``, a tenant of the test's own whose keys are bound to
  a fresh test clock; deleted with everything it owns after the test. ``pollable.fault(
  status=429, operation=..., times=2)`` adds a fault rule for the test's tenant;
  ``pollable.assert_polite_polling()`` fails the test on any finding of the polling report.
- ``pollable_server`` (per session): the server the tests talk to. pollable itself, in
  this process on a free port with the memory store, or the running server named by
  ``POLLABLE_URL`` and ``POLLABLE_ADMIN_TOKEN``.
- ``pollable_settings`` (per session): the in-process server's ``Settings``; override the
  fixture in a ``conftest.py`` to change them.
- ``pollable_admin`` (per session): a ``SandboxClient`` holding the admin token.

The plugin is a client of the sandbox, not a server: it reads ``POLLABLE_URL`` and
``POLLABLE_ADMIN_TOKEN`` to find a server and nothing else. The in-process server's
settings come from ``pollable_settings``, never from ``POLLABLE_*`` variables meant for
``pollable serve``. Under pytest-xdist each worker has its own session, so its own
in-process server; every test has its own tenant either way.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from .client import SandboxClient, SandboxError
from .sandbox import Sandbox

if TYPE_CHECKING:
    from pollable.server.settings import Settings

URL_VARIABLE = "POLLABLE_URL"
TOKEN_VARIABLE = "POLLABLE_ADMIN_TOKEN"


@dataclass(frozen=True)
class SandboxServer:
    """Where the session's server is, and its admin token."""

    url: str
    admin_token: str
    in_process: bool


@pytest.fixture(scope="session")
def pollable_settings() -> Settings:
    """The in-process server's settings: the memory store and a random admin token."""
    from pollable.server.settings import Settings

    return Settings(store="memory://", admin_token=secrets.token_urlsafe(32), log_level="warning")


@pytest.fixture(scope="session")
def pollable_server(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    url = os.environ.get(URL_VARIABLE, "").strip()
    if url:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        if not token:
            pytest.fail(f"{URL_VARIABLE} is set but {TOKEN_VARIABLE} is not", pytrace=False)
        server = SandboxServer(url.rstrip("/"), token, in_process=False)
        with SandboxClient(server.url, token) as probe:
            try:
                probe.health()
            except SandboxError as exc:
                pytest.fail(f"{URL_VARIABLE}={url}: {exc}", pytrace=False)
        yield server
        return

    with warnings.catch_warnings():  # Connexion's own deprecations, nothing a user can act on
        warnings.simplefilter("ignore", DeprecationWarning)
        from pollable.server.app import create_app
    from pollable.server.protocol import uvicorn_options

    from .server import ThreadedServer

    settings: Settings = request.getfixturevalue("pollable_settings")
    if settings.admin_token is None:
        settings = dataclasses.replace(settings, admin_token=secrets.token_urlsafe(32))
    assert settings.admin_token is not None
    # pollable's protocol, as `pollable serve` runs it: bounded heads, and faults that close
    # a connection unanswered.
    options = uvicorn_options(settings)
    with ThreadedServer(create_app(settings), log_level=settings.log_level, **options) as running:
        yield SandboxServer(running.url, settings.admin_token, in_process=True)


@pytest.fixture(scope="session")
def pollable_admin(pollable_server: SandboxServer) -> Iterator[SandboxClient]:
    with SandboxClient(pollable_server.url, pollable_server.admin_token) as admin:
        yield admin


def tenant_name(test_name: str) -> str:
    """A tenant name unique on the server that still says which test it belongs to."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-._")[:40]
    return f"t-{readable}-{uuid.uuid4().hex[:12]}" if readable else f"t-{uuid.uuid4().hex}"


@pytest.fixture
def pollable(
    request: pytest.FixtureRequest, pollable_server: SandboxServer, pollable_admin: SandboxClient
) -> Iterator[Sandbox]:
    """A tenant of this test's own, its keys bound to a fresh test clock; deleted after."""
    sandbox = Sandbox.open(pollable_admin, pollable_server.url, tenant_name(request.node.name))
    try:
        yield sandbox
    finally:
        sandbox.close()
