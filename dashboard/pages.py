"""The dashboard's pages: each unpacks its query or form, calls control-plane operations
as the visitor, and renders. Writes answer with a redirect (so a reload repeats nothing),
or, refused, with the page and the problem's detail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .app import ITEMS_PAGE, LOG_PAGE, PATH, PRESENTED_FILES, Dashboard, Refused, Visit
from .picture import picture

STATUSES = ("pending", "running", "completed", "completed_with_failures", "failed", "cancelled")
LOG_FILTERS = ("job_id", "path", "method", "status", "api")
FAULT_STATUSES = ("429", "503", "500")


def _query(visit: Visit, *names: str) -> dict[str, str]:
    params = visit.request.query_params
    return {name: params[name] for name in names if params.get(name)}


def _form(visit: Visit) -> dict[str, str]:
    form: dict[str, str] = visit.request.state.form
    return form


def _back(visit: Visit, default: str) -> str:
    """Where a form returns to: a dashboard page it names, else ``default``."""
    target = _form(visit).get("return", "")
    if target.startswith(PATH + "/") and "//" not in target and "\\" not in target:
        return target
    return visit.url(default)


def _number(text: str | None) -> int | float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in text else value


def routes(board: Dashboard, get: Callable[..., Any], post: Callable[..., Any]) -> list[BaseRoute]:
    async def needs_tenant(visit: Visit) -> Response | None:
        if visit.tenant_id is None:
            return board.redirect(f"{PATH}/tenants")
        return None

    async def tenants(visit: Visit) -> Response:
        if not visit.principal.admin:
            return board.redirect(visit.url("/jobs"))
        page = await visit.call_unscoped("list_tenants", limit=100, **_query(visit, "cursor"))
        return board.page("tenants.html", visit, tenants=page)

    async def jobs(visit: Visit) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        filters = _query(visit, "api", "status", "clock_id", "collection")
        page = await visit.call("list_sandbox_jobs", limit=50, **filters, **_query(visit, "cursor"))
        clocks = await visit.call("list_clocks", limit=200)
        return board.page(
            "jobs.html", visit, jobs=page, filters=filters, clocks=clocks["data"],
            statuses=STATUSES, apis=_apis(visit),
        )  # fmt: skip

    async def job(visit: Visit) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        job_id = visit.request.path_params["job_id"]
        detail = await visit.call("get_sandbox_job", job_id=job_id)
        cursor = visit.request.query_params.get("items_cursor")
        items = await visit.call(
            "list_sandbox_job_items", job_id=job_id, limit=ITEMS_PAGE, cursor=cursor
        )
        # Its own read shows a few files inline (Captain); the table pages through them all.
        read = await visit.gateway.read_job(
            visit.services, visit.principal, detail, {"files_limit": PRESENTED_FILES}
        )
        if read.status >= 400:
            raise Refused(read)
        log = await visit.call("list_requests", job_id=job_id, limit=20)
        return board.page(
            "job.html", visit, job=detail, presented=read.data, picture=picture(detail),
            items=items, requests=log["data"], statuses=STATUSES, items_cursor=cursor,
        )  # fmt: skip

    async def requests(visit: Visit) -> Response:
        # The admin with no tenant picked reads the log of requests of no tenant.
        filters = _query(visit, *LOG_FILTERS)
        asked = dict(filters)
        if "status" in asked and not asked["status"].isdigit():
            del asked["status"]
        page = await visit.call("list_requests", limit=LOG_PAGE, **asked, **_query(visit, "cursor"))
        follow = visit.request.query_params.get("follow") == "1"
        return board.page(
            "requests.html", visit, entries=page, filters=filters, follow=follow,
            apis=_apis(visit),
        )  # fmt: skip

    async def find_request(visit: Visit) -> Response:
        wanted = visit.request.query_params.get("request_id", "").strip()
        if not wanted:
            return board.redirect(visit.url("/requests"))
        return board.redirect(visit.url(f"/requests/{quote(wanted, safe='')}"))

    async def request_entry(visit: Visit) -> Response:
        entry = await visit.call("get_request", request_id=visit.request.path_params["request_id"])
        return board.page("request.html", visit, entry=entry)

    async def clocks(visit: Visit) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        page = await visit.call("list_clocks", limit=200, **_query(visit, "cursor"))
        return board.page("clocks.html", visit, clocks=page, statuses=STATUSES)

    async def create_clock(visit: Visit) -> Response:
        form = _form(visit)
        body = {k: form[k] for k in ("name", "now") if form.get(k)}
        await visit.call("create_clock", body)
        return board.redirect(visit.url("/clocks"))

    async def advance_clock(visit: Visit) -> Response:
        form, clock_id = _form(visit), visit.request.path_params["clock_id"]
        how = form.get("how", "seconds")
        body: dict[str, Any]
        if how == "to":
            body = {"to": form.get("to", "")}
        elif how == "until":
            word = form.get("until_status", "")
            kind = "stage" if form.get("until_kind") == "stage" else "status"
            body = {"until": {"job_id": form.get("job_id", ""), kind: word}}
        else:
            body = {"seconds": _number(form.get("seconds")) or form.get("seconds", "")}
        await visit.call("advance_clock", body, clock_id=clock_id)
        return board.redirect(_back(visit, "/clocks"))

    async def faults(visit: Visit) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        rules = await visit.call("list_faults")
        return board.page(
            "faults.html", visit, faults=rules, apis=_apis(visit), statuses=FAULT_STATUSES
        )

    async def create_fault(visit: Visit) -> Response:
        form = _form(visit)
        action: dict[str, Any]
        if form.get("action") == "latency":
            action = {"latency_ms": _number(form.get("latency_ms")) or form.get("latency_ms")}
        elif form.get("action") == "close":
            action = {"close": True}
        else:
            action = {"status": _number(form.get("action")) or form.get("action")}
            if action["status"] in (429, 503) and form.get("retry_after"):
                action["retry_after"] = _number(form["retry_after"]) or form["retry_after"]
        body: dict[str, Any] = {"action": action}
        body.update({k: form[k] for k in ("api", "operation", "job_id") if form.get(k)})
        if form.get("trigger") in ("every", "next") and form.get("count"):
            body["trigger"] = {form["trigger"]: _number(form["count"]) or form["count"]}
        await visit.call("create_fault", body)
        return board.redirect(visit.url("/faults"))

    async def delete_fault(visit: Visit) -> Response:
        await visit.call("delete_fault", fault_id=visit.request.path_params["fault_id"])
        return board.redirect(visit.url("/faults"))

    async def report(visit: Visit) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        found = await visit.call("polling_report", **_query(visit, "job_id"))
        return board.page("report.html", visit, report=found, job_id=_query(visit, "job_id"))

    async def keys(visit: Visit, created: dict[str, Any] | None = None) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        listed = await visit.call("list_keys", tenant_id=visit.tenant_id)
        clocks = await visit.call("list_clocks", limit=200)
        return board.page(
            "keys.html", visit, keys=listed["data"], created=created, apis=_apis(visit),
            clocks=clocks["data"],
        )  # fmt: skip

    async def create_key(visit: Visit) -> Response:
        form = _form(visit)
        body = {k: form[k] for k in ("api", "environment", "clock_id") if form.get(k)}
        made = await visit.call("create_key", body, tenant_id=visit.tenant_id)
        # Shown once, on this answer only (never stored): what the CLI does too.
        return await keys(visit, created=made)

    async def revoke_key(visit: Visit) -> Response:
        key_id = visit.request.path_params["key_id"]
        await visit.call("revoke_key", tenant_id=visit.tenant_id, key_id=key_id)
        return board.redirect(visit.url("/keys"))

    async def reset_page(visit: Visit) -> Response:
        if (away := await needs_tenant(visit)) is not None:
            return away
        return board.page("reset.html", visit, done=visit.request.query_params.get("done"))

    async def reset(visit: Visit) -> Response:
        body = {"tenant_id": visit.tenant_id} if visit.principal.admin else {}
        await visit.call_unscoped("reset", body)
        return board.redirect(visit.url("/reset", done="1"))

    return [
        Route("/tenants", get(tenants)),
        Route("/jobs", get(jobs)),
        Route("/jobs/{job_id}", get(job)),
        Route("/requests", get(requests)),
        Route("/requests/find", get(find_request)),
        Route("/requests/{request_id}", get(request_entry)),
        Route("/clocks", get(clocks), methods=["GET"]),
        Route("/clocks", post(create_clock), methods=["POST"]),
        Route("/clocks/{clock_id}/advance", post(advance_clock), methods=["POST"]),
        Route("/faults", get(faults), methods=["GET"]),
        Route("/faults", post(create_fault), methods=["POST"]),
        Route("/faults/{fault_id}/delete", post(delete_fault), methods=["POST"]),
        Route("/report", get(report)),
        Route("/keys", get(keys), methods=["GET"]),
        Route("/keys", post(create_key), methods=["POST"]),
        Route("/keys/{key_id}/revoke", post(revoke_key), methods=["POST"]),
        Route("/reset", get(reset_page), methods=["GET"]),
        Route("/reset", post(reset), methods=["POST"]),
    ]


def _apis(visit: Visit) -> list[str]:
    """The job APIs served, for the pages' choices."""
    return [api.name for api in visit.services.job_apis]
