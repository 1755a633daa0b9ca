"""``SandboxClient``: tenants, keys, reset and health against pollable itself (the plugin's
session server); test clocks and the request log against a stand-in that follows their
contract (``tests/testing/fake.py``) until the real ones are served."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from pollable.testing import SandboxClient, SandboxError
from pollable.testing.plugin import SandboxServer
from tests.testing.fake import ADMIN_TOKEN, FakeSandbox, serve_fake


def unique(prefix: str = "client") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def admin(pollable_server: SandboxServer) -> Iterator[SandboxClient]:
    with SandboxClient(pollable_server.url, pollable_server.admin_token) as client:
        yield client


@pytest.fixture
def fake() -> Iterator[tuple[FakeSandbox, SandboxClient]]:
    with serve_fake() as (state, url), SandboxClient(url, ADMIN_TOKEN) as client:
        yield state, client


# -- against pollable ---------------------------------------------------------------------------


def test_health(admin: SandboxClient) -> None:
    health = admin.health()
    assert (health["status"], health["store"]) == ("ok", "reachable")
    assert health["version"]


def test_tenants(admin: SandboxClient) -> None:
    name = unique()
    created = admin.create_tenant(name, credits=50, default_scenario="partial")
    tenant = created["tenant"]
    assert (tenant["name"], tenant["credits"], tenant["default_scenario"]) == (
        name,
        50,
        "partial",
    )
    assert {key["api"] for key in created["keys"]} == {"crosmos", "captain"}
    assert all(key["key"] and key["clock_id"] is None for key in created["keys"])

    assert admin.get_tenant(tenant["id"]) == tenant
    assert tenant["id"] in {t["id"] for t in admin.iter_tenants()}
    page = admin.list_tenants(limit=1)
    assert len(page["data"]) == 1 and "next_cursor" in page

    assert admin.update_tenant(tenant["id"], credits=7)["credits"] == 7
    assert admin.update_tenant(tenant["id"], default_scenario=None)["default_scenario"] is None
    assert admin.update_tenant(tenant["id"], default_scenario="slow")["default_scenario"] == "slow"

    admin.delete_tenant(tenant["id"])
    with pytest.raises(SandboxError) as gone:
        admin.get_tenant(tenant["id"])
    assert (gone.value.status, gone.value.title, gone.value.detail) == (
        404,
        "Not Found",
        "Tenant not found",
    )
    assert str(gone.value) == "404 Not Found: Tenant not found"


def test_fixed_organization_id(admin: SandboxClient) -> None:
    organization = str(uuid.uuid4())
    tenant = admin.create_tenant(unique(), organization_id=organization)["tenant"]
    assert tenant["organization_id"] == organization
    admin.delete_tenant(tenant["id"])


def test_keys(admin: SandboxClient, pollable_server: SandboxServer) -> None:
    created = admin.create_tenant(unique())
    tenant_id = created["tenant"]["id"]
    issued = admin.create_key(tenant_id, "captain", environment="prod")
    assert issued["key"].startswith("cap_prod_") and issued["environment"] == "prod"

    listed = admin.list_keys(tenant_id)
    assert len(listed) == 3 and all("key" not in key for key in listed)
    assert issued["id"] in {key["id"] for key in listed}

    revoked = admin.revoke_key(tenant_id, issued["id"])
    assert revoked["revoked_at"] is not None
    assert admin.revoke_key(tenant_id, issued["id"]) == revoked
    with (
        SandboxClient(pollable_server.url, issued["key"]) as refused,
        pytest.raises(SandboxError) as caught,
    ):
        refused.get_tenant(tenant_id)
    assert caught.value.status == 401
    admin.delete_tenant(tenant_id)


def test_a_tenant_key_acts_on_its_own_tenant(
    admin: SandboxClient, pollable_server: SandboxServer
) -> None:
    mine = admin.create_tenant(unique())
    other = admin.create_tenant(unique())
    with SandboxClient(pollable_server.url, mine["keys"][1]["key"]) as tenant:
        assert [t["id"] for t in tenant.iter_tenants()] == [mine["tenant"]["id"]]
        assert tenant.reset() == [mine["tenant"]["id"]]
        with pytest.raises(SandboxError) as hidden:
            tenant.get_tenant(other["tenant"]["id"])
        assert hidden.value.status == 404
        with pytest.raises(SandboxError) as forbidden:
            tenant.create_tenant(unique())
        assert forbidden.value.status == 403
        with pytest.raises(SandboxError) as everyone:
            tenant.reset(all_tenants=True)
        assert everyone.value.status == 403
    for created in (mine, other):
        admin.delete_tenant(created["tenant"]["id"])


def test_reset_as_the_admin(admin: SandboxClient) -> None:
    tenant_id = admin.create_tenant(unique())["tenant"]["id"]
    assert admin.reset(tenant_id=tenant_id) == [tenant_id]
    assert tenant_id in admin.reset(all_tenants=True)
    with pytest.raises(SandboxError) as unnamed:
        admin.reset()
    assert unnamed.value.status == 422
    assert "The admin names a tenant_id, or all: true" in str(unnamed.value)
    admin.delete_tenant(tenant_id)


def test_errors_carry_the_problem(admin: SandboxClient, pollable_server: SandboxServer) -> None:
    name = unique()
    tenant_id = admin.create_tenant(name)["tenant"]["id"]
    with pytest.raises(SandboxError) as taken:
        admin.create_tenant(name)
    assert taken.value.status == 409
    assert taken.value.problem["status"] == 409 and taken.value.problem["type"]

    with pytest.raises(SandboxError) as invalid:
        admin.create_tenant("no spaces allowed")
    assert invalid.value.status == 422
    assert "(body.name: " in str(invalid.value)
    assert invalid.value.problem["errors"][0]["loc"] == ["body", "name"]

    with (
        SandboxClient(pollable_server.url, "not-a-key") as stranger,
        pytest.raises(SandboxError) as unknown,
    ):
        stranger.list_tenants()
    assert unknown.value.status == 401
    admin.delete_tenant(tenant_id)


def test_no_answer_is_a_sandbox_error() -> None:
    with (
        SandboxClient("http://127.0.0.1:9", "token", timeout=2) as nowhere,
        pytest.raises(SandboxError) as caught,
    ):
        nowhere.health()
    assert caught.value.status is None and caught.value.problem == {}
    assert str(caught.value).startswith("no answer from http://127.0.0.1:9: ")


def test_answers_that_are_not_problems() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200, text="<html>", headers={"Request-Id": "req_1"})
        return httpx.Response(502, text="Bad gateway\n", headers={"Request-Id": "req_2"})

    with SandboxClient("http://sandbox", "t", transport=httpx.MockTransport(reply)) as client:
        with pytest.raises(SandboxError) as garbled:
            client.health()
        assert (garbled.value.status, garbled.value.request_id) == (200, "req_1")
        assert str(garbled.value) == "GET /health answered 200 with a body that is not JSON"
        with pytest.raises(SandboxError) as proxy:
            client.get_tenant("x")
        assert str(proxy.value) == "502 Bad Gateway: Bad gateway"
        assert proxy.value.request_id == "req_2"


def test_the_credential_is_a_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    with SandboxClient("http://sandbox/", "tok", transport=httpx.MockTransport(reply)) as client:
        assert client.base_url == "http://sandbox"
        assert list(client.iter_tenants()) == []
    (request,) = seen
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["user-agent"].startswith("pollable-client/")
    assert request.url.params["limit"] == "200" and "cursor" not in request.url.params


# -- test clocks and the request log, against the stand-in ---------------------------------------


def test_clocks(fake: tuple[FakeSandbox, SandboxClient]) -> None:
    state, admin = fake
    tenant_id = admin.create_tenant("acme")["tenant"]["id"]
    start = datetime(2031, 5, 1, 12, tzinfo=UTC)
    clock = admin.create_clock(name="ci", now=start, tenant_id=tenant_id)
    assert clock["id"].startswith("clk_") and clock["name"] == "ci"
    assert datetime.fromisoformat(clock["now"]) == start
    assert admin.list_clocks(tenant_id=tenant_id) == [clock]
    assert admin.get_clock(clock["id"], tenant_id=tenant_id) == clock

    later = admin.advance_clock(clock["id"], seconds=90, tenant_id=tenant_id)
    assert datetime.fromisoformat(later["now"]) == datetime(2031, 5, 1, 12, 1, 30, tzinfo=UTC)
    admin.advance_clock(clock["id"], to=datetime(2031, 6, 1, tzinfo=UTC), tenant_id=tenant_id)
    admin.advance_clock(clock["id"], until_job="job-1", status="processing", tenant_id=tenant_id)
    admin.advance_clock(clock["id"], until_job="job-2", stage="embedding", tenant_id=tenant_id)
    assert [body for _, body in state.advanced] == [
        {"seconds": 90},
        {"to": "2031-06-01T00:00:00+00:00"},
        {"until": {"job_id": "job-1", "status": "processing"}},
        {"until": {"job_id": "job-2", "stage": "embedding"}},
    ]
    with pytest.raises(SandboxError) as backwards:
        admin.advance_clock(clock["id"], to="2031-01-01T00:00:00Z", tenant_id=tenant_id)
    assert backwards.value.status == 409 and backwards.value.request_id

    admin.delete_clock(clock["id"], tenant_id=tenant_id)
    assert admin.list_clocks(tenant_id=tenant_id) == []


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"seconds": 1, "to": "2031-01-01T00:00:00Z"},
        {"seconds": 1, "status": "running"},
        {"until_job": "j"},
        {"until_job": "j", "status": "running", "stage": "embedding"},
    ],
)
def test_advance_takes_exactly_one_target(
    fake: tuple[FakeSandbox, SandboxClient], arguments: dict[str, str]
) -> None:
    state, admin = fake
    with pytest.raises(ValueError):
        admin.advance_clock("clk_x", **arguments)  # type: ignore[arg-type]
    assert state.advanced == []


def test_request_log(fake: tuple[FakeSandbox, SandboxClient]) -> None:
    _, admin = fake
    created = admin.create_tenant("acme")
    with SandboxClient(admin.base_url, created["keys"][0]["key"]) as tenant:
        for _ in range(5):
            tenant.health()
            tenant.list_clocks()
        entries = list(tenant.iter_requests(method="GET", path="/sandbox/v1/clocks"))
        assert len(entries) == 5 and all(e["path"] == "/sandbox/v1/clocks" for e in entries)
        everything = list(tenant.iter_requests())
        assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)

        page = tenant.list_requests(limit=2)
        assert len(page["data"]) == 2 and page["next_cursor"]
        following = tenant.list_requests(limit=2, cursor=page["next_cursor"])
        assert following["data"][0]["id"] < page["data"][-1]["id"]

        assert tenant.count_requests(path="/sandbox/v1/clocks") == 5
        assert tenant.get_request(entries[0]["id"]) == entries[0]
        assert tenant.delete_requests() is None
        assert tenant.count_requests(path="/sandbox/v1/clocks") == 0


def test_request_log_filters_are_query_parameters() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"count": 3})

    since = datetime(2031, 1, 1, tzinfo=UTC)
    with SandboxClient("http://sandbox", "t", transport=httpx.MockTransport(reply)) as client:
        assert (
            client.count_requests(
                job_id="j1", status=404, since=since, until="2031-02-01T00:00:00Z", tenant_id="t1"
            )
            == 3
        )
    assert dict(seen[0].url.params) == {
        "job_id": "j1",
        "status": "404",
        "since": "2031-01-01T00:00:00+00:00",
        "until": "2031-02-01T00:00:00Z",
        "tenant_id": "t1",
    }
