"""A toy job API, registered only by the tests: a document and two handlers, and nothing in
``server/``. It proves that adding a job API is one package and one descriptor."""

from __future__ import annotations

from pathlib import Path

from pollable.handlers.api import Call, Reply
from pollable.handlers.common import choose_scenario, load_job, new_id, plan_seed
from pollable.handlers.descriptor import ApiDescriptor, DemoCall, KeyRule
from pollable.lifecycle.engine import state_at
from pollable.lifecycle.model import Status
from pollable.lifecycle.planner import Work, plan_job
from pollable.store.base import NewJob

STATE = {
    Status.PENDING: "queued",
    Status.RUNNING: "working",
    Status.COMPLETED: "done",
    Status.COMPLETED_WITH_FAILURES: "done_with_errors",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}


async def create_batch(call: Call) -> Reply:
    items = call.body["items"]
    tenant = await call.services.store.get_tenant(call.principal.tenant_id)
    scenario, headers = choose_scenario(call, items, tenant.default_scenario)
    plan, planned = plan_job(
        job_id=new_id(),
        created_at=call.services.now(),
        scenario=scenario,
        work=[Work(f"{i}:{item}") for i, item in enumerate(items)],
        seed=plan_seed(call, call.body, scenario),
        time_scale=call.services.settings.time_scale,
    )
    job = NewJob(api=call.principal.api, kind="batch", plan=plan, items=planned)
    await call.services.store.create_job(tenant.id, job)
    body = {"batch_id": plan.job_id, "state": "queued", "done": 0, "total": len(items)}
    return Reply(202, body, headers)


async def get_batch(call: Call) -> Reply:
    record = await load_job(call, call.params["batch_id"])
    state = state_at(record.plan, record.events, call.services.now())
    body = {
        "batch_id": record.job_id,
        "state": STATE[state.status],
        "done": state.settled,
        "total": record.plan.n_items,
    }
    return Reply(200, body)


TOY = ApiDescriptor(
    name="toy",
    title="Toy",
    documents=(Path(__file__).with_name("toy.json"),),
    openapi_url="/toy/openapi.json",
    docs_url="/toy/docs",
    handlers={"create_batch": create_batch, "get_batch": get_batch},
    keys=KeyRule({"test": "toy_test_", "live": "toy_live_"}),
    status_operation="get_batch",
    job_id_field="batch_id",
    demo=DemoCall(
        summary="create a batch, then poll it",
        create_path="/toy/v1/batches",
        body={"items": ["a", "b"]},
        poll_path="/toy/v1/batches/JOB_ID",
    ),
)
