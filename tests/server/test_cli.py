"""The ``pollable`` command (server.cli), through click's CliRunner on SQLite stores."""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import jwt
import pytest
from starlette.testclient import TestClient

import pollable
from pollable.handlers.descriptor import hash_key
from pollable.handlers.registry import APIS, JOB_APIS
from pollable.server import banner, cli
from pollable.server.app import create_app
from pollable.server.protocol import BoundedHttpToolsProtocol
from pollable.server.seed import Operations
from pollable.server.settings import Settings
from pollable.store import UnsupportedStore, open_store
from pollable.store.base import Store, Tenant
from tests.conftest import on_store
from tests.server.cli_runner import fails, invoke, ok

SPACE = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets reaches Settings; serve's workers write to a copy."""
    monkeypatch.setattr(
        os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("POLLABLE_")}
    )


@pytest.fixture(autouse=True)
def compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling both contracts takes a second: do it once per validation mode, not per command."""
    monkeypatch.setattr(cli, "Operations", cache(Operations))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def url(db: Path) -> str:
    return f"sqlite:///{db}"


def tenant(url: str, name: str) -> Tenant | None:
    return on_store(url, lambda store: store.find_tenant(name))


# -- help -----------------------------------------------------------------------------------


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


ALL_COMMANDS = list(commands(cli.cli))


def test_every_command_is_known() -> None:
    assert set(ALL_COMMANDS) >= {
        (),
        ("serve",),
        ("keys", "create"),
        ("tokens", "create"),
        ("tenants", "default-scenario"),
        ("seed",),
        ("jobs", "show"),
    }


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda path: " ".join(path) or "pollable")
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_of_every_command(path: tuple[str, ...], flag: str) -> None:
    text = ok(*path, flag)
    assert text.startswith("Usage: pollable")
    command: Any = cli.cli
    for name in path:
        command = command.commands[name]
    assert command.help, f"{path} has no help"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{path} option {param.name} has no help"


#: A URL in a help text: scheme://, then up to a space or a closing mark.
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s,;)\]]*")


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda path: " ".join(path) or "pollable")
def test_help_names_only_stores_that_exist(path: tuple[str, ...]) -> None:
    """Every store URL a help text shows is one ``open_store`` accepts."""
    text = ok(*path, "--help")
    for url in URL.findall(text):
        if not url.startswith(("http://", "https://")):
            try:
                open_store(url.rstrip("."))
            except UnsupportedStore as exc:
                pytest.fail(f"pollable {' '.join(path)} --help names {url}: {exc}")
    try:
        open_store("postgresql://localhost/pollable")
    except UnsupportedStore:  # not yet: no help may promise it, even without a URL
        assert "postgres" not in text.lower()


def test_store_help_names_every_store() -> None:
    serve, seed = ok("serve", "--help"), ok("seed", "--help")
    assert "memory://" in serve and "sqlite:///path.db" in serve
    assert "memory://" not in seed and "sqlite:///path.db" in seed


def test_version() -> None:
    assert ok("--version") == f"pollable {pollable.__version__}\n"
    assert pollable.__version__ == metadata.version("pollable")


def test_seed_help_documents_the_fixture_format() -> None:
    text = ok("seed", "--help")
    for field in ("tenants:", "keys:", "jobs:", "operation:", "params:", "scenario:", "created:"):
        assert field in text


# -- keys create ----------------------------------------------------------------------------


def test_keys_create_prints_only_a_working_key(url: str, db: Path) -> None:
    key = ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url).strip()
    assert key.startswith("csk_")
    assert "\n" not in key
    owner = on_store(url, lambda store: store.tenant_for_key("crosmos", hash_key(key)))
    assert owner is not None and owner.name == "acme"
    raw = b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*"))
    assert key.encode() not in raw


def test_keys_create_json_reuses_the_tenant(url: str) -> None:
    first = json.loads(
        ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--json", "--store", url)
    )
    second = json.loads(
        ok("keys", "create", "--tenant", "acme", "--api", "captain", "--env", "prod", "--json",
           "--store", url)
    )  # fmt: skip
    assert first["tenant"] == second["tenant"] == "acme"
    assert first["api"] == "crosmos" and second["api"] == "captain"
    assert second["key"].startswith("cap_prod_")
    found = tenant(url, "acme")
    assert found is not None
    assert first["organization_id"] == second["organization_id"] == found.organization_id
    owner = on_store(url, lambda store: store.tenant_for_key("captain", hash_key(second["key"])))
    assert owner == found


def test_keys_create_reads_the_store_from_the_environment(url: str) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "captain", env={"POLLABLE_STORE": url})
    assert tenant(url, "acme") is not None


def test_keys_create_mistakes(url: str) -> None:
    base = ("keys", "create", "--tenant", "acme")
    assert "--env of a crosmos key must be dev" in fails(
        *base, "--api", "crosmos", "--env", "prod", "--store", url, code=2
    )
    assert "'cobol'" in fails(*base, "--api", "cobol", "--store", url, code=2)
    assert "unsupported store 'mysql'" in fails(*base, "--api", "crosmos", "--store", "mysql://x")
    assert "store must be a URL" in fails(*base, "--api", "crosmos", "--store", "pollable.db")
    assert "memory:// keeps nothing" in fails(*base, "--api", "crosmos", "--store", "memory://")
    assert "POLLABLE_TIME_SCALE" in fails(
        *base, "--api", "crosmos", "--store", url, env={"POLLABLE_TIME_SCALE": "fast"}
    )


# -- tokens create --------------------------------------------------------------------------


def test_tokens_create_signs_with_the_stores_secret(url: str) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url)
    token = ok("tokens", "create", "--tenant", "acme", "--ttl", "60", "--store", url).strip()
    secret = on_store(url, lambda store: store.meta("jwt_secret", "not this one"))
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "acme"
    assert claims["exp"] - claims["iat"] == 60


def test_tokens_create_uses_a_configured_secret(url: str) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url)
    env = {"POLLABLE_JWT_SECRET": "s3cret-for-tests-0123456789abcdef"}
    shown = json.loads(
        ok("tokens", "create", "--tenant", "acme", "--json", "--store", url, env=env)
    )
    claims = jwt.decode(shown["token"], env["POLLABLE_JWT_SECRET"], algorithms=["HS256"])
    assert claims["sub"] == shown["tenant"] == "acme"
    assert shown["expires_at"] == claims["exp"]


def test_tokens_create_mistakes(url: str) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url)
    assert "unknown tenant 'ghost'" in fails(
        "tokens", "create", "--tenant", "ghost", "--store", url
    )
    fails("tokens", "create", "--tenant", "acme", "--ttl", "0", "--store", url, code=2)


# -- tenants default-scenario ---------------------------------------------------------------


def test_default_scenario_is_set_and_cleared(url: str) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url)
    assert "partial" in ok("tenants", "default-scenario", "acme", "partial", "--store", url)
    found = tenant(url, "acme")
    assert found is not None and found.default_scenario == "partial"
    ok("tenants", "default-scenario", "acme", "none", "--store", url)
    found = tenant(url, "acme")
    assert found is not None and found.default_scenario is None


def test_default_scenario_mistakes(url: str) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url)
    error = fails("tenants", "default-scenario", "acme", "sunny", "--store", url, code=2)
    assert "unknown scenario 'sunny'" in error and "stuck_pending" in error
    assert "unknown tenant 'ghost'" in fails(
        "tenants", "default-scenario", "ghost", "happy", "--store", url
    )
    found = tenant(url, "acme")
    assert found is not None and found.default_scenario is None


# -- commands that read ---------------------------------------------------------------------

MISSING_JOB = "6b1f8f1e-3c1a-4f7e-9a55-0d9f0f4b2a10"
READERS = [
    ("jobs", "show", MISSING_JOB, "--tenant", "acme"),
    ("tokens", "create", "--tenant", "acme"),
    ("tenants", "default-scenario", "acme", "happy"),
]


@pytest.mark.parametrize("command", READERS, ids=lambda command: " ".join(command[:2]))
def test_commands_that_read_create_no_store(command: tuple[str, ...], tmp_path: Path) -> None:
    """Only keys create, seed and serve make a store; the others need one to read."""
    db = tmp_path / "data" / "typo.db"
    expected = f"Error: no store at {db}; check --store or $POLLABLE_STORE"
    assert fails(*command, "--store", f"sqlite:///{db}") == expected
    assert fails(*command, env={"POLLABLE_STORE": f"sqlite:///{db}"}) == expected
    secret = {"POLLABLE_JWT_SECRET": "s3cret-for-tests-0123456789abcdef"}
    assert fails(*command, "--store", f"sqlite:///{db}", env=secret) == expected
    assert list(tmp_path.iterdir()) == []


# -- seed and jobs show ---------------------------------------------------------------------


def write_fixture(tmp_path: Path, jobs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "fixture.json"
    tenants = [{"name": "acme", "keys": [{"api": "crosmos", "key": "csk_fixture_acme_0001"}]}]
    path.write_text(json.dumps({"tenants": tenants, "jobs": jobs}))
    return path


def sources_job(name: str, scenario: str, created: str = "-1h", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tenant": "acme",
        "operation": "ingest_sources_api_v1_sources_post",
        "body": {"space_id": SPACE, "sources": [{"content": f"{name}"}]},
        "scenario": scenario,
        "created": created,
        **extra,
    }


def show(url: str, job_id: str, *extra: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(
        ok("jobs", "show", job_id, "--tenant", "acme", "--store", url, *extra)
    )
    return shown


def test_seed_then_show_jobs_as_the_contract_presents_them(tmp_path: Path, url: str) -> None:
    jobs = [sources_job("done", "happy"), sources_job("stuck", "stuck_pending")]
    out = json.loads(ok("seed", str(write_fixture(tmp_path, jobs)), "--store", url))
    found = tenant(url, "acme")
    assert found is not None
    assert out["tenants"] == {"acme": found.organization_id}
    assert out["keys"] == [{"tenant": "acme", "api": "crosmos", "key": "csk_fixture_acme_0001"}]
    assert set(out["jobs"]) == {"done", "stuck"}

    done = show(url, out["jobs"]["done"])
    assert done["job_id"] == out["jobs"]["done"]
    assert done["status"] == "completed"
    assert done["result"]["failed_source_ids"] == []
    assert show(url, out["jobs"]["stuck"])["status"] == "pending"


def test_jobs_show_at_another_time(tmp_path: Path, url: str) -> None:
    created = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    job = sources_job("then", "happy", created=created.isoformat())
    out = json.loads(ok("seed", str(write_fixture(tmp_path, [job])), "--store", url))
    job_id = out["jobs"]["then"]
    assert show(url, job_id, "--at", "2024-05-01T12:00:00Z")["status"] == "pending"
    assert show(url, job_id, "--at", "2024-05-01T13:00:00Z")["status"] == "completed"
    assert show(url, job_id)["created_at"] == "2024-05-01T12:00:00Z"


def test_jobs_show_a_captain_job_with_query_parameters(tmp_path: Path, url: str) -> None:
    job = {
        "name": "urls",
        "tenant": "acme",
        "operation": "index_url_v2",
        "params": {"collection_name": "docs"},
        "body": {"urls": ["https://example.com/a.pdf", "https://example.com/b.pdf"],
                 "processing_type": "basic"},
        "scenario": "happy",
        "created": "-1h",
    }  # fmt: skip
    out = json.loads(ok("seed", str(write_fixture(tmp_path, [job])), "--store", url))
    shown = show(url, out["jobs"]["urls"], "-p", "files_limit=1")
    assert shown["status"] == "completed"
    assert len(shown["files"]) == 1
    assert shown["files_page"]["next_cursor"]


def test_seed_shows_progress_for_many_jobs(tmp_path: Path, url: str) -> None:
    fixture = write_fixture(tmp_path, [sources_job("bulk", "instant", count=cli.HANDFUL + 1)])
    result = invoke("seed", str(fixture), "--store", url)
    assert result.exit_code == 0, result.output
    assert "Seeding jobs" in result.stderr
    assert len(json.loads(result.stdout)["jobs"]) == cli.HANDFUL + 1


def test_seed_refuses_a_job_that_breaks_the_contract(tmp_path: Path, url: str) -> None:
    broken = sources_job("broken", "happy", body={"space_id": SPACE, "sources": []})
    error = fails("seed", str(write_fixture(tmp_path, [broken])), "--store", url)
    assert "job 'broken'" in error
    assert "422" in error and "body.sources" in error


def test_seed_mistakes(tmp_path: Path, url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobs: [\n")
    assert "is not valid YAML" in fails("seed", str(bad), "--store", url)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("tenant: []\n")
    assert "unknown field(s) tenant" in fails("seed", str(unknown), "--store", url)
    fails("seed", str(tmp_path / "missing.yaml"), "--store", url, code=2)


def test_jobs_show_mistakes(tmp_path: Path, url: str) -> None:
    out = json.loads(ok("seed", str(write_fixture(tmp_path, [])), "--store", url))
    assert out["jobs"] == {}
    missing = "6b1f8f1e-3c1a-4f7e-9a55-0d9f0f4b2a10"
    assert f"tenant 'acme' has no job '{missing}'" in fails(
        "jobs", "show", missing, "--tenant", "acme", "--store", url
    )
    assert "unknown tenant 'ghost'" in fails(
        "jobs", "show", missing, "--tenant", "ghost", "--store", url
    )
    fails("jobs", "show", missing, "--tenant", "acme", "--at", "soon", "--store", url, code=2)


# -- serve ----------------------------------------------------------------------------------


@pytest.fixture
def port() -> int:
    """A port nothing listens on: serve checks its address before anything else."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port someone else's server listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """What serve hands to uvicorn, instead of serving."""
    import uvicorn

    runs: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append((app, kwargs)))
    return runs


def test_bootstrap_demo_on_an_empty_store_only(url: str) -> None:
    settings = Settings(store=url)
    demo = on_store(url, lambda store: cli.bootstrap_demo(store, settings))
    assert demo is not None
    assert demo.tenant.name == "demo"
    assert demo.crosmos_key.startswith("csk_")
    assert demo.captain_key.startswith("cap_dev_")

    async def owners(store: Store) -> list[Tenant | None]:
        return [
            await store.tenant_for_key("crosmos", hash_key(demo.crosmos_key)),
            await store.tenant_for_key("captain", hash_key(demo.captain_key)),
        ]

    assert on_store(url, owners) == [demo.tenant, demo.tenant]
    assert on_store(url, lambda store: cli.bootstrap_demo(store, settings)) is None


def test_the_demo_banners_calls_work(url: str) -> None:
    """The curl lines the banner prints, made against the app on the same store."""
    settings = Settings(store=url)
    demo = on_store(url, lambda store: cli.bootstrap_demo(store, settings))
    assert demo is not None
    text = banner.demo_banner(demo, settings)
    for shown in (demo.crosmos_key, demo.captain_key, demo.tenant.organization_id):
        assert shown in text
    assert "http://127.0.0.1:8000/api/v1/sources" in text
    assert "http://127.0.0.1:8000/api/v1/jobs/JOB_ID" in text
    assert "http://127.0.0.1:8000/v2/collections/demo/index/url" in text
    with TestClient(create_app(settings)) as client:
        for api in JOB_APIS:
            call = api.demo
            assert call is not None
            assert json.dumps(call.body) in text
            headers = demo.headers(api.name)
            created = client.post(call.create_path, json=dict(call.body), headers=headers)
            assert created.status_code == 202, created.text
            poll = call.poll_path.replace("JOB_ID", created.json()["job_id"])
            polled = client.get(poll, headers=headers)
            assert polled.status_code == 200, polled.text


def test_a_memory_store_bootstraps_inside_the_server() -> None:
    settings = Settings(store="memory://")
    announced: list[cli.Demo | None] = []
    app = cli.DemoOnStartup(create_app(settings), settings, announced.append)
    with TestClient(app) as client:
        (demo,) = announced
        assert demo is not None
        headers = {"Authorization": f"Bearer {demo.crosmos_key}"}
        body = dict(APIS["crosmos"].demo.body)
        created = client.post("/api/v1/sources", json=body, headers=headers)
        assert created.status_code == 202, created.text


def test_serve_bootstraps_then_runs_one_worker(
    url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    text = ok("serve", "--store", url, "--port", str(port), "--log-level", "WARNING")
    found = tenant(url, "demo")
    assert found is not None
    assert found.organization_id in text
    assert "Crosmos key      csk_" in text and "Captain key      cap_dev_" in text
    assert f"curl -s -X POST http://127.0.0.1:{port}/api/v1/sources" in text
    assert f"curl -s http://127.0.0.1:{port}/api/v1/jobs/JOB_ID" in text
    assert f"http://127.0.0.1:{port}/v2/collections/demo/index/url" in text
    assert "X-Organization-ID: " + found.organization_id in text
    assert f"http://127.0.0.1:{port}/docs" in text and f"http://127.0.0.1:{port}/v2/docs" in text

    ((app, options),) = uvicorn_runs
    assert callable(app) and not isinstance(app, str)
    protocol = options.pop("http")
    assert options == {
        "host": "127.0.0.1", "port": port, "loop": "auto", "log_level": "warning",
        "h11_max_incomplete_event_size": 32 * 1024, "timeout_keep_alive": 5.0,
    }  # fmt: skip
    # uvicorn's own choice (httptools), with request heads bounded in size and time.
    assert protocol.func is BoundedHttpToolsProtocol
    assert protocol.keywords == {"max_header_bytes": 32 * 1024, "header_timeout": 10.0}

    again = ok("serve", "--store", url, "--port", str(port))
    assert "csk_" not in again and f"http://127.0.0.1:{port}/docs" in again


def test_serve_takes_its_settings_from_the_environment(
    url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    ok("serve", env={"POLLABLE_STORE": url, "POLLABLE_HOST": "0.0.0.0", "POLLABLE_PORT": str(port)})
    ((_, options),) = uvicorn_runs
    assert (options["host"], options["port"]) == ("0.0.0.0", port)
    assert tenant(url, "demo") is not None


def test_serve_many_workers_through_the_factory(
    url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    ok("serve", "--store", url, "--port", str(port), "--workers", "2", "--time-scale", "0.5",
       "--no-validate-responses")  # fmt: skip
    ((target, options),) = uvicorn_runs
    assert target == "pollable.server.cli:worker_app"
    assert options["factory"] is True and options["workers"] == 2
    assert options["loop"] == "auto" and options["http"].func is BoundedHttpToolsProtocol
    # Worker processes are spawned: uvicorn pickles its options for them.
    assert pickle.loads(pickle.dumps(options["http"])).keywords == options["http"].keywords
    rebuilt = Settings.build(os.environ)
    assert rebuilt == Settings(
        store=url, port=port, workers=2, time_scale=0.5, validate_responses=False
    )
    assert callable(cli.worker_app())


def test_serve_refuses_memory_with_many_workers(
    uvicorn_runs: list[tuple[Any, dict[str, Any]]],
) -> None:
    error = fails("serve", "--workers", "2", "--store", "memory://")
    assert "memory://" in error and "worker" in error
    assert uvicorn_runs == []


def test_serve_mistakes(uvicorn_runs: list[tuple[Any, dict[str, Any]]]) -> None:
    assert "unsupported store 'redis'" in fails("serve", "--store", "redis://localhost")
    assert "workers must be at least 1" in fails("serve", "--workers", "0", "--store", "memory://")
    assert "port must be between" in fails("serve", "--port", "70000", "--store", "memory://")
    fails("serve", "--log-level", "loud", code=2)
    assert "POLLABLE_PORT" in fails("serve", env={"POLLABLE_PORT": "eighty"})
    assert uvicorn_runs == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_serve_refuses_a_time_scale_that_is_not_finite(
    value: str, db: Path, url: str, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    expected = f"Error: time_scale must be a finite number, not {float(value)}"
    assert fails("serve", "--store", url, f"--time-scale={value}") == expected
    assert fails("serve", "--store", url, env={"POLLABLE_TIME_SCALE": value}) == expected
    assert (
        fails("seed", str(write_fixture(db.parent, [])), "--store", url, f"--time-scale={value}")
        == expected
    )
    assert uvicorn_runs == []
    assert not db.exists()


# -- serve: its address, its store, its fixture ---------------------------------------------


def serve_fixture(tmp_path: Path, jobs: list[dict[str, Any]], name: str = "ci.json") -> Path:
    """Tenant acme with a fixed Crosmos key and a generated Captain key, and ``jobs``."""
    path = tmp_path / name
    keys = [{"api": "crosmos", "key": "csk_fixture_acme_0001"}, {"api": "captain"}]
    path.write_text(json.dumps({"tenants": [{"name": "acme", "keys": keys}], "jobs": jobs}))
    return path


@pytest.mark.parametrize(
    "options",
    [(), ("--store", "memory://"), ("--workers", "2"), ("--fixtures", "FIXTURE")],
    ids=["sqlite", "memory", "workers", "fixtures"],
)
def test_serve_on_a_busy_port_fails_first_in_one_line(
    options: tuple[str, ...],
    busy_port: int,
    tmp_path: Path,
    db: Path,
    url: str,
    uvicorn_runs: list[tuple[Any, dict[str, Any]]],
) -> None:
    """Not the banner, keys and curl lines of a server that is not this one."""
    fixture = str(serve_fixture(tmp_path, [sources_job("done", "happy")]))
    options = tuple(fixture if option == "FIXTURE" else option for option in options)
    error = fails("serve", "--store", url, "--port", str(busy_port), *options)
    assert error == f"Error: 127.0.0.1:{busy_port} is already in use; choose another --port"
    assert not db.exists()
    assert uvicorn_runs == []


def test_serve_on_a_store_with_tenants_says_how_to_get_keys(
    url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    ok("keys", "create", "--tenant", "acme", "--api", "crosmos", "--store", url)
    ok("keys", "create", "--tenant", "zeta", "--api", "captain", "--store", url)
    text = ok("serve", "--store", url, "--port", str(port))
    assert tenant(url, "demo") is None
    assert "csk_" not in text and "cap_" not in text
    assert f"Store {url} has 2 tenants; keys are stored hashed and cannot be shown again." in text
    create = f"pollable keys create --tenant NAME --api API --store {url}"
    assert f"Create one with: {create} (API: {' or '.join(api.name for api in JOB_APIS)})" in text
    assert f"http://127.0.0.1:{port}/docs" in text
    assert len(uvicorn_runs) == 1


def banner_jobs(text: str) -> dict[str, tuple[str, str, str]]:
    """The job lines of serve's fixture banner: name -> (tenant, job id, scenario)."""
    found = re.findall(r"^  job (\S+) +tenant (\S+) +(\S+) +scenario (\S+)$", text, re.M)
    return {name: (owner, job_id, scenario) for name, owner, job_id, scenario in found}


