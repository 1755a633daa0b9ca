"""The ``pollable`` commands that drive a running server (server/remote*.py), through click's
CliRunner: tenants, keys and reset against pollable itself (the plugin's session server);
clocks and the request log against the stand-in of ``tests/testing/fake.py`` until pollable
serves them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pollable.server import remote_log
from pollable.testing import SandboxClient
from pollable.testing.plugin import SandboxServer
from tests.server.cli_runner import fails, invoke, ok
from tests.testing.fake import ADMIN_TOKEN, FakeSandbox, serve_fake


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLLABLE_URL", "POLLABLE_ADMIN_TOKEN", "POLLABLE_STORE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(pollable_server: SandboxServer) -> dict[str, str]:
    """Where the session's server is, as the environment names it."""
    return {
        "POLLABLE_URL": pollable_server.url,
        "POLLABLE_ADMIN_TOKEN": pollable_server.admin_token,
    }


@pytest.fixture
def acme(server: dict[str, str]) -> Iterator[dict[str, str]]:
    """A tenant with a unique name: its name, id and Crosmos key."""
    name = f"acme-{uuid.uuid4().hex[:10]}"
    created = json.loads(ok("tenants", "create", name, "--json", env=server))
    yield {"name": name, "id": created["tenant"]["id"], "key": created["keys"][0]["key"]}
    invoke("tenants", "delete", created["tenant"]["id"], env=server)


# -- tenants ------------------------------------------------------------------------------------


def test_tenants_create_shows_the_keys_once(server: dict[str, str]) -> None:
    name = f"shown-{uuid.uuid4().hex[:10]}"
    out = ok("tenants", "create", name, "--credits", "25", "--default-scenario", "slow", env=server)
    first, crosmos, captain, note = out.splitlines()
    assert first.startswith(f"tenant {name}  id ")
    assert crosmos.split()[:3] == ["crosmos", "key", crosmos.split()[2]]
    assert crosmos.split()[2].startswith("csk_") and captain.split()[2].startswith("cap_dev_")
    assert note == "Keys are stored hashed: this is the only time they are shown."
    shown = json.loads(ok("tenants", "show", name, "--json", env=server))
    assert (shown["credits"], shown["default_scenario"]) == (25, "slow")
    ok("tenants", "delete", name, env=server)


def test_tenants_list_show_update_delete(server: dict[str, str], acme: dict[str, str]) -> None:
    listing = ok("tenants", "list", env=server).splitlines()
    assert listing[0].split() == ["ID", "NAME", "ORGANIZATION", "CREDITS", "SCENARIO", "CREATED"]
    assert any(line.split()[:2] == [acme["id"], acme["name"]] for line in listing[1:])
    assert acme["id"] in {t["id"] for t in json.loads(ok("tenants", "list", "--json", env=server))}

    by_id, by_name = (
        ok("tenants", "show", acme["id"], env=server),
        ok("tenants", "show", acme["name"], env=server),
    )
    assert by_id == by_name and f"name              {acme['name']}" in by_id

    updated = ok(
        "tenants",
        "update",
        acme["name"],
        "--credits",
        "3",
        "--default-scenario",
        "partial",
        env=server,
    )
    assert "credits           3.0" in updated and "default_scenario  partial" in updated
    cleared = json.loads(
        ok("tenants", "update", acme["name"], "--default-scenario", "none", "--json", env=server)
    )
    assert (cleared["credits"], cleared["default_scenario"]) == (3, None)
    assert "nothing to change" in fails("tenants", "update", acme["name"], code=2, env=server)

    assert ok("tenants", "delete", acme["name"], env=server).startswith("deleted tenant ")
    error = fails("tenants", "show", acme["name"], env=server)
    assert error == f"Error: no tenant {acme['name']!r} (neither an id nor a name) on this server"


def test_a_tenant_key_sees_its_own_tenant(server: dict[str, str], acme: dict[str, str]) -> None:
    mine = {**server, "POLLABLE_ADMIN_TOKEN": acme["key"]}
    assert [t["id"] for t in json.loads(ok("tenants", "list", "--json", env=mine))] == [acme["id"]]
    error = fails("tenants", "create", "other", env=mine)
    assert error == "Error: 403 Forbidden: Only the sandbox's admin token may do this"


