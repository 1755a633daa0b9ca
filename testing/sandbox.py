"""One test's own corner of a sandbox: a tenant, a test clock, and the tenant's keys bound to
that clock, so every job the test creates, through any client, runs on time the test moves.

``Sandbox.open`` builds it through the control plane with the admin's client; ``close``
deletes the tenant and everything it owns. This is the value of the pytest plugin's
``pollable`` fixture.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from pollable.lifecycle.model import STAGES

from .client import (
    Clock,
    Fault,
    LogFilters,
    PollingReport,
    ReportFilters,
    RequestEntry,
    SandboxClient,
    SandboxError,
    Tenant,
    describe_polling,
    parse_time,
    tls_context,
)

if TYPE_CHECKING:
    from typing import Unpack

    import crosmos
    import runcaptain

#: Words of ``until`` that name a stage; any other word names a status.
STAGE_WORDS = frozenset(stage.value for stage in STAGES)


class SandboxClock:
    """The test clock of a sandbox: frozen until the test moves it, only forward."""

    def __init__(self, client: SandboxClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock

    @property
    def id(self) -> str:
        return self._clock["id"]

    @property
    def now(self) -> datetime:
        """The clock's time, as the server has it now."""
        self._clock = self._client.get_clock(self.id)
        return parse_time(self._clock["now"])

    def advance(
        self,
        *,
        seconds: float | None = None,
        to: datetime | str | None = None,
        until: tuple[str, str] | None = None,
    ) -> datetime:
        """Move the clock by ``seconds``, ``to`` a time, or ``until=(job_id, word)``: until
        the job reaches a status or a stage, in the job's own contract's words (a Crosmos
        ``"processing"``, a Captain ``"running"`` or ``"embedding"``). Answers the new time.
        """
        if until is None:
            clock = self._client.advance_clock(self.id, seconds=seconds, to=to)
        else:
            job_id, word = until
            target = {"stage": word} if word in STAGE_WORDS else {"status": word}
            clock = self._client.advance_clock(
                self.id, seconds=seconds, to=to, until_job=job_id, **target
            )
        self._clock = clock
        return parse_time(clock["now"])

    def _replace(self, clock: Clock) -> None:
        self._clock = clock

    def __repr__(self) -> str:
        return f"<SandboxClock {self.id} at {self._clock['now']}>"


