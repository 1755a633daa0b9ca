"""Fixtures: the format, and seeding through the real handlers (server.seed)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pollable.handlers.api import Call, Reply
from pollable.handlers.descriptor import hash_key
from pollable.handlers.registry import REGISTRY
from pollable.lifecycle.engine import state_at
from pollable.lifecycle.model import Status
from pollable.server import contract
from pollable.server.dispatch import bind
from pollable.server.seed import (
    Operations,
    SeedError,
    load_fixture,
    parse_fixture,
    parse_instant,
    seed,
    services_at,
)
from pollable.server.settings import Settings
from pollable.store.base import Store
from tests.conftest import on_store

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SPACE = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
NOW = 1_700_000_000.0
SOURCES_OP = "ingest_sources_api_v1_sources_post"


@pytest.fixture(scope="module")
def operations() -> Operations:
    return Operations()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store=f"sqlite:///{tmp_path / 'seed.db'}")


def stubbed(operation_id: str, handler: Any, **options: Any) -> Operations:
    """The served operations, with one handler replaced."""
    bound = bind([contract.load(api) for api in REGISTRY])
    bound[operation_id] = dataclasses.replace(bound[operation_id], handler=handler)
    return Operations(bound, **options)


def sources_job(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tenant": "acme",
        "operation": SOURCES_OP,
        "body": {"space_id": SPACE, "sources": [{"content": f"{name} content"}]},
        **extra,
    }


def fixture(*jobs: dict[str, Any], keys: list[dict[str, Any]] | None = None) -> Any:
    return parse_fixture({"tenants": [{"name": "acme", "keys": keys or []}], "jobs": list(jobs)})


def run_seed(settings: Settings, operations: Operations, data: Any, now: float = NOW) -> Any:
    return on_store(settings.store, lambda store: seed(store, settings, data, operations, now=now))


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-90s", NOW - 90),
        ("+5m", NOW + 300),
        ("-1h", NOW - 3600),
        ("-2d", NOW - 172_800),
        ("1.5h", NOW + 5400),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # no offset: UTC
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), 1_700_000_000.0),  # as YAML parses it
    ],
)
def test_parse_instant(text: Any, expected: float) -> None:
    assert parse_instant(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-1y", "10", "", 42])
def test_parse_instant_refuses_what_is_not_a_time(text: Any) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_instant(text, NOW)


# -- the format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tenant": []}, "fixture: unknown field(s) tenant"),
        ({"tenants": {"name": "a"}}, "tenants: expected a list"),
        ({"tenants": [{"keys": []}]}, "tenants[0]: name is required"),
        ({"tenants": [{"name": "a", "keys": [{"api": "x"}]}]}, "api must be one of crosmos"),
        ({"tenants": [{"name": "a", "keys": [{"api": "crosmos", "key": "cap_dev_x"}]}]},
         "a crosmos key must start with csk_"),
        ({"tenants": [{"name": "a", "keys": [{"api": "captain", "env": "prod",
                                              "key": "cap_dev_x"}]}]},
         "a captain key must start with cap_prod_"),
        ({"tenants": [{"name": "a", "keys": [{"api": "crosmos", "key": "csk_"}]}]},
         "must start with csk_"),
        ({"tenants": [{"name": "a", "default_scenario": "sunny"}]}, "unknown scenario 'sunny'"),
        ({"tenants": [{"name": "a"}, {"name": "a"}]}, "tenant 'a' appears twice"),
        ({"jobs": [{"tenant": "a", "operation": "x"}]}, "jobs[0]: name is required"),
        ({"jobs": [{"name": "j", "tenant": "a"}]}, "job 'j': operation is required"),
        ({"jobs": [sources_job("j", scenario="sunny")]}, "job 'j': unknown scenario 'sunny'"),
        ({"jobs": [sources_job("j", created="last week")]}, "job 'j': created: 'last week'"),
        ({"jobs": [sources_job("j", count=0)]}, "job 'j': count must be a positive integer"),
        ({"jobs": [sources_job("j", params=["a"])]}, "job 'j': params must be a mapping"),
        ({"jobs": [sources_job("j", colour="red")]}, "job 'j': unknown field(s) colour"),
        ({"jobs": [sources_job("j"), sources_job("j")]}, "job 'j' appears twice"),
        ({"jobs": [sources_job("j", count=2), sources_job("j-2")]}, "job 'j-2' appears twice"),
    ],
)  # fmt: skip
def test_parse_fixture_names_the_first_problem(data: Any, message: str) -> None:
    with pytest.raises(SeedError) as caught:
        parse_fixture(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_count_makes_numbered_copies() -> None:
    parsed = fixture(sources_job("bulk", count=3))
    assert [job.name for job in parsed.jobs] == ["bulk-1", "bulk-2", "bulk-3"]


def test_load_fixture_reads_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text('{"tenants": [{"name": "a"}]}')
    (tmp_path / "f.yaml").write_text("tenants:\n  - name: a\n")
    assert load_fixture(tmp_path / "f.json") == load_fixture(tmp_path / "f.yaml")


def test_load_fixture_refuses_broken_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("tenants: [\n")
    with pytest.raises(SeedError, match="is not valid YAML"):
        load_fixture(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SeedError, match="is not valid JSON"):
        load_fixture(tmp_path / "bad.json")
    with pytest.raises(SeedError, match="cannot read"):
        load_fixture(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["crosmos-demo.yaml", "captain-demo.yaml"])
def test_example_fixtures_seed(name: str, settings: Settings, operations: Operations) -> None:
    parsed = load_fixture(FIXTURES / name)
    seeded = run_seed(settings, operations, parsed)
    assert set(seeded.jobs) == {job.name for job in parsed.jobs}


# -- seeding --------------------------------------------------------------------------------


def test_seeded_jobs_are_planned_at_their_created_time_in_their_scenario(
    settings: Settings, operations: Operations
) -> None:
    seeded = run_seed(
        settings,
        operations,
        fixture(
            sources_job("done", scenario="happy", created="-1h"),
            sources_job("stuck", scenario="stuck_pending", created="-1h"),
            sources_job("later", created="2023-11-14T22:13:20Z"),
        ),
    )
    tenant_id = seeded.tenants["acme"].id

    async def states(store: Store) -> dict[str, tuple[float, Status]]:
        found = {}
        for name, job_id in seeded.jobs.items():
            record = await store.get_job(tenant_id, job_id)
            state = state_at(record.plan, record.events, NOW)
            found[name] = (record.plan.created_at, state.status)
        return found

    found = on_store(settings.store, states)
    assert found["done"] == (NOW - 3600, Status.COMPLETED)
    assert found["stuck"] == (NOW - 3600, Status.PENDING)
    assert found["later"][0] == 1_700_000_000.0


def test_same_body_and_scenario_plan_the_same_job(
    settings: Settings, operations: Operations
) -> None:
    seeded = run_seed(
        settings, operations, fixture(sources_job("twin", count=2, scenario="partial"))
    )
    tenant_id = seeded.tenants["acme"].id

    async def plans(store: Store) -> list[Any]:
        return [
            replace((await store.get_job(tenant_id, job_id)).plan, job_id="")
            for job_id in seeded.jobs.values()
        ]

    first, second = on_store(settings.store, plans)
    assert first == second


def test_fixed_keys_are_stored_hashed_and_generated_ones_returned(
    settings: Settings, operations: Operations
) -> None:
    keys = [
        {"api": "crosmos", "key": "csk_fixture_acme_0001"},
        {"api": "captain", "env": "prod"},
    ]
    seeded = run_seed(settings, operations, fixture(keys=keys))
    (_, _, fixed), (_, api, generated) = seeded.keys
    assert fixed == "csk_fixture_acme_0001"
    assert api == "captain"
    assert generated.startswith("cap_prod_")

    async def owners(store: Store) -> list[Any]:
        return [
            await store.tenant_for_key("crosmos", hash_key(fixed)),
            await store.tenant_for_key("captain", hash_key(generated)),
        ]

    assert [t.name for t in on_store(settings.store, owners)] == ["acme", "acme"]
    raw = b"".join(p.read_bytes() for p in Path(settings.store[10:]).parent.glob("seed.db*"))
    assert fixed.encode() not in raw
    assert generated.encode() not in raw


def test_existing_tenants_and_keys_are_reused(settings: Settings, operations: Operations) -> None:
    data = fixture(sources_job("one"), keys=[{"api": "crosmos", "key": "csk_fixture_acme_0001"}])
    first = run_seed(settings, operations, data)
    again = run_seed(settings, operations, data)
    assert again.tenants["acme"] == first.tenants["acme"]
    assert again.jobs["one"] != first.jobs["one"]


def test_a_key_of_another_tenant_is_refused(settings: Settings, operations: Operations) -> None:
    key = [{"api": "crosmos", "key": "csk_fixture_shared"}]
    run_seed(settings, operations, fixture(keys=key))
    other = parse_fixture({"tenants": [{"name": "other", "keys": key}]})
    with pytest.raises(SeedError, match="belongs to tenant 'acme'"):
        run_seed(settings, operations, other)


def test_tenant_settings_apply(settings: Settings, operations: Operations) -> None:
    data = parse_fixture({
        "tenants": [{"name": "acme", "default_scenario": "stuck_pending", "credits": 12}],
        "jobs": [sources_job("default", created="-1d")],
    })  # fmt: skip
    seeded = run_seed(settings, operations, data)
    tenant = seeded.tenants["acme"]
    assert (tenant.default_scenario, tenant.credits) == ("stuck_pending", 12.0)

    async def status(store: Store) -> Status:
        record = await store.get_job(tenant.id, seeded.jobs["default"])
        return state_at(record.plan, record.events, NOW).status

    assert on_store(settings.store, status) is Status.PENDING


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (sources_job("broken", body={"space_id": SPACE}),
         "job 'broken' (ingest_sources_api_v1_sources_post) was refused with 422: "
         "body.sources: Field required"),
        (sources_job("bad-uuid", body={"space_id": "nope", "sources": [{"content": "x"}]}),
         "was refused with 422: body.space_id:"),
        (sources_job("no-body", body=None), "was refused with 422: body: Field required"),
        (sources_job("stray", params={"colour": "red"}),
         "job 'stray' (ingest_sources_api_v1_sources_post): "
         "ingest_sources_api_v1_sources_post has no parameter 'colour'"),
        (sources_job("twice", scenario="happy", params={"Prefer": "scenario=slow"}),
         "give the scenario either as scenario or as a Prefer param"),
        (sources_job("nowhere", operation="make_coffee"),
         "no served contract has an operation 'make_coffee'"),
        (sources_job("reader", operation="get_job_status_api_v1_jobs__job_id__get", body=None,
                     params={"job_id": SPACE}),
         "job 'reader' (get_job_status_api_v1_jobs__job_id__get) was refused with 404"),
        ({**sources_job("stranger"), "tenant": "nobody"}, "job 'stranger': unknown tenant 'nobody'"),
    ],
)  # fmt: skip
def test_jobs_that_break_the_contract_are_refused_by_name(
    job: dict[str, Any], message: str, settings: Settings, operations: Operations
) -> None:
    with pytest.raises(SeedError) as caught:
        run_seed(settings, operations, fixture(job))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_progress_is_reported_per_job(settings: Settings, operations: Operations) -> None:
    seen: list[str] = []
    data = fixture(sources_job("bulk", count=3))
    on_store(
        settings.store,
        lambda store: seed(store, settings, data, operations, now=NOW, on_job=seen.append),
    )
    assert seen == ["bulk-1", "bulk-2", "bulk-3"]


# -- Captain, through the same generic path -------------------------------------------------


def captain_job(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tenant": "acme",
        "operation": "index_url_v2",
        "params": {"collection_name": "docs"},
        "body": {"url": "https://example.com/report.pdf", "processing_type": "basic"},
        **extra,
    }


def test_captain_operations_get_the_tenants_organization(
    settings: Settings, operations: Operations
) -> None:
    seeded = run_seed(
        settings, operations, fixture(captain_job("indexed", scenario="happy", created="-1h"))
    )
    tenant = seeded.tenants["acme"]

    async def show(store: Store) -> Reply:
        services = services_at(store, settings, NOW)
        return await operations.call(
            "get_job_status_v2", tenant, services, params={"job_id": seeded.jobs["indexed"]}
        )

    reply = on_store(settings.store, show)
    assert reply.status == 200
    assert reply.body["status"] == "completed"
    assert reply.body["collection_name"] == "docs"


def test_a_foreign_organization_is_refused(settings: Settings, operations: Operations) -> None:
    other = "00000000-0000-4000-8000-000000000000"
    job = captain_job("foreign", params={"collection_name": "docs", "X-Organization-ID": other})
    with pytest.raises(SeedError, match="refused with 403: X-Organization-ID does not match"):
        run_seed(settings, operations, fixture(job))


def test_any_operation_reaches_its_handler_with_what_a_request_would_carry(
    settings: Settings,
) -> None:
    """A stand-in handler sees the parameters, body and clock a request would give it."""
    calls: list[Call] = []

    async def index(call: Call) -> Reply:
        calls.append(call)
        return Reply(202, {"job_id": "11111111-1111-4111-8111-111111111111", "status": "pending"})

    stub = stubbed("index_url_v2", index)
    job = captain_job("stub", scenario="partial", created="-10m")
    job["params"]["Idempotency-Key"] = "fixture-1"
    seeded = run_seed(settings, stub, fixture(job))
    assert seeded.jobs == {"stub": "11111111-1111-4111-8111-111111111111"}
    (call,) = calls
    tenant = seeded.tenants["acme"]
    assert call.params["collection_name"] == "docs"
    assert call.params["x_organization_id"] == tenant.organization_id
    assert call.params["idempotency_key"] == "fixture-1"
    assert call.params["prefer"] == "scenario=partial"
    assert call.body == job["body"]
    assert call.principal.api == "captain"
    assert call.principal.tenant_id == tenant.id
    assert call.services.now() == NOW - 600


def test_a_reply_without_a_job_is_refused(settings: Settings) -> None:
    async def index(call: Call) -> Reply:
        return Reply(202, {"status": "pending"})

    stub = stubbed("index_url_v2", index, validate_responses=False)
    with pytest.raises(SeedError, match="does not create a job"):
        run_seed(settings, stub, fixture(captain_job("nothing")))


def test_job_status_operation_of_each_api(operations: Operations) -> None:
    assert (
        operations.job_status("crosmos").operation_id == "get_job_status_api_v1_jobs__job_id__get"
    )
    assert operations.job_status("captain").operation_id == "get_job_status_v2"


def test_fault_rules_are_created_through_the_control_plane(
    settings: Settings, operations: Operations
) -> None:
    rules = [
        {"api": "captain", "action": {"status": 429, "retry_after": 1}, "trigger": {"every": 5}},
        {"action": {"latency_ms": 10}},
    ]
    data = parse_fixture({
        "tenants": [{"name": "acme", "faults": rules}],
        "jobs": [sources_job("one")],
    })  # fmt: skip
    seeded = run_seed(settings, operations, data)
    tenant = seeded.tenants["acme"]
    stored = on_store(settings.store, lambda store: store.list_faults(tenant.id))
    assert [rule.id for rule in stored] == seeded.faults["acme"]
    assert [rule.spec for rule in stored] == rules
    assert seeded.as_json()["faults"] == {"acme": seeded.faults["acme"]}


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ("close", "expected a list"),
        (["close"], "fault 1: expected a mapping"),
        ([{"action": {"status": 418}}],
         "tenant 'acme', fault 1 was refused with 422: body.action:"),
    ],
)  # fmt: skip
def test_broken_fault_rules_are_refused_by_name(
    faults: Any, message: str, settings: Settings, operations: Operations
) -> None:
    with pytest.raises(SeedError, match=message):
        run_seed(settings, operations, parse_fixture({
            "tenants": [{"name": "acme", "faults": faults}],
        }))  # fmt: skip
