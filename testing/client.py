"""A Python client for a pollable sandbox's control plane (``openapi/sandbox.json``).

``SandboxClient(base_url, token)`` authenticates with the admin token (every tenant) or
with any API key of a tenant (that tenant only). Each method is one operation of the
contract and returns its JSON as plain dicts, typed below; every failure, an error answer
or no answer at all, raises ``SandboxError`` carrying the RFC 9457 problem details::

    with SandboxClient("http://127.0.0.1:8000", admin_token) as sandbox:
        created = sandbox.create_tenant("acme")
        clock = sandbox.create_clock(tenant_id=created["tenant"]["id"])
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import httpx

import pollable

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate store every client made here verifies with, loaded once a process.

    httpx loads the CA bundle anew for each client it builds (about 50 ms); a test that
    makes a control-plane client and an SDK client or two would spend most of its time
    there. A client context is safe to share between threads.
    """
    return httpx.create_ssl_context()


class Tenant(TypedDict):
    id: str
    name: str
    organization_id: str
    credits: float
    default_scenario: str | None
    created_at: str


class Key(TypedDict):
    """An API key as listed: its label, never the key."""

    id: str
    api: str
    environment: str
    label: str
    clock_id: str | None
    created_at: str
    revoked_at: str | None


class NewKey(Key):
    """A key just created: the key itself is shown this once."""

    key: str


class NewTenant(TypedDict):
    tenant: Tenant
    keys: list[NewKey]


class Clock(TypedDict):
    """A test clock: frozen at ``now`` until advanced."""

    id: str
    name: str | None
    now: str
    created_at: str


class Fault(TypedDict):
    id: str
    api: str | None
    operation: str | None
    job_id: str | None
    action: dict[str, Any]
    trigger: dict[str, Any] | None
    matched: int
    created_at: str


class Health(TypedDict):
    status: str
    version: str
    store: str


class Page(TypedDict, Generic[T]):
    data: list[T]
    next_cursor: str | None


class Unset:
    """The value of an argument left out, where None means something."""


UNSET = Unset()

#: One entry of the request log; its fields are the log contract's.
RequestEntry = dict[str, Any]


class LogFilters(TypedDict, total=False):
    """What the request log can be filtered by; ``since`` and ``until`` bound its time."""

    job_id: str
    path: str
    method: str
    status: int
    api: str
    since: datetime | str
    until: datetime | str


class ReportFilters(TypedDict, total=False):
    """What the polling report can be narrowed to."""

    job_id: str
    since: datetime | str
    until: datetime | str


#: The polling report; its fields are the report contract's (``PollingReport``).
PollingReport = dict[str, Any]


