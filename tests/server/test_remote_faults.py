"""``pollable faults`` against pollable itself (the plugin's session server): create, list
and delete a tenant's fault rules, as the admin naming the tenant or as the tenant's key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from pollable.testing.plugin import SandboxServer
from tests.server.cli_runner import fails, invoke, ok


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLLABLE_URL", "POLLABLE_ADMIN_TOKEN", "POLLABLE_STORE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(pollable_server: SandboxServer) -> dict[str, str]:
    return {
        "POLLABLE_URL": pollable_server.url,
        "POLLABLE_ADMIN_TOKEN": pollable_server.admin_token,
    }


@pytest.fixture
def acme(server: dict[str, str]) -> Iterator[dict[str, str]]:
    name = f"acme-{uuid.uuid4().hex[:10]}"
    created = json.loads(ok("tenants", "create", name, "--json", env=server))
    yield {"name": name, "id": created["tenant"]["id"], "key": created["keys"][0]["key"]}
    invoke("tenants", "delete", created["tenant"]["id"], env=server)


def test_faults_create_list_delete(server: dict[str, str], acme: dict[str, str]) -> None:
    shown = ok("faults", "create", "--tenant", acme["name"], "--status", "429",
               "--retry-after", "2", "--times", "1", "--api", "crosmos", env=server)  # fmt: skip
    fields = dict(line.split(None, 1) for line in shown.splitlines())
    assert fields["does"].strip() == "429 retry-after 2s" and fields["when"].strip() == "next 1"
    rule_id = fields["id"].strip()
    as_key = {**server, "POLLABLE_ADMIN_TOKEN": acme["key"]}
    made = json.loads(ok("faults", "create", "--latency-ms", "5", "--every", "3", "--json",
                         env=as_key))  # fmt: skip
    assert made["action"] == {"latency_ms": 5} and made["trigger"] == {"every": 3}
    listed = ok("faults", "list", env=as_key).splitlines()
    assert listed[0].split() == ["ID", "API", "OPERATION", "JOB", "ACTION", "TRIGGER", "MATCHED"]
    assert [line.split()[0] for line in listed[1:]] == [rule_id, made["id"]]
    # The rule is applied: the tenant's next valid Crosmos request is a 429.
    job = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
    answer = httpx.get(f"{server['POLLABLE_URL']}/api/v1/jobs/{job}",
                       headers={"Authorization": f"Bearer {acme['key']}"})  # fmt: skip
    assert answer.status_code == 429 and answer.headers["retry-after"] == "2"
    assert ok("faults", "delete", rule_id, env=as_key).strip() == f"deleted fault rule {rule_id}"
    assert len(json.loads(ok("faults", "list", "--json", env=as_key))) == 1


def test_faults_create_refuses_mistakes(server: dict[str, str], acme: dict[str, str]) -> None:
    tenant = ("--tenant", acme["name"])
    usage = 2  # click's exit code for a usage error
    assert "exactly one of" in fails("faults", "create", *tenant, code=usage, env=server)
    both = ("--close", "--times", "1", "--every", "2")
    assert "at most one of" in fails("faults", "create", *tenant, *both, code=usage, env=server)
    retry = ("--status", "500", "--retry-after", "1")
    assert "--retry-after goes with" in fails(
        "faults", "create", *tenant, *retry, code=usage, env=server
    )
    assert "422" in fails("faults", "create", "--close", env=server)  # the admin names none
    assert "404" in fails("faults", "delete", "flt_nope", *tenant, env=server)
