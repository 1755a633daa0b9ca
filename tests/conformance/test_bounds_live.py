"""A tenant's bounds on a live server, through the official SDKs: a Captain job the tenant
cannot afford is refused 403 and stores and spends nothing, concurrent creates never take
the balance below zero, a partner sets its own balance, and the cap on stored items
refuses creates of both APIs (and test clocks) for that tenant only, until a reset."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import crosmos
import httpx
import pytest
import runcaptain
from runcaptain.core.api_error import ApiError

from pollable.testing.client import SandboxClient, SandboxError
from tests.conformance.live import LiveServer, Servers, Tenant, provision

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
SOURCES = [{"content": f"Fact number {i}."} for i in range(4)]
#: The cap of this module's server. Each tenant starts at 2 (its two keys); a Crosmos job
#: of four sources stores 5, a Captain job of one URL 2.
CAP = 40
URL = "https://example.com/annual-report.pdf"
NO_RETRY: Any = {"max_retries": 0}


@dataclass(frozen=True)
class Live:
    server: LiveServer
    tenants: dict[str, Tenant]

    def captain(self, name: str) -> Any:
        tenant = self.tenants[name]
        return runcaptain.Captain(
            base_url=self.server.url, organization_id=tenant.organization_id,
            key=tenant.captain_key, timeout=10.0,
        )  # fmt: skip

    def crosmos(self, name: str) -> crosmos.Crosmos:
        return crosmos.Crosmos(
            api_key=self.tenants[name].crosmos_key, base_url=self.server.url, max_retries=0,
            timeout=10.0,
        )  # fmt: skip

    def sandbox(self, name: str) -> SandboxClient:
        """The control plane as the tenant itself (its Captain key), not the admin."""
        return SandboxClient(self.server.url, self.tenants[name].captain_key)

    def balance(self, name: str) -> float:
        with self.sandbox(name) as sandbox:
            return float(sandbox.get_tenant(self.tenants[name].tenant.id)["credits"])

    def set_balance(self, name: str, credits: float) -> None:
        with self.sandbox(name) as sandbox:
            updated = sandbox.update_tenant(self.tenants[name].tenant.id, credits=credits)
        assert updated["credits"] == credits

    def captain_jobs(self, name: str) -> int:
        tenant = self.tenants[name]
        answer = httpx.get(
            f"{self.server.url}/v2/jobs",
            headers={
                "Authorization": f"Bearer {tenant.captain_key}",
                "X-Organization-ID": tenant.organization_id,
            },
        )
        assert answer.status_code == 200
        return int(answer.json()["total"])


NAMES = ("poor", "crowd", "capped", "roomy", "resets")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("bounds")
    db_url = f"sqlite:///{directory}/live.db"
    tenants = provision(db_url, *NAMES)
    servers = Servers(directory)
    try:
        yield Live(servers.start(db_url, env={"POLLABLE_MAX_STORED_ITEMS": str(CAP)}), tenants)
    finally:
        servers.stop_all()


def index_url(live: Live, name: str, collection: str = "docs") -> str:
    job = live.captain(name).indexing.index_url_v2(
        collection, url=URL, processing_type="basic", request_options=NO_RETRY
    )
    return str(job.job_id)


def test_a_job_the_tenant_cannot_afford_is_refused_403_and_changes_nothing(live: Live) -> None:
    before = live.balance("poor")
    index_url(live, "poor")
    cost = before - live.balance("poor")
    assert cost > 0
    live.set_balance("poor", cost / 2)  # with the tenant's own key
    with pytest.raises(ApiError) as refused:
        index_url(live, "poor")
    assert refused.value.status_code == 403
    assert refused.value.body == {
        "detail": f"Insufficient credits: this job needs {cost:g} credits and the balance "
        f"is {cost / 2:g}"
    }
    assert live.balance("poor") == cost / 2
    assert live.captain_jobs("poor") == 1
    live.set_balance("poor", cost)
    index_url(live, "poor")
    assert live.balance("poor") == 0.0


def test_fifty_concurrent_creates_never_take_the_balance_below_zero(live: Live) -> None:
    before = live.balance("crowd")
    index_url(live, "crowd")
    cost = before - live.balance("crowd")
    live.set_balance("crowd", 3.5 * cost)
    client = live.captain("crowd")

    def create(_: int) -> int:
        raw = client.indexing.with_raw_response
        try:
            return int(
                raw.index_url_v2(
                    "docs", url=URL, processing_type="basic", request_options=NO_RETRY
                ).status_code
            )
        except ApiError as exc:
            return int(exc.status_code or 0)

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(create, range(50)))
    assert sorted(set(statuses)) == [202, 403]
    assert statuses.count(202) == 3
    assert live.balance("crowd") == pytest.approx(0.5 * cost)
    assert live.captain_jobs("crowd") == 4


def test_a_tenant_sets_its_own_balance_within_bounds_and_not_another_s(live: Live) -> None:
    live.set_balance("roomy", 123.5)
    assert live.balance("roomy") == 123.5
    with live.sandbox("roomy") as sandbox:
        for absurd in (-1, 1e16):
            with pytest.raises(SandboxError) as caught:
                sandbox.update_tenant(live.tenants["roomy"].tenant.id, credits=absurd)
            assert caught.value.status == 422
        with pytest.raises(SandboxError) as caught:
            sandbox.update_tenant(live.tenants["poor"].tenant.id, credits=5)
        assert caught.value.status == 404
    assert live.balance("roomy") == 123.5


def test_the_cap_on_stored_items_refuses_both_apis_for_that_tenant_only(live: Live) -> None:
    sources = live.crosmos("capped").sources
    for _ in range(7):  # 2 + 7 * 5 = 37
        sources.ingest(space_id=SPACE_ID, sources=SOURCES)
    with pytest.raises(crosmos.PermissionDeniedError) as refused:
        sources.ingest(space_id=SPACE_ID, sources=SOURCES)  # 42 > 40
    assert refused.value.status_code == 403
    assert "Storage limit reached" in str(refused.value.body)
    index_url(live, "capped")  # 39
    with pytest.raises(ApiError) as full:
        index_url(live, "capped")  # 41 > 40
    assert full.value.status_code == 403
    assert live.captain_jobs("capped") == 1
    with live.sandbox("capped") as sandbox:
        sandbox.create_clock()  # 40: a clock still fits
        with pytest.raises(SandboxError) as caught:
            sandbox.create_clock()
        assert caught.value.status == 403
        assert caught.value.detail is not None and "Storage limit" in caught.value.detail
        assert len(sandbox.list_clocks()) == 1
    # Another tenant is not bounded by this one's count.
    live.crosmos("roomy").sources.ingest(space_id=SPACE_ID, sources=SOURCES)


def test_a_reset_restores_the_balance_and_frees_the_room(live: Live) -> None:
    sources = live.crosmos("resets").sources
    for _ in range(7):
        sources.ingest(space_id=SPACE_ID, sources=SOURCES)
    with pytest.raises(crosmos.PermissionDeniedError):
        sources.ingest(space_id=SPACE_ID, sources=SOURCES)
    live.set_balance("resets", 1000.0)
    index_url(live, "resets", collection=f"c-{uuid.uuid4().hex[:6]}")
    assert live.balance("resets") < 1000.0
    with live.sandbox("resets") as sandbox:
        sandbox.reset()
    assert live.balance("resets") == 1000.0
    sources.ingest(space_id=SPACE_ID, sources=SOURCES)