class SandboxError(Exception):
    """The control plane refused a call (``status`` and the ``problem`` it answered), or did
    not answer at all (``status`` None)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.request_id = request_id

    @property
    def title(self) -> str | None:
        return self.problem.get("title")

    @property
    def detail(self) -> str | None:
        return self.problem.get("detail")

    @classmethod
    def from_response(cls, response: httpx.Response) -> SandboxError:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            problem = {"title": response.reason_phrase, "status": response.status_code}
            if response.text.strip():
                problem["detail"] = response.text.strip()[:200]
        title = problem.get("title") or response.reason_phrase
        message = f"{response.status_code} {title}"
        if problem.get("detail"):
            message += f": {problem['detail']}"
        # A 422 lists what was wrong; its first reason makes the one line precise.
        errors = problem.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            where = ".".join(str(part) for part in errors[0].get("loc", []))
            message += (
                f" ({where}: {errors[0].get('msg')})" if where else f" ({errors[0].get('msg')})"
            )
        return cls(
            message,
            status=response.status_code,
            problem=problem,
            request_id=response.headers.get("request-id"),
        )


def when(value: datetime | str) -> str:
    """A date-time as the contract writes it (RFC 3339)."""
    return value.isoformat() if isinstance(value, datetime) else value


def parse_time(value: str) -> datetime:
    """A date-time the contract answered, as an aware datetime."""
    return datetime.fromisoformat(value)


class SandboxClient:
    """The control plane of the pollable server at ``base_url``, as the holder of ``token``.

    The admin names the tenant of clock and request-log calls with ``tenant_id``; a tenant's
    key always acts on its own tenant and leaves ``tenant_id`` unset.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"pollable-client/{pollable.__version__}",
            },
            timeout=timeout,
            transport=transport,
            verify=tls_context(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """One request; the decoded JSON answer (None for 204). Parameters that are None are
        left out."""
        query = {name: value for name, value in (params or {}).items() if value is not None}
        try:
            response = self._http.request(method, path, params=query, json=body)
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SandboxError(f"no answer from {self.base_url}: {reason}") from None
        if response.status_code >= 400:
            raise SandboxError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise SandboxError(
                f"{method} {path} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
                request_id=response.headers.get("request-id"),
            ) from None

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        cursor = params.get("cursor")
        while True:
            page = self.call("GET", path, params={**params, "cursor": cursor})
            yield from page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /health``: the server is up and reaches its store (no credential needed)."""
        result: Health = self.call("GET", "/health")
        return result

    # -- tenants --------------------------------------------------------------------------

    def create_tenant(
        self,
        name: str,
        *,
        organization_id: str | None = None,
        credits: float | None = None,
        default_scenario: str | None = None,
    ) -> NewTenant:
        """Admin only: a tenant with one new key per job API (shown this once)."""
        body = {
            "name": name,
            "organization_id": organization_id,
            "credits": credits,
            "default_scenario": default_scenario,
        }
        result: NewTenant = self.call(
            "POST",
            "/sandbox/v1/tenants",
            body={k: v for k, v in body.items() if v is not None},
        )
        return result

    def list_tenants(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Tenant]:
        """One page of tenants: every tenant for the admin, its own for a tenant key."""
        result: Page[Tenant] = self.call(
            "GET", "/sandbox/v1/tenants", params={"limit": limit, "cursor": cursor}
        )
        return result

    def iter_tenants(self) -> Iterator[Tenant]:
        """Every tenant the caller may see, page after page."""
        return self._pages("/sandbox/v1/tenants", {"limit": 200})

    def get_tenant(self, tenant_id: str) -> Tenant:
        result: Tenant = self.call("GET", f"/sandbox/v1/tenants/{tenant_id}")
        return result

    def update_tenant(
        self,
        tenant_id: str,
        *,
        credits: float | None = None,
        default_scenario: str | Unset | None = UNSET,
    ) -> Tenant:
        """Set the tenant's ``credits`` or ``default_scenario`` (None clears it)."""
        body: dict[str, Any] = {}
        if credits is not None:
            body["credits"] = credits
        if not isinstance(default_scenario, Unset):
            body["default_scenario"] = default_scenario
        result: Tenant = self.call("PATCH", f"/sandbox/v1/tenants/{tenant_id}", body=body)
        return result

    def delete_tenant(self, tenant_id: str) -> None:
        """Admin only: the tenant and everything it owns."""
        self.call("DELETE", f"/sandbox/v1/tenants/{tenant_id}")

    # -- keys -----------------------------------------------------------------------------

    def create_key(
        self,
        tenant_id: str,
        api: str,
        *,
        environment: str | None = None,
        clock_id: str | None = None,
    ) -> NewKey:
        """A new key of ``api`` (shown this once); jobs created with it run on ``clock_id``."""
        body = {"api": api, "environment": environment, "clock_id": clock_id}
        result: NewKey = self.call(
            "POST",
            f"/sandbox/v1/tenants/{tenant_id}/keys",
            body={k: v for k, v in body.items() if v is not None},
        )
        return result

    def list_keys(self, tenant_id: str) -> list[Key]:
        """The tenant's keys: labels, never the keys."""
        result: list[Key] = self.call("GET", f"/sandbox/v1/tenants/{tenant_id}/keys")["data"]
        return result

    def revoke_key(self, tenant_id: str, key_id: str) -> Key:
        """Refused by every server process from the next request on; idempotent."""
        result: Key = self.call("DELETE", f"/sandbox/v1/tenants/{tenant_id}/keys/{key_id}")
        return result

    # -- test clocks ----------------------------------------------------------------------

    def create_clock(
        self,
        *,
        name: str | None = None,
        now: datetime | str | None = None,
        tenant_id: str | None = None,
    ) -> Clock:
        """A test clock frozen at ``now`` (default: the server's current time)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if now is not None:
            body["now"] = when(now)
        result: Clock = self.call(
            "POST", "/sandbox/v1/clocks", params={"tenant_id": tenant_id}, body=body
        )
        return result

    def list_clocks(self, *, tenant_id: str | None = None) -> list[Clock]:
        return list(self._pages("/sandbox/v1/clocks", {"tenant_id": tenant_id}))

    def get_clock(self, clock_id: str, *, tenant_id: str | None = None) -> Clock:
        result: Clock = self.call(
            "GET", f"/sandbox/v1/clocks/{clock_id}", params={"tenant_id": tenant_id}
        )
        return result

    def delete_clock(self, clock_id: str, *, tenant_id: str | None = None) -> None:
        """The clock and every job bound to it."""
        self.call("DELETE", f"/sandbox/v1/clocks/{clock_id}", params={"tenant_id": tenant_id})

    # -- fault rules ----------------------------------------------------------------------

    def create_fault(
        self,
        *,
        status: int | None = None,
        latency_ms: int | None = None,
        close: bool = False,
        retry_after: int | None = None,
        api: str | None = None,
        operation: str | None = None,
        job_id: str | None = None,
        times: int | None = None,
        every: int | None = None,
        probability: float | None = None,
        seed: int = 0,
        tenant_id: str | None = None,
    ) -> Fault:
        """A fault rule: answer ``status`` (429, 503, 500; ``retry_after`` seconds for 429 and
        503), wait ``latency_ms`` first, or ``close`` the connection unanswered; on requests
        of ``api``, ``operation``, ``job_id`` (each None: any); for the next ``times``
        matching requests, ``every`` Nth, or with ``probability`` drawn from ``seed`` (none
        of them: every matching request)."""
        if sum((status is not None, latency_ms is not None, close)) != 1:
            raise ValueError("a fault has exactly one of status, latency_ms or close")
        if sum((times is not None, every is not None, probability is not None)) > 1:
            raise ValueError("a fault fires on at most one of times, every or probability")
        action: dict[str, Any]
        if status is not None:
            action = {"status": status}
            if retry_after is not None:
                action["retry_after"] = retry_after
        elif latency_ms is not None:
            action = {"latency_ms": latency_ms}
        else:
            action = {"close": True}
        body: dict[str, Any] = {"action": action}
        for name, value in (("api", api), ("operation", operation), ("job_id", job_id)):
            if value is not None:
                body[name] = value
        if times is not None:
            body["trigger"] = {"next": times}
        elif every is not None:
            body["trigger"] = {"every": every}
        elif probability is not None:
            body["trigger"] = {"probability": probability, "seed": seed}
        result: Fault = self.call(
            "POST", "/sandbox/v1/faults", params={"tenant_id": tenant_id}, body=body
        )
        return result

    def list_faults(self, *, tenant_id: str | None = None) -> list[Fault]:
        """The tenant's fault rules, oldest first (the order they fire in)."""
        found = self.call("GET", "/sandbox/v1/faults", params={"tenant_id": tenant_id})
        result: list[Fault] = found["data"]
        return result

    def get_fault(self, fault_id: str, *, tenant_id: str | None = None) -> Fault:
        result: Fault = self.call(
            "GET", f"/sandbox/v1/faults/{fault_id}", params={"tenant_id": tenant_id}
        )
        return result

    def delete_fault(self, fault_id: str, *, tenant_id: str | None = None) -> None:
        self.call("DELETE", f"/sandbox/v1/faults/{fault_id}", params={"tenant_id": tenant_id})

    def advance_clock(
        self,
        clock_id: str,
        *,
        to: datetime | str | None = None,
        seconds: float | None = None,
        until_job: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        tenant_id: str | None = None,
    ) -> Clock:
        """Move a clock forward: ``to`` a time, by ``seconds``, or until job ``until_job``
        reaches ``status`` or ``stage`` (in the job's own contract's words). Exactly one of
        the three; clocks never move back."""
        chosen = [to is not None, seconds is not None, until_job is not None]
        if sum(chosen) != 1:
            raise ValueError("advance a clock with exactly one of to, seconds or until_job")
        if until_job is None and (status or stage):
            raise ValueError("status and stage go with until_job")
        if until_job is not None and (status is None) == (stage is None):
            raise ValueError("until_job needs exactly one of status or stage")
        body: dict[str, Any]
        if to is not None:
            body = {"to": when(to)}
        elif seconds is not None:
            body = {"seconds": seconds}
        else:
            target = {"status": status} if status is not None else {"stage": stage}
            body = {"until": {"job_id": until_job, **target}}
        result: Clock = self.call(
            "POST",
            f"/sandbox/v1/clocks/{clock_id}/advance",
            params={"tenant_id": tenant_id},
            body=body,
        )
        return result

    # -- request log ----------------------------------------------------------------------

    def list_requests(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
        **filters: Unpack[LogFilters],
    ) -> Page[RequestEntry]:
        """One page of the request log, newest first."""
        params = {**_query(filters), "limit": limit, "cursor": cursor, "tenant_id": tenant_id}
        result: Page[RequestEntry] = self.call("GET", "/sandbox/v1/requests", params=params)
        return result

    def iter_requests(
        self, *, tenant_id: str | None = None, **filters: Unpack[LogFilters]
    ) -> Iterator[RequestEntry]:
        """Every entry matching ``filters``, newest first, page after page."""
        params = {**_query(filters), "tenant_id": tenant_id, "limit": 200}
        return self._pages("/sandbox/v1/requests", params)

    def count_requests(self, *, tenant_id: str | None = None, **filters: Unpack[LogFilters]) -> int:
        """How many entries match ``filters``."""
        params = {**_query(filters), "tenant_id": tenant_id}
        answer = self.call("GET", "/sandbox/v1/requests/count", params=params)
        return int(answer["count"] if isinstance(answer, dict) else answer)

    def get_request(self, request_id: str, *, tenant_id: str | None = None) -> RequestEntry:
        """The entry a response's ``Request-Id`` names."""
        result: RequestEntry = self.call(
            "GET", f"/sandbox/v1/requests/{request_id}", params={"tenant_id": tenant_id}
        )
        return result

    def delete_requests(self, *, tenant_id: str | None = None) -> Any:
        """Empty the tenant's request log."""
        return self.call("DELETE", "/sandbox/v1/requests", params={"tenant_id": tenant_id})

    # -- the polling report ---------------------------------------------------------------

    def polling_report(
        self,
        *,
        tenant_id: str | None = None,
        client: str | None = None,
        max_entries: int | None = None,
        **filters: Unpack[ReportFilters],
    ) -> PollingReport:
        """``GET /sandbox/v1/reports/polling``: what a reviewer would flag in how each client
        polls, from the newest ``max_entries`` entries of the tenant's log."""
        params = {
            **_query(filters), "tenant_id": tenant_id, "client": client,
            "max_entries": max_entries,
        }  # fmt: skip
        result: PollingReport = self.call("GET", "/sandbox/v1/reports/polling", params=params)
        return result

    # -- reset ----------------------------------------------------------------------------

    def reset(self, *, tenant_id: str | None = None, all_tenants: bool = False) -> list[str]:
        """Start over: a tenant key resets its own tenant; the admin names ``tenant_id`` or
        resets every tenant (``all_tenants``). Keys stay. Answers the ids of the tenants
        reset."""
        body: dict[str, Any] = {}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        if all_tenants:
            body["all"] = True
        result: list[str] = self.call("POST", "/sandbox/v1/reset", body=body)["tenants"]
        return result


def _query(filters: LogFilters | ReportFilters) -> dict[str, Any]:
    """Request-log filters as query parameters, times as RFC 3339."""
    return {
        name: when(value) if isinstance(value, datetime) else value
        for name, value in filters.items()
    }


def describe_polling(report: PollingReport) -> str:
    """The report as lines a person reads: per client its counts, then its worst findings
    with their Request-Ids."""
    lines = [
        f"{report['entries_considered']} log entries considered"
        + (f" (the newest {report['max_entries']}; older ones left out)" if report["truncated"]
           else "")
    ]  # fmt: skip
    for client in report["clients"]:
        found = {kind: n for kind, n in client["findings"].items() if n}
        summary = ", ".join(f"{kind} {n}" for kind, n in found.items()) or "no findings"
        lines.append(
            f"{client['client']}: {client['polls']} polls of {client['jobs']} jobs, "
            f"{client['requests']} requests: {summary}"
        )
        for example in client["examples"]:
            job = f" job {example['job_id']}" if example["job_id"] else ""
            lines.append(f"  {example['kind']}  {example['request_id']}{job}: {example['detail']}")
    return "\n".join(lines)
