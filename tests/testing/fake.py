"""A stand-in for a pollable sandbox's control plane, for testing the client, the plugin and
the CLI where the real server has no such operation yet (test clocks, the request log).

It follows the control plane's contract as the parts being built describe it: clocks
(``POST/GET /sandbox/v1/clocks``, ``GET/DELETE .../{id}``, ``POST .../{id}/advance`` with
exactly one of ``to``, ``seconds``, ``until``), keys bound to a clock, the request log
(``GET /sandbox/v1/requests`` newest first with a cursor, ``/count``, ``/{id}``, ``DELETE``),
``Request-Id`` on every response, and problem+json errors. It computes no job: ``until``
moves the clock one second and is recorded in ``advanced``, for tests to check what was
asked. Every request it gets is logged for the caller's tenant.
"""

from __future__ import annotations

import itertools
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pollable.testing.server import ThreadedServer

ADMIN_TOKEN = "fake-admin-token-0123456789"
APIS = ("crosmos", "captain")
START = datetime(2030, 1, 1, tzinfo=UTC)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[Any] | None = None):
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class FakeTenant:
    id: str
    name: str
    organization_id: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> record
    clocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "organization_id": self.organization_id,
            "credits": 1000.0, "default_scenario": None, "created_at": iso(START),
        }  # fmt: skip


