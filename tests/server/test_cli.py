"""The ``pollable`` command (server.cli), through click's CliRunner on SQLite stores."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import click
import jwt
import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from pollable.server import cli
from pollable.server.app import create_app
from pollable.server.auth import hash_key
from pollable.server.protocol import BoundedHttpToolsProtocol
from pollable.server.seed import Operations
from pollable.server.settings import Settings
from pollable.store.base import Store, Tenant
from tests.conftest import on_store

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


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), env=env, prog_name="pollable")
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return result


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str, code: int = 1, env: dict[str, str] | None = None) -> str:
    """The one error line of a command that fails."""
    result = invoke(*args, env=env)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ")
    return error


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
    assert "--env applies to Captain keys only" in fails(
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
    banner = cli.demo_banner(demo, settings)
    for shown in (demo.crosmos_key, demo.captain_key, demo.tenant.organization_id):
        assert shown in banner
    assert "http://127.0.0.1:8000/api/v1/sources" in banner
    assert "http://127.0.0.1:8000/api/v1/jobs/JOB_ID" in banner
    assert "http://127.0.0.1:8000/v2/collections/demo/index/url" in banner
    assert json.dumps(cli.DEMO_CROSMOS_BODY) in banner
    assert json.dumps(cli.DEMO_CAPTAIN_BODY) in banner

    crosmos = {"Authorization": f"Bearer {demo.crosmos_key}"}
    captain = {
        "Authorization": f"Bearer {demo.captain_key}",
        "X-Organization-ID": demo.tenant.organization_id,
    }
    with TestClient(create_app(settings)) as client:
        created = client.post("/api/v1/sources", json=cli.DEMO_CROSMOS_BODY, headers=crosmos)
        assert created.status_code == 202, created.text
        polled = client.get(f"/api/v1/jobs/{created.json()['job_id']}", headers=crosmos)
        assert polled.status_code == 200, polled.text
        indexed = client.post(
            "/v2/collections/demo/index/url", json=cli.DEMO_CAPTAIN_BODY, headers=captain
        )
        assert indexed.status_code == 202, indexed.text
        polled = client.get(f"/v2/jobs/{indexed.json()['job_id']}", headers=captain)
        assert polled.status_code == 200, polled.text


def test_a_memory_store_bootstraps_inside_the_server() -> None:
    settings = Settings(store="memory://")
    announced: list[cli.Demo | None] = []
    app = cli.DemoOnStartup(create_app(settings), settings, announced.append)
    with TestClient(app) as client:
        (demo,) = announced
        assert demo is not None
        headers = {"Authorization": f"Bearer {demo.crosmos_key}"}
        created = client.post("/api/v1/sources", json=cli.DEMO_CROSMOS_BODY, headers=headers)
        assert created.status_code == 202, created.text


def test_serve_bootstraps_then_runs_one_worker(
    url: str, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    text = ok("serve", "--store", url, "--port", "8123", "--log-level", "WARNING")
    found = tenant(url, "demo")
    assert found is not None
    assert found.organization_id in text
    assert "Crosmos key      csk_" in text and "Captain key      cap_dev_" in text
    assert "curl -s -X POST http://127.0.0.1:8123/api/v1/sources" in text
    assert "curl -s http://127.0.0.1:8123/api/v1/jobs/JOB_ID" in text
    assert "http://127.0.0.1:8123/v2/collections/demo/index/url" in text
    assert "X-Organization-ID: " + found.organization_id in text
    assert "http://127.0.0.1:8123/docs" in text and "http://127.0.0.1:8123/v2/docs" in text

    ((app, options),) = uvicorn_runs
    assert callable(app) and not isinstance(app, str)
    protocol = options.pop("http")
    assert options == {
        "host": "127.0.0.1", "port": 8123, "loop": "auto", "log_level": "warning",
        "h11_max_incomplete_event_size": 32 * 1024, "timeout_keep_alive": 5.0,
    }  # fmt: skip
    # uvicorn's own choice (httptools), with request heads bounded in size and time.
    assert protocol.func is BoundedHttpToolsProtocol
    assert protocol.keywords == {"max_header_bytes": 32 * 1024, "header_timeout": 10.0}

    again = ok("serve", "--store", url)
    assert "csk_" not in again and "http://127.0.0.1:8000/docs" in again


def test_serve_takes_its_settings_from_the_environment(
    url: str, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    ok("serve", env={"POLLABLE_STORE": url, "POLLABLE_HOST": "0.0.0.0", "POLLABLE_PORT": "9001"})
    ((_, options),) = uvicorn_runs
    assert (options["host"], options["port"]) == ("0.0.0.0", 9001)
    assert tenant(url, "demo") is not None


def test_serve_many_workers_through_the_factory(
    url: str, uvicorn_runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    ok("serve", "--store", url, "--workers", "2", "--time-scale", "0.5", "--no-validate-responses")
    ((target, options),) = uvicorn_runs
    assert target == "pollable.server.cli:worker_app"
    assert options["factory"] is True and options["workers"] == 2
    assert options["loop"] == "auto" and options["http"].func is BoundedHttpToolsProtocol
    # Worker processes are spawned: uvicorn pickles its options for them.
    assert pickle.loads(pickle.dumps(options["http"])).keywords == options["http"].keywords
    rebuilt = Settings.build(os.environ)
    assert rebuilt == Settings(store=url, workers=2, time_scale=0.5, validate_responses=False)
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