def test_refusals_are_one_line(server: dict[str, str]) -> None:
    assert fails("tenants", "list", "--token", "nope", env=server).startswith(
        "Error: 401 Unauthorized"
    )
    unreachable = fails("tenants", "list", "--url", "http://127.0.0.1:9", env=server)
    assert unreachable.startswith("Error: no answer from http://127.0.0.1:9: ")
    error = fails("tenants", "list", env={"POLLABLE_URL": server["POLLABLE_URL"]}, code=2)
    assert error.startswith("Error: no credential: pass --token")
    invalid = fails("tenants", "create", "no spaces", env=server)
    assert invalid.startswith("Error: 422 Unprocessable Entity: ") and "(body.name: " in invalid


# -- keys -----------------------------------------------------------------------------------------


def test_keys_on_a_server(
    server: dict[str, str], acme: dict[str, str], pollable_server: SandboxServer
) -> None:
    key = ok(
        "keys", "create", "--tenant", acme["name"], "--api", "captain", "--env", "prod", env=server
    ).strip()
    assert key.startswith("cap_prod_")
    with SandboxClient(pollable_server.url, key) as as_key:
        assert as_key.get_tenant(acme["id"])["name"] == acme["name"]

    created = json.loads(
        ok("keys", "create", "--tenant", acme["id"], "--api", "crosmos", "--json", env=server)
    )
    assert created["key"].startswith("csk_") and created["tenant"] == acme["name"]
    assert created["organization_id"] and created["clock_id"] is None

    listing = ok("keys", "list", "--tenant", acme["name"], env=server)
    assert listing.splitlines()[0].split() == [
        "ID",
        "API",
        "ENV",
        "LABEL",
        "CLOCK",
        "CREATED",
        "REVOKED",
    ]
    assert len(listing.splitlines()) == 5 and key not in listing
    own = json.loads(ok("keys", "list", "--json", env={**server, "POLLABLE_ADMIN_TOKEN": key}))
    assert created["id"] in {k["id"] for k in own}

    revoked = ok("keys", "revoke", created["id"], "--tenant", acme["name"], env=server)
    assert revoked.startswith(f"revoked {created['id']} ({created['label']}) at ")
    again = json.loads(
        ok("keys", "revoke", created["id"], "--tenant", acme["id"], "--json", env=server)
    )
    assert again["revoked_at"]
    assert "name the tenant with --tenant" in fails("keys", "list", code=2, env=server)
    assert "Key not found" in fails(
        "keys", "revoke", "key_nope", "--tenant", acme["id"], env=server
    )