class FakeSandbox:
    """The ASGI app and its state; ``advanced`` lists every advance body, by clock id."""

    def __init__(self) -> None:
        self.tenants: dict[str, FakeTenant] = {}
        self.advanced: list[tuple[str, dict[str, Any]]] = []
        self.resets: list[str] = []
        self._ids = itertools.count(1)

    # -- plumbing -------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        request_id = f"req_{next(self._ids):06d}"
        tenant: FakeTenant | None = None
        try:
            admin, tenant = self._caller(request)
            status, body = await self._route(request, admin, tenant)
        except Problem as problem:
            status = problem.status
            body = {"type": "about:blank", "title": problem.title, "status": problem.status,
                    "detail": problem.detail}  # fmt: skip
            if problem.errors is not None:
                body["errors"] = problem.errors
        if tenant is not None and tenant.id in self.tenants:
            tenant.log.insert(0, {
                "id": request_id, "method": request.method, "path": request.url.path,
                "query": str(request.url.query), "status": status, "api": "sandbox",
                "job_id": None,
                "clock_time": None, "time": iso(datetime.now(UTC)),
            })  # fmt: skip
        headers = {"Request-Id": request_id}
        if body is None:
            response: Response = Response(status_code=status, headers=headers)
        else:
            kind = "application/problem+json" if status >= 400 else "application/json"
            response = JSONResponse(body, status, headers=headers, media_type=kind)
        await response(scope, receive, send)

    def _caller(self, request: Request) -> tuple[bool, FakeTenant | None]:
        if request.url.path == "/health":
            return False, None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "Unauthorized", "No credential")
        if token == ADMIN_TOKEN:
            return True, None
        for tenant in self.tenants.values():
            record = tenant.keys.get(token)
            if record is not None and record["revoked_at"] is None:
                return False, tenant
        raise Problem(401, "Unauthorized", "Unknown credential")

    def _tenant(self, admin: bool, caller: FakeTenant | None, tenant_id: str | None) -> FakeTenant:
        if admin:
            if tenant_id is None or tenant_id not in self.tenants:
                raise Problem(404, "Not Found", "Tenant not found")
            return self.tenants[tenant_id]
        assert caller is not None
        if tenant_id not in (None, caller.id):
            raise Problem(404, "Not Found", "Tenant not found")
        return caller

    async def _route(
        self, request: Request, admin: bool, caller: FakeTenant | None
    ) -> tuple[int, Any]:
        path, method = request.url.path, request.method
        body = await request.json() if await request.body() else {}
        query = request.query_params
        for pattern, verb, handler in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                return handler(self, admin, caller, body, query, *match.groups())
        raise Problem(404, "Not Found", "Not Found")

    # -- handlers -------------------------------------------------------------------------

    def health(self, *_: Any) -> tuple[int, Any]:
        return 200, {"status": "ok", "version": "fake", "store": "reachable"}

    def create_tenant(self, admin: bool, _c: Any, body: Any, _q: Any) -> tuple[int, Any]:
        if not admin:
            raise Problem(403, "Forbidden", "Only the sandbox's admin token may do this")
        if any(t.name == body["name"] for t in self.tenants.values()):
            raise Problem(409, "Conflict", "A tenant has this name")
        tenant = FakeTenant(str(uuid.uuid4()), body["name"], str(uuid.uuid4()))
        self.tenants[tenant.id] = tenant
        keys = [self._issue(tenant, api, None) for api in APIS]
        return 201, {"tenant": tenant.body(), "keys": keys}

    def list_tenants(self, admin: bool, caller: Any, _b: Any, _q: Any) -> tuple[int, Any]:
        seen = list(self.tenants.values()) if admin else [caller]
        return 200, {"data": [t.body() for t in seen], "next_cursor": None}

    def get_tenant(self, admin: bool, caller: Any, _b: Any, _q: Any, tid: str) -> tuple[int, Any]:
        return 200, self._tenant(admin, caller, tid).body()

    def delete_tenant(
        self, admin: bool, caller: Any, _b: Any, _q: Any, tid: str
    ) -> tuple[int, Any]:
        if not admin:
            raise Problem(403, "Forbidden", "Only the sandbox's admin token may do this")
        del self.tenants[self._tenant(admin, caller, tid).id]
        return 204, None

    def _issue(self, tenant: FakeTenant, api: str, clock_id: str | None) -> dict[str, Any]:
        key = f"{api[:3]}_fake_{secrets.token_hex(8)}"
        record = {
            "id": f"key_{secrets.token_hex(6)}", "api": api, "environment": "dev",
            "label": key[:12], "clock_id": clock_id, "created_at": iso(START), "revoked_at": None,
        }  # fmt: skip
        tenant.keys[key] = record
        return {**record, "key": key}

    def create_key(self, admin: bool, caller: Any, body: Any, _q: Any, tid: str) -> tuple[int, Any]:
        tenant = self._tenant(admin, caller, tid)
        clock_id = body.get("clock_id")
        if clock_id is not None and clock_id not in tenant.clocks:
            raise Problem(422, "Unprocessable Entity", "The request does not satisfy the contract",
                          [{"loc": ["body", "clock_id"], "msg": "No such test clock", "type": "value_error"}])  # fmt: skip
        return 201, self._issue(tenant, body["api"], clock_id)

    def list_keys(self, admin: bool, caller: Any, _b: Any, _q: Any, tid: str) -> tuple[int, Any]:
        tenant = self._tenant(admin, caller, tid)
        return 200, {"data": list(tenant.keys.values())}

    def revoke_key(
        self, admin: bool, caller: Any, _b: Any, _q: Any, tid: str, kid: str
    ) -> tuple[int, Any]:
        tenant = self._tenant(admin, caller, tid)
        for record in tenant.keys.values():
            if record["id"] == kid:
                record["revoked_at"] = record["revoked_at"] or iso(START)
                return 200, record
        raise Problem(404, "Not Found", "Key not found")

    def reset(self, admin: bool, caller: Any, body: Any, _q: Any) -> tuple[int, Any]:
        tenant = self._tenant(admin, caller, body.get("tenant_id"))
        tenant.clocks.clear()
        tenant.log.clear()
        self.resets.append(tenant.id)
        return 200, {"tenants": [tenant.id]}

    def create_clock(self, admin: bool, caller: Any, body: Any, query: Any) -> tuple[int, Any]:
        tenant = self._tenant(admin, caller, query.get("tenant_id"))
        clock = {
            "id": f"clk_{secrets.token_hex(6)}", "name": body.get("name"),
            "now": iso(datetime.fromisoformat(body.get("now", iso(START)))),
            "created_at": iso(START),
        }  # fmt: skip
        tenant.clocks[clock["id"]] = clock
        return 201, clock

    def list_clocks(self, admin: bool, caller: Any, _b: Any, query: Any) -> tuple[int, Any]:
        tenant = self._tenant(admin, caller, query.get("tenant_id"))
        return 200, {"data": list(tenant.clocks.values()), "next_cursor": None}

    def _clock(self, admin: bool, caller: Any, query: Any, cid: str) -> tuple[FakeTenant, Any]:
        tenant = self._tenant(admin, caller, query.get("tenant_id"))
        if cid not in tenant.clocks:
            raise Problem(404, "Not Found", "Clock not found")
        return tenant, tenant.clocks[cid]

    def get_clock(self, admin: bool, caller: Any, _b: Any, query: Any, cid: str) -> tuple[int, Any]:
        return 200, self._clock(admin, caller, query, cid)[1]

    def delete_clock(
        self, admin: bool, caller: Any, _b: Any, query: Any, cid: str
    ) -> tuple[int, Any]:
        tenant, _ = self._clock(admin, caller, query, cid)
        del tenant.clocks[cid]
        return 204, None

    def advance(self, admin: bool, caller: Any, body: Any, query: Any, cid: str) -> tuple[int, Any]:
        _, clock = self._clock(admin, caller, query, cid)
        if len(body) != 1 or next(iter(body)) not in ("to", "seconds", "until"):
            raise Problem(422, "Unprocessable Entity", "Exactly one of to, seconds, until")
        self.advanced.append((cid, body))
        now = datetime.fromisoformat(clock["now"])
        if "to" in body:
            moved = datetime.fromisoformat(body["to"])
            if moved < now:
                raise Problem(409, "Conflict", "Clocks only move forward")
        else:
            moved = now + timedelta(seconds=body.get("seconds", 1))
        clock["now"] = iso(moved)
        return 200, clock

    def _entries(self, admin: bool, caller: Any, query: Any) -> list[dict[str, Any]]:
        tenant = self._tenant(admin, caller, query.get("tenant_id"))
        found = list(tenant.log)
        for name in ("job_id", "path", "method", "api"):
            if name in query:
                found = [e for e in found if str(e[name]) == query[name]]
        if "status" in query:
            found = [e for e in found if e["status"] == int(query["status"])]
        return found

    def list_requests(self, admin: bool, caller: Any, _b: Any, query: Any) -> tuple[int, Any]:
        found = self._entries(admin, caller, query)
        if "cursor" in query:  # the id of the last entry of the previous page
            found = [e for e in found if e["id"] < query["cursor"]]
        limit = int(query.get("limit", 50))
        page = found[:limit]
        return 200, {"data": page, "next_cursor": page[-1]["id"] if found[limit:] else None}

    def count_requests(self, admin: bool, caller: Any, _b: Any, query: Any) -> tuple[int, Any]:
        return 200, {"count": len(self._entries(admin, caller, query))}

    def get_request(
        self, admin: bool, caller: Any, _b: Any, query: Any, rid: str
    ) -> tuple[int, Any]:
        for entry in self._tenant(admin, caller, query.get("tenant_id")).log:
            if entry["id"] == rid:
                return 200, entry
        raise Problem(404, "Not Found", "Request not found")

    def delete_requests(self, admin: bool, caller: Any, _b: Any, query: Any) -> tuple[int, Any]:
        self._tenant(admin, caller, query.get("tenant_id")).log.clear()
        return 204, None

    T = "/sandbox/v1/tenants"
    ROUTES: tuple[tuple[str, str, Any], ...] = (
        ("/health", "GET", health),
        (T, "POST", create_tenant),
        (T, "GET", list_tenants),
        (T + "/([^/]+)", "GET", get_tenant),
        (T + "/([^/]+)", "DELETE", delete_tenant),
        (T + "/([^/]+)/keys", "POST", create_key),
        (T + "/([^/]+)/keys", "GET", list_keys),
        (T + "/([^/]+)/keys/([^/]+)", "DELETE", revoke_key),
        ("/sandbox/v1/reset", "POST", reset),
        ("/sandbox/v1/clocks", "POST", create_clock),
        ("/sandbox/v1/clocks", "GET", list_clocks),
        ("/sandbox/v1/clocks/([^/]+)", "GET", get_clock),
        ("/sandbox/v1/clocks/([^/]+)", "DELETE", delete_clock),
        ("/sandbox/v1/clocks/([^/]+)/advance", "POST", advance),
        ("/sandbox/v1/requests/count", "GET", count_requests),
        ("/sandbox/v1/requests", "GET", list_requests),
        ("/sandbox/v1/requests", "DELETE", delete_requests),
        ("/sandbox/v1/requests/([^/]+)", "GET", get_request),
    )


@contextmanager
def serve_fake() -> Iterator[tuple[FakeSandbox, str]]:
    """A fresh fake on a free port: ``(fake, url)``."""
    fake = FakeSandbox()
    with ThreadedServer(fake) as server:
        yield fake, server.url