class Sandbox:
    """A tenant of its own, its keys bound to a fresh test clock.

    - ``base_url``, ``organization_id``, ``keys`` (API name to key), ``crosmos_key``,
      ``captain_key``;
    - ``crosmos()`` and ``captain()``: the official SDKs' clients, pointed here;
    - ``clock``: ``clock.now``, ``clock.advance(seconds=..., to=..., until=...)``;
    - ``requests(**filters)``: the tenant's request log; ``reset()``: start over;
    - ``polling_report(**filters)`` and ``assert_polite_polling(**filters)``: what a reviewer
      would flag in how the test's clients poll (``GET /sandbox/v1/reports/polling``);
    - ``client``: the control plane, as this tenant.
    """

    def __init__(self, admin: SandboxClient, base_url: str, tenant: Tenant, control_key: str):
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.client = SandboxClient(self.base_url, control_key)
        self._admin = admin
        self._key_ids: list[str] = []
        self.keys: dict[str, str] = {}
        self._apis: list[str] = []
        #: The SDK clients' connection pools, closed with the sandbox.
        self._pools: list[httpx.Client] = []
        self.clock: SandboxClock

    @classmethod
    def open(cls, admin: SandboxClient, base_url: str, name: str) -> Sandbox:
        """A new tenant called ``name`` (unique on the server), a clock, and bound keys.

        The keys the tenant is created with stay unbound; the first of them is the
        tenant's own credential on the control plane, and survives ``reset()``.
        """
        created = admin.create_tenant(name)
        sandbox = cls(admin, base_url, created["tenant"], created["keys"][0]["key"])
        sandbox._apis = [key["api"] for key in created["keys"]]
        try:
            sandbox._bind(name)
        except BaseException:
            sandbox.close()
            raise
        return sandbox

    def _bind(self, name: str) -> None:
        clock = self.client.create_clock(name=name[:64])
        if hasattr(self, "clock"):
            self.clock._replace(clock)
        else:
            self.clock = SandboxClock(self.client, clock)
        keys = [
            self.client.create_key(self.tenant_id, api, clock_id=clock["id"]) for api in self._apis
        ]
        self.keys = {key["api"]: key["key"] for key in keys}
        self._key_ids = [key["id"] for key in keys]

    @property
    def tenant_id(self) -> str:
        return self.tenant["id"]

    @property
    def organization_id(self) -> str:
        return self.tenant["organization_id"]

    def key(self, api: str) -> str:
        """The tenant's key for ``api``, bound to the clock."""
        try:
            return self.keys[api]
        except KeyError:
            raise KeyError(f"no {api!r} key: the server serves {sorted(self.keys)}") from None

    @property
    def crosmos_key(self) -> str:
        return self.key("crosmos")

    @property
    def captain_key(self) -> str:
        return self.key("captain")

    def crosmos(self, **options: Any) -> crosmos.Crosmos:
        """The official Crosmos SDK's client (``crosmos``) on this sandbox, with its strict
        response validation on and no retries; ``options`` override either."""
        import crosmos

        settings: dict[str, Any] = {
            "api_key": self.crosmos_key,
            "base_url": self.base_url,
            "max_retries": 0,
            "_strict_response_validation": True,
        }
        if "http_client" not in options:
            # The SDK's own defaults (timeouts, limits, redirects), with the shared TLS store.
            settings["http_client"] = self._pool(crosmos.DefaultHttpxClient(verify=tls_context()))
        return crosmos.Crosmos(**{**settings, **options})

    def captain(self, **options: Any) -> runcaptain.Captain:
        """The official Captain SDK's client (``captain-sdk``, module ``runcaptain``) on this
        sandbox, as the tenant's organization. The SDK has no strict mode."""
        import runcaptain

        settings: dict[str, Any] = {
            "key": self.captain_key,
            "organization_id": self.organization_id,
            "base_url": self.base_url,
        }
        if "httpx_client" not in options:
            # What the SDK would build itself (its 60 s default timeout, redirects followed),
            # with the shared TLS store.
            settings["httpx_client"] = self._pool(
                httpx.Client(
                    timeout=options.get("timeout", 60),
                    follow_redirects=options.get("follow_redirects", True),
                    verify=tls_context(),
                )
            )
        return runcaptain.Captain(**{**settings, **options})

    def _pool(self, http: httpx.Client) -> httpx.Client:
        self._pools.append(http)
        return http

    def requests(self, **filters: Unpack[LogFilters]) -> list[RequestEntry]:
        """The tenant's request log, newest first: every entry matching ``filters``
        (``job_id``, ``path``, ``method``, ``status``, ``api``, ``since``, ``until``)."""
        return list(self.client.iter_requests(**filters))

    # -- the polling report ---------------------------------------------------------------

    def polling_report(
        self, *, client: str | None = None, **filters: Unpack[ReportFilters]
    ) -> PollingReport:
        """What a reviewer would flag in how this test's clients poll (see
        ``GET /sandbox/v1/reports/polling``)."""
        return self.client.polling_report(client=client, **filters)

    def assert_polite_polling(
        self, *, client: str | None = None, **filters: Unpack[ReportFilters]
    ) -> PollingReport:
        """Raise ``AssertionError`` listing every finding of the polling report (with the
        Request-Ids that find them in the log) unless there is none; else the report."""
        report = self.polling_report(client=client, **filters)
        if any(report["findings"].values()):
            raise AssertionError("impolite polling:\n" + describe_polling(report))
        return report

    def fault(self, **rule: Any) -> Fault:
        """A fault rule of the tenant (``SandboxClient.create_fault``): e.g.
        ``fault(status=429, operation="get_job_status_v2", times=2)``. Delete it with
        ``client.delete_fault(rule["id"])``; ``reset()`` and the end of the test drop it."""
        return self.client.create_fault(**rule)

    def reset(self) -> None:
        """Start over: the tenant's jobs, log and clock are cleared by the server, and a
        fresh clock with fresh keys bound to it replace them. The old keys are revoked, so
        SDK clients made before ``reset()`` fail loudly: make new ones."""
        self.client.reset()
        for key_id in self._key_ids:
            self.client.revoke_key(self.tenant_id, key_id)
        self._bind(self.tenant["name"])

    def close(self) -> None:
        """Delete the tenant and everything it owns (a tenant already gone is fine)."""
        try:
            self._admin.delete_tenant(self.tenant_id)
        except SandboxError as exc:
            if exc.status != 404:
                raise
        finally:
            self.client.close()
            for pool in self._pools:
                pool.close()
            self._pools.clear()

    def __repr__(self) -> str:
        return f"<Sandbox tenant {self.tenant['name']!r} at {self.base_url}>"