def test_keys_create_asks_the_server_named_on_the_line(
    server: dict[str, str], acme: dict[str, str], tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/local.db"
    token = {"POLLABLE_ADMIN_TOKEN": server["POLLABLE_ADMIN_TOKEN"]}
    # --url on the line asks the server, even with a store in the environment.
    line = ok("keys", "create", "--tenant", acme["name"], "--api", "crosmos", "--url", server["POLLABLE_URL"],
              env={**token, "POLLABLE_STORE": store})  # fmt: skip
    assert line.startswith("csk_") and not (tmp_path / "local.db").exists()
    # $POLLABLE_URL alone asks the server; a store named as well keeps the key local.
    assert ok(
        "keys", "create", "--tenant", acme["name"], "--api", "crosmos", env=server
    ).startswith("csk_")
    ok(
        "keys",
        "create",
        "--tenant",
        "local-only",
        "--api",
        "crosmos",
        env={**server, "POLLABLE_STORE": store},
    )
    assert (tmp_path / "local.db").exists()
    ok("keys", "create", "--tenant", "local-too", "--api", "crosmos", "--store", store, env=server)
    both = fails("keys", "create", "--tenant", "x", "--api", "crosmos", "--store", store,
                 "--url", server["POLLABLE_URL"], code=2, env=server)  # fmt: skip
    assert both == "Error: --store and --url name two places: keep one"
    unknown = fails("keys", "create", "--tenant", "ghost-tenant", "--api", "crosmos", "--url",
                    server["POLLABLE_URL"], env=server)  # fmt: skip
    assert unknown == "Error: no tenant 'ghost-tenant' (neither an id nor a name) on this server"


# -- reset --------------------------------------------------------------------------------------


def test_reset(server: dict[str, str], acme: dict[str, str]) -> None:
    mine = {**server, "POLLABLE_ADMIN_TOKEN": acme["key"]}
    assert ok("reset", env=mine) == f"reset 1 tenant: {acme['id']}\n"
    assert json.loads(ok("reset", "--tenant", acme["name"], "--json", env=server)) == {
        "tenants": [acme["id"]]
    }
    assert acme["id"] in json.loads(ok("reset", "--all", "--json", env=server))["tenants"]
    assert "Error: 422 " in fails("reset", env=server)
    assert (
        fails("reset", "--all", "--tenant", "x", code=2, env=server)
        == "Error: --tenant and --all: keep one"
    )
    assert "Error: 403 Forbidden" in fails("reset", "--all", env=mine)


# -- clocks and the request log, against the stand-in --------------------------------------------


@pytest.fixture
def fake() -> Iterator[tuple[FakeSandbox, dict[str, str], dict[str, str]]]:
    """The stand-in, the admin's environment for it, and a tenant's."""
    with serve_fake() as (state, url):
        admin = {"POLLABLE_URL": url, "POLLABLE_ADMIN_TOKEN": ADMIN_TOKEN}
        created = json.loads(ok("tenants", "create", "acme", "--json", env=admin))
        yield state, admin, {**admin, "POLLABLE_ADMIN_TOKEN": created["keys"][0]["key"]}


def test_clocks(fake: tuple[FakeSandbox, dict[str, str], dict[str, str]]) -> None:
    state, admin, tenant = fake
    created = ok("clocks", "create", "--name", "ci", "--now", "2031-05-01T12:00:00Z", env=tenant)
    assert "name        ci" in created and "now         2031-05-01T12:00:00Z" in created
    clock_id = json.loads(ok("clocks", "list", "--json", env=tenant))[0]["id"]
    assert ok("clocks", "list", "--tenant", "acme", env=admin).splitlines()[1].startswith(clock_id)
    assert f"id          {clock_id}" in ok("clocks", "show", clock_id, env=tenant)

    assert (
        ok("clocks", "advance", clock_id, "--seconds", "90", env=tenant)
        == f"{clock_id} now 2031-05-01T12:01:30Z\n"
    )
    ok("clocks", "advance", clock_id, "--to", "2031-06-01T00:00:00+00:00", env=tenant)
    ok("clocks", "advance", clock_id, "--until", "job-1", "running", "--tenant", "acme", env=admin)
    moved = json.loads(
        ok("clocks", "advance", clock_id, "--until", "job-2", "embedding", "--json", env=tenant)
    )
    assert moved["id"] == clock_id
    assert [body for _, body in state.advanced] == [
        {"seconds": 90.0},
        {"to": "2031-06-01T00:00:00+00:00"},
        {"until": {"job_id": "job-1", "status": "running"}},
        {"until": {"job_id": "job-2", "stage": "embedding"}},
    ]
    exactly_one = "Error: pass exactly one of --seconds, --to, --until"
    assert fails("clocks", "advance", clock_id, code=2, env=tenant) == exactly_one
    assert (
        fails(
            "clocks",
            "advance",
            clock_id,
            "--seconds",
            "1",
            "--to",
            "2032-01-01T00:00:00Z",
            code=2,
            env=tenant,
        )
        == exactly_one
    )
    assert "has no time zone" in fails(
        "clocks", "advance", clock_id, "--to", "2032-01-01T00:00:00", code=2, env=tenant
    )
    assert "Clocks only move forward" in fails(
        "clocks", "advance", clock_id, "--to", "2030-01-01T00:00:00Z", env=tenant
    )

    assert ok("clocks", "delete", clock_id, env=tenant) == f"deleted clock {clock_id}\n"
    assert "Clock not found" in fails("clocks", "show", clock_id, env=tenant)


def test_keys_bound_to_a_clock(fake: tuple[FakeSandbox, dict[str, str], dict[str, str]]) -> None:
    _, admin, _ = fake
    clock_id = json.loads(ok("clocks", "create", "--tenant", "acme", "--json", env=admin))["id"]
    key = json.loads(
        ok(
            "keys",
            "create",
            "--tenant",
            "acme",
            "--api",
            "captain",
            "--clock",
            clock_id,
            "--json",
            env=admin,
        )
    )
    assert key["clock_id"] == clock_id
    assert "No such test clock" in fails(
        "keys", "create", "--tenant", "acme", "--api", "captain", "--clock", "clk_nope", env=admin
    )


def test_requests(fake: tuple[FakeSandbox, dict[str, str], dict[str, str]]) -> None:
    _, admin, tenant = fake
    for _ in range(3):
        ok("clocks", "list", env=tenant)
    listing = ok(
        "requests", "list", "--path", "/sandbox/v1/clocks", "--method", "get", env=tenant
    ).splitlines()
    assert listing[0].split() == ["TIME", "METHOD", "PATH", "STATUS", "MS", "REQUEST-ID", "JOB"]
    assert len(listing) == 4 and all(" GET " in line and " 200 " in line for line in listing[1:])
    page = json.loads(
        ok("requests", "list", "--limit", "2", "--json", "--tenant", "acme", env=admin)
    )
    assert len(page["data"]) == 2 and page["next_cursor"]
    assert ok("requests", "count", "--path", "/sandbox/v1/clocks", env=tenant) == "3\n"
    request_id = listing[1].split()[-2]
    assert json.loads(ok("requests", "show", request_id, env=tenant))["id"] == request_id
    assert ok("requests", "delete", env=tenant) == "deleted the request log\n"
    assert ok("requests", "count", "--path", "/sandbox/v1/clocks", env=tenant) == "0\n"
    assert "Request not found" in fails("requests", "show", request_id, env=tenant)


def test_requests_tail_follows_until_ctrl_c(
    fake: tuple[FakeSandbox, dict[str, str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, tenant = fake
    ok("clocks", "create", "--name", "before", env=tenant)  # history: not shown
    made: list[str] = []

    def pause(seconds: float) -> None:
        assert seconds == 0.5
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(
            json.loads(ok("clocks", "create", "--name", f"n{len(made)}", "--json", env=tenant))[
                "id"
            ]
        )

    monkeypatch.setattr(remote_log, "pause", pause)
    result = invoke(
        "requests", "tail", "--path", "/sandbox/v1/clocks", "--interval", "0.5", env=tenant
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(" POST  /sandbox/v1/clocks  201  " in line for line in lines)
    assert lines[0].split()[-1] < lines[1].split()[-1], "oldest first"
    assert result.stderr.splitlines() == ["Following the request log; Ctrl-C stops.", "Stopped."]


def test_requests_tail_json(
    fake: tuple[FakeSandbox, dict[str, str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, tenant = fake
    calls = iter(
        [lambda: ok("clocks", "list", env=tenant), lambda: ok("clocks", "list", env=tenant)]
    )

    def pause(_: float) -> None:
        step = next(calls, None)
        if step is None:
            raise KeyboardInterrupt
        step()

    monkeypatch.setattr(remote_log, "pause", pause)
    result = invoke("requests", "tail", "--path", "/sandbox/v1/clocks", "--json", env=tenant)
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["method"], e["path"]) for e in entries] == [("GET", "/sandbox/v1/clocks")] * 2


def test_a_follower_catches_up_and_shows_each_entry_once() -> None:
    def entries(numbers: range) -> list[dict[str, object]]:
        return [
            {"id": f"req_{n:04d}", "method": "GET", "path": "/x", "status": 200} for n in numbers
        ]

    log = entries(range(250))

    class Client:
        def list_requests(
            self, *, limit: int, cursor: str | None, tenant_id: str | None
        ) -> dict[str, object]:
            newest_first = sorted(log, key=lambda e: str(e["id"]), reverse=True)
            start = 0 if cursor is None else int(cursor)
            more = start + limit < len(newest_first)
            return {
                "data": newest_first[start : start + limit],
                "next_cursor": str(start + limit) if more else None,
            }

    follower = remote_log.Follower(Client(), None, {})  # type: ignore[arg-type]
    assert len(follower.poll(pages=1)) == 100
    assert follower.poll() == []
    log.extend(entries(range(300, 450)))  # more than a page since the last poll
    assert follower.poll() == entries(range(300, 450))
    log.extend(entries(range(460, 462)))
    assert follower.poll() == entries(range(460, 462))
    assert follower.poll() == []