def assert_banner_tells_the_truth(text: str, url: str) -> None:
    acme = tenant(url, "acme")
    assert acme is not None
    assert f"  tenant acme  organization id {acme.organization_id}" in text
    assert "csk_fixture_acme_0001" in text
    (captain_key,) = re.findall(r"\bcap_dev_\S+", text)
    owner = on_store(url, lambda store: store.tenant_for_key("captain", hash_key(captain_key)))
    assert owner is not None and owner.name == "acme"
    jobs = banner_jobs(text)
    assert {name: (owner, scenario) for name, (owner, _, scenario) in jobs.items()} == {
        "done": ("acme", "happy"),
        "stuck": ("acme", "stuck_pending"),
        "plain": ("acme", "happy"),
    }
    for _, job_id, scenario in jobs.values():
        record = on_store(url, lambda store, job_id=job_id: store.get_job(acme.id, job_id))
        assert record.plan.scenario == scenario


def test_serve_prints_what_its_fixture_seeded_once_per_store(
    tmp_path: Path, url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    plain = sources_job("plain", "happy")
    del plain["scenario"]
    jobs = [sources_job("done", "happy"), sources_job("stuck", "stuck_pending"), plain]
    fixture = serve_fixture(tmp_path, jobs)
    text = ok("serve", "--store", url, "--port", str(port), "--fixtures", str(fixture))
    assert f"Seeded {fixture} into {url}:" in text
    assert_banner_tells_the_truth(text, url)
    assert f"http://127.0.0.1:{port}/docs" in text

    again = ok("serve", "--store", url, "--port", str(port), "--fixtures", str(fixture))
    assert f"{fixture} was seeded into {url} before" in again
    assert "csk_" not in again and "cap_dev_" not in again and banner_jobs(again) == {}
    assert "pollable keys create --tenant NAME --api API" in again
    assert len(uvicorn_runs) == 2


def test_serve_lists_a_handful_of_the_jobs_its_fixture_seeded(
    tmp_path: Path, url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    many = banner.SHOWN_JOBS + 3
    fixture = serve_fixture(tmp_path, [sources_job("bulk", "instant", count=many)])
    text = ok("serve", "--store", url, "--port", str(port), "--fixtures", str(fixture))
    assert len(banner_jobs(text)) == banner.SHOWN_JOBS
    assert "\n  ... and 3 more jobs\n" in text


def test_serve_on_memory_prints_what_its_fixture_seeded(
    tmp_path: Path,
    port: int,
    uvicorn_runs: list[tuple[Any, dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """memory:// lives in the server: the app seeds it, and what it seeded works there."""
    fixture = serve_fixture(tmp_path, [sources_job("done", "happy")])
    ok("serve", "--store", "memory://", "--port", str(port), "--fixtures", str(fixture))
    ((app, _),) = uvicorn_runs
    with TestClient(app) as client:
        text = capsys.readouterr().out
        assert f"Seeded {fixture} into memory://:" in text
        assert f"http://127.0.0.1:{port}/docs" in text
        ((owner, job_id, scenario),) = banner_jobs(text).values()
        assert (owner, scenario) == ("acme", "happy")
        headers = {"Authorization": "Bearer csk_fixture_acme_0001"}
        assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).status_code == 200
        (captain_key,) = re.findall(r"\bcap_dev_\S+", text)
        (organization,) = re.findall(r"organization id (\S+)", text)
        headers = {"Authorization": f"Bearer {captain_key}", "X-Organization-ID": organization}
        assert client.get("/v2/jobs", headers=headers).status_code == 200


def broken_fixtures(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Fixture files serve cannot use, and what its one error line says."""
    yaml = tmp_path / "bad.yaml"
    yaml.write_text("jobs: [\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00t\x00e")
    broken = sources_job("broken", "happy", body={"space_id": SPACE, "sources": []})
    stranger = sources_job("lost", "happy", tenant="ghost")
    return {
        "invalid YAML": (yaml, f"Error: {yaml} is not valid YAML: "),
        "not text": (binary, f"Error: cannot read {binary}: not UTF-8 text"),
        "breaks the contract": (
            serve_fixture(tmp_path, [broken], "broken.json"),
            "Error: job 'broken' (ingest_sources_api_v1_sources_post) was refused with 422: "
            "body.sources: ",
        ),
        "unknown tenant": (
            serve_fixture(tmp_path, [stranger], "stranger.json"),
            "Error: job 'lost': unknown tenant 'ghost' (list it under tenants)",
        ),
    }


@pytest.mark.parametrize(
    "case", ["invalid YAML", "not text", "breaks the contract", "unknown tenant"]
)
def test_serve_refuses_a_bad_fixture_in_one_line(
    case: str, tmp_path: Path, url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    path, error = broken_fixtures(tmp_path)[case]
    assert fails("serve", "--store", url, "--port", str(port), "--fixtures", str(path)).startswith(
        error
    )
    assert fails("seed", str(path), "--store", url).startswith(error)
    assert uvicorn_runs == []


def test_serve_refuses_an_unreadable_fixture_in_one_line(
    tmp_path: Path,
    url: str,
    port: int,
    uvicorn_runs: list[tuple[Any, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = serve_fixture(tmp_path, [])
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads whatever the mode: refuse as the OS would
        read_text = Path.read_text

        def refused(self: Path, *args: Any, **kwargs: Any) -> str:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return read_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", refused)
    error = f"Error: cannot read {path}: Permission denied"
    assert fails("serve", "--store", url, "--port", str(port), "--fixtures", str(path)) == error
    assert uvicorn_runs == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["breaks the contract", "unknown tenant"])
def test_serve_on_memory_refuses_a_bad_fixture_in_one_line(
    case: str, tmp_path: Path, port: int
) -> None:
    """On memory:// only the server can seed: a real one starts, fails and says why in one
    line, after uvicorn's log and with no traceback."""
    path, error = broken_fixtures(tmp_path)[case]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POLLABLE_")}
    served = subprocess.run(
        [sys.executable, "-c", "from pollable.server.cli import main; main()", "serve",
         "--store", "memory://", "--port", str(port), "--fixtures", str(path)],
        capture_output=True, text=True, timeout=60, env=environ, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert served.returncode == 1, served.stderr
    assert served.stdout == ""
    assert "Traceback" not in served.stderr
    assert served.stderr.strip().splitlines()[-1].startswith(error)


def test_serve_prints_a_generated_admin_token_once(
    url: str, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    text = ok("serve", "--store", url, "--port", str(port))
    found = re.search(r"Admin token of the control plane \(/sandbox/docs\): (pat_\S+)", text)
    assert found is not None, text
    token = found.group(1)
    assert "Admin token" not in ok("serve", "--store", url, "--port", str(port))
    with TestClient(create_app(Settings(store=url))) as client:
        admin = {"Authorization": f"Bearer {token}"}
        assert client.get("/sandbox/v1/tenants", headers=admin).status_code == 200


def test_a_configured_admin_token_is_never_printed(
    tmp_path: Path, port: int, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    url = f"sqlite:///{tmp_path / 'configured.db'}"
    secret = "a-configured-admin-token"
    text = ok("serve", "--store", url, "--port", str(port), "--admin-token", secret)
    assert "Admin token" not in text and secret not in text
    with TestClient(create_app(Settings(store=url, admin_token=secret))) as client:
        admin = {"Authorization": f"Bearer {secret}"}
        assert client.get("/sandbox/v1/tenants", headers=admin).status_code == 200
