"""Fixtures: tenants, keys and jobs put into a store through the real handlers.

A fixture is a YAML (or JSON) document::

    tenants:
      - name: acme                      # reused if the store already has it
        default_scenario: partial       # optional: a name of lifecycle.scenarios.CATALOGUE
        credits: 5000                   # optional: balance of a tenant this fixture creates
        organization_id: 0b9c...        # optional: fixed organization UUID (X-Organization-ID)
        keys:
          - {api: crosmos, key: csk_fixture_acme_0001}   # a fixed key, for reproducible CI
          - {api: captain, env: prod}                    # no key: one is generated and printed
        faults:                         # optional: fault rules, as POST /sandbox/v1/faults takes
          - {api: captain, action: {status: 429, retry_after: 1}, trigger: {every: 5}}
    jobs:
      - name: done                      # fixture-local, unique; names the job in the output
        tenant: acme                    # listed above, or already in the store
        operation: ingest_sources_api_v1_sources_post    # any job-creating operationId
        params: {}                      # path, query and header parameters, by name
        body: {space_id: 8f0c..., sources: [{content: "..."}]}
        scenario: happy                 # optional: sent as ``Prefer: scenario=happy``
        created: "-1h"                  # optional: -90s, +5m, -1h, -2d, "now" or ISO-8601
        count: 1                        # optional: N copies, named done-1 ... done-N

Every job goes through ``server.dispatch.respond``, the function every HTTP request goes
through, minus the socket: ``params`` and ``body`` become the request's path, query,
headers and body and are checked against the operation's contract (a fixture that breaks
it is refused, naming the job), the handler runs as the tenant with a clock that reads
``created``, and the job id comes from its reply. Fault rules are created the same way,
through the control plane's ``create_fault``, after every job (fixture jobs are never
faulted). An API with an organization header
(Captain's ``X-Organization-ID``) gets the tenant's own unless ``params`` names one.

Fixed keys are stored hashed, like generated ones, and must carry one of their API's
prefixes (its descriptor's ``KeyRule``; ``env`` picks one). Plans are deterministic: the
same body in the same scenario under the same ``--seed`` plans the same job; job ids are
new on every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import yaml

from pollable.handlers.api import NoRequestLog, Principal, Reply, Services
from pollable.handlers.descriptor import ApiDescriptor, KeyRule, hash_key
from pollable.handlers.registry import JOB_APIS, REGISTRY, by_name
from pollable.handlers.replies import FinalReplies
from pollable.lifecycle import scenarios
from pollable.store.base import Store, Tenant

from . import contract
from .dispatch import Bound, Request, bind, respond
from .operation import Operation
from .provision import ensure_tenant
from .settings import Settings

PREFER_KEY = "prefer"
#: The control plane's operation that creates a fault rule.
CREATE_FAULT = "create_fault"


class SeedError(Exception):
    """A fixture, or a call made for it, that pollable cannot use. The message is one line."""


# -- time ---------------------------------------------------------------------------------

_RELATIVE = re.compile(r"([+-]?)(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_instant(value: object, now: float) -> float:
    """POSIX seconds for ``now``, an offset from now (``-90s``, ``+5m``, ``-1h``, ``-2d``) or
    an ISO-8601 instant (UTC when it names no offset). Raises ``ValueError``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text == "now":
            return now
        match = _RELATIVE.fullmatch(text)
        if match:
            sign = -1 if match.group(1) == "-" else 1
            return now + sign * float(match.group(2)) * _UNITS[match.group(3)]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a time: use now, -90s, +5m, -1h, -2d or ISO-8601"
            ) from None
    else:
        raise ValueError(f"{value!r} is not a time: use now, -90s, +5m, -1h, -2d or ISO-8601")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- calling operations without HTTP --------------------------------------------------------


def reply_detail(reply: Reply) -> str:
    """A reply's error detail on one line (FastAPI's string, or its list of items; a
    problem's ``errors``)."""
    detail = reply.body.get("detail") if isinstance(reply.body, dict) else reply.body
    if isinstance(reply.body, dict) and isinstance(reply.body.get("errors"), list):
        detail = reply.body["errors"]
    if isinstance(detail, list):
        parts = []
        for item in detail:
            loc = ".".join(str(part) for part in item.get("loc", ()))
            parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "; ".join(parts)
    return str(detail)


def _raw(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class Operations:
    """Every operation of the served APIs, and a way to call one as HTTP would, through
    ``server.dispatch.respond``."""

    def __init__(
        self, bound: Mapping[str, Bound] | None = None, *, validate_responses: bool = True
    ) -> None:
        self._bound = bound if bound is not None else bind([contract.load(a) for a in REGISTRY])
        self._validate = validate_responses
        self.apis: dict[str, ApiDescriptor] = by_name(
            list({id(b.api): b.api for b in self._bound.values()}.values())
        )

    def find(self, operation_id: str) -> Bound:
        """The operation with this id; ``SeedError`` if no served API has it."""
        try:
            return self._bound[operation_id]
        except KeyError:
            raise SeedError(f"no served contract has an operation {operation_id!r}") from None

    def job_status(self, api: str) -> Operation:
        """The operation of ``api`` that reads one job."""
        operation_id = self.apis[api].status_operation
        if operation_id is None:
            raise SeedError(f"the {api} API has no jobs")
        return self.find(operation_id).operation

    async def call(
        self,
        operation_id: str,
        tenant: Tenant,
        services: Services,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Reply:
        """The reply to this request from ``tenant``, exactly as over HTTP."""
        principal = Principal(tenant.id, tenant.name, tenant.organization_id, "")
        return await self.call_as(operation_id, principal, services, params=params, body=body)

    async def call_as(
        self,
        operation_id: str,
        principal: Principal,
        services: Services,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Reply:
        """The reply to this request from ``principal`` (acting through the operation's
        API), exactly as over HTTP."""
        target = self.find(operation_id)
        principal = dataclasses.replace(principal, api=target.api.name)
        request = _request(target, params or {}, body, principal)
        return await respond(
            target, principal, services, request, validate_responses=self._validate
        )


def _request(target: Bound, given: Mapping[str, Any], body: Any, principal: Principal) -> Request:
    """A fixture's parameters and body as the request HTTP would deliver."""
    operation = target.operation
    declared = {param.key: param for param in operation.params}
    by_key: dict[str, Any] = {}
    for name, value in given.items():
        key = str(name).lower().replace("-", "_")
        if key not in declared:
            known = ", ".join(p.name for p in operation.params) or "none"
            raise SeedError(
                f"{operation.operation_id} has no parameter {name!r} (parameters: {known})"
            )
        by_key[key] = value
    header = target.api.organization_header
    if header is not None:
        key = header.lower().replace("-", "_")
        if key in declared:
            by_key.setdefault(key, principal.organization_id)
    path: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    headers: list[tuple[bytes, bytes]] = []
    for key, value in by_key.items():
        if value is None:
            continue
        param = declared[key]
        if param.location == "path":
            path[param.name] = _raw(value)
        elif param.location == "query":
            query.append((param.name, _raw(value)))
        else:
            try:
                raw = _raw(value).encode("latin-1")
            except UnicodeEncodeError:
                raise SeedError(f"header {param.name} must be Latin-1 text") from None
            headers.append((param.name.lower().encode("latin-1"), raw))
    if operation.body is None:
        if body is not None:
            raise SeedError(f"{operation.operation_id} takes no request body")
        payload = b""
    else:
        payload = b"" if body is None else orjson.dumps(body)
        headers.append((b"content-type", b"application/json"))

    async def read_body() -> bytes:
        return payload

    return Request(path, urlencode(query).encode("latin-1"), headers, read_body)


@dataclass(frozen=True)
class Clocked:
    """What a handler reaches (``handlers.api.Services``): the settings, the store, and a
    clock that reads one instant."""

    settings: Settings
    store: Store
    now: Callable[[], float]
    job_apis: Sequence[ApiDescriptor] = JOB_APIS
    request_log: NoRequestLog = field(default_factory=NoRequestLog)
    final_replies: FinalReplies = field(default_factory=FinalReplies)


def services_at(store: Store, settings: Settings, moment: float) -> Clocked:
    return Clocked(settings, store, lambda: moment)


# -- the fixture format ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    api: str
    rule: KeyRule
    key: str | None
    env: str


@dataclass(frozen=True)
class TenantSpec:
    name: str
    keys: tuple[KeySpec, ...] = ()
    default_scenario: str | None = None
    credits: float | None = None
    #: A fixed organization UUID (Captain's X-Organization-ID), for reproducible CI.
    organization_id: str | None = None
    #: Fault rules, each a body of the control plane's ``create_fault``.
    faults: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class JobSpec:
    name: str
    tenant: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    scenario: str | None = None
    created: Any = "now"


@dataclass(frozen=True)
class Fixture:
    tenants: tuple[TenantSpec, ...]
    jobs: tuple[JobSpec, ...]
    #: Identifies the fixture's content (key order aside), e.g. to apply it once per store.
    digest: str = ""


def _entry(value: Any, where: str, allowed: set[str], required: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SeedError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        raise SeedError(
            f"{where}: unknown field(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    for name in required:
        if value.get(name) in (None, ""):
            raise SeedError(f"{where}: {name} is required")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _scenario(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if str(value) not in scenarios.CATALOGUE:
        raise SeedError(f"{where}: {scenarios.UnknownScenario(str(value))}")
    return str(value)


def _key(value: Any, where: str, apis: Mapping[str, ApiDescriptor]) -> KeySpec:
    data = _entry(value, where, {"api", "key", "env"}, ["api"])
    name, key = str(data["api"]), data.get("key")
    api = apis.get(name)
    if api is None or api.keys is None:
        named = ", ".join(n for n, a in apis.items() if a.keys is not None)
        raise SeedError(f"{where}: api must be one of {named}, not {name!r}")
    env = str(data.get("env") or api.key_rule.default_environment)
    if env not in api.key_rule.environments:
        choices = " or ".join(api.key_rule.environments)
        raise SeedError(f"{where}: env of a {name} key must be {choices}, not {env!r}")
    if key is not None:
        key = str(key)
        rule = KeyRule({env: api.key_rule.prefixes[env]}) if "env" in data else api.key_rule
        if not rule.issued(key):
            prefixes = " or ".join(rule.prefixes.values())
            raise SeedError(f"{where}: a {name} key must start with {prefixes}")
    return KeySpec(name, api.key_rule, key, env)


def _named(value: Any, kind: str, where: str) -> str:
    """How an entry is called in errors: by its name when it has one."""
    if isinstance(value, dict) and value.get("name") not in (None, ""):
        return f"{kind} {value['name']!r}"
    return where


def _tenant(value: Any, where: str, apis: Mapping[str, ApiDescriptor]) -> TenantSpec:
    where = _named(value, "tenant", where)
    allowed = {"name", "keys", "default_scenario", "credits", "organization_id", "faults"}
    data = _entry(value, where, allowed, ["name"])
    faults = _list(data.get("faults"), where)
    for i, rule in enumerate(faults):
        if not isinstance(rule, dict):
            raise SeedError(f"{where}, fault {i + 1}: expected a mapping (a fault rule)")
    entries = _list(data.get("keys"), where)
    keys = tuple(_key(k, f"{where}, key {i + 1}", apis) for i, k in enumerate(entries))
    credits = data.get("credits")
    if credits is not None and (isinstance(credits, bool) or not isinstance(credits, int | float)):
        raise SeedError(f"{where}: credits must be a number")
    organization = data.get("organization_id")
    if organization is not None:
        try:
            organization = str(uuid.UUID(str(organization)))
        except ValueError:
            raise SeedError(f"{where}: organization_id must be a UUID") from None
    return TenantSpec(
        str(data["name"]), keys, _scenario(data.get("default_scenario"), where),
        None if credits is None else float(credits), organization, tuple(faults),
    )  # fmt: skip


def _jobs(value: Any, where: str) -> list[JobSpec]:
    allowed = {"name", "tenant", "operation", "params", "body", "scenario", "created", "count"}
    where = _named(value, "job", where)
    data = _entry(value, where, allowed, ["name", "tenant", "operation"])
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise SeedError(f"{where}: params must be a mapping of parameter names to values")
    created = data.get("created", "now")
    try:
        parse_instant(created, 0.0)
    except ValueError as exc:
        raise SeedError(f"{where}: created: {exc}") from None
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SeedError(f"{where}: count must be a positive integer")
    scenario = _scenario(data.get("scenario"), where)
    name = str(data["name"])
    names = [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]
    return [
        JobSpec(each, str(data["tenant"]), str(data["operation"]), params, data.get("body"),
                scenario, created)
        for each in names
    ]  # fmt: skip


def parse_fixture(data: Any, apis: Mapping[str, ApiDescriptor] | None = None) -> Fixture:
    """A Fixture from parsed YAML/JSON; ``SeedError`` names the first problem."""
    named = by_name(REGISTRY) if apis is None else apis
    if data is None:
        data = {}
    data = _entry(data, "fixture", {"tenants", "jobs"}, [])
    tenants = tuple(
        _tenant(t, f"tenants[{i}]", named)
        for i, t in enumerate(_list(data.get("tenants"), "tenants"))
    )
    jobs = tuple(
        job
        for i, entry in enumerate(_list(data.get("jobs"), "jobs"))
        for job in _jobs(entry, f"jobs[{i}]")
    )
    for kind, names in (("tenant", [t.name for t in tenants]), ("job", [j.name for j in jobs])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise SeedError(f"{kind} {name!r} appears twice in the fixture")
            seen.add(name)
    digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Fixture(tenants, jobs, digest)


def load_fixture(path: str | Path, apis: Mapping[str, ApiDescriptor] | None = None) -> Fixture:
    """Read a fixture file (``.json`` as JSON, anything else as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {exc.start}"
        raise SeedError(f"cannot read {path}: not UTF-8 text ({where})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        language = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise SeedError(f"{path} is not valid {language}: {first}") from None
    return parse_fixture(data, apis)


# -- seeding --------------------------------------------------------------------------------


@dataclass
class Seeded:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    #: (tenant, api, key) of every key of the fixture, generated ones included.
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    #: Each job's id, by its name in the fixture.
    jobs: dict[str, str] = field(default_factory=dict)
    #: The tenant of each job, by name.
    job_tenants: dict[str, str] = field(default_factory=dict)
    #: The ids of each tenant's fault rules, by tenant name.
    faults: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        shown = {
            "tenants": {name: tenant.organization_id for name, tenant in self.tenants.items()},
            "keys": [{"tenant": t, "api": api, "key": key} for t, api, key in self.keys],
            "jobs": dict(self.jobs),
        }
        if self.faults:
            shown["faults"] = {name: list(ids) for name, ids in self.faults.items()}
        return shown


async def _add_key(store: Store, tenant: Tenant, spec: KeySpec) -> str:
    key = spec.key or spec.rule.new(spec.env)
    digest = hash_key(key)
    owner = await store.tenant_for_key(spec.api, digest)
    if owner is not None and owner.id != tenant.id:
        raise SeedError(
            f"tenant {tenant.name!r}: key {spec.rule.label(key)}... "
            f"belongs to tenant {owner.name!r}"
        )
    if owner is None:
        await store.add_key(tenant.id, api=spec.api, key_hash=digest, label=spec.rule.label(key))
    return key


async def seed(
    store: Store,
    settings: Settings,
    fixture: Fixture,
    operations: Operations,
    *,
    now: float,
    on_job: Callable[[str], None] | None = None,
) -> Seeded:
    """Create the fixture's tenants, keys and jobs; relative times count from ``now``."""
    seeded = Seeded()
    for spec in fixture.tenants:
        credits = settings.tenant_credits if spec.credits is None else spec.credits
        tenant = await ensure_tenant(
            store, spec.name, credits=credits, organization_id=spec.organization_id
        )
        if spec.organization_id is not None and tenant.organization_id != spec.organization_id:
            raise SeedError(
                f"tenant {spec.name!r} exists with another organization_id than the fixture's"
            )
        if spec.default_scenario is not None:
            tenant = await store.set_default_scenario(tenant.id, spec.default_scenario)
        seeded.tenants[spec.name] = tenant
        for key in spec.keys:
            seeded.keys.append((spec.name, key.api, await _add_key(store, tenant, key)))
    for job in fixture.jobs:
        owner = seeded.tenants.get(job.tenant) or await store.find_tenant(job.tenant)
        if owner is None:
            raise SeedError(
                f"job {job.name!r}: unknown tenant {job.tenant!r} (list it under tenants)"
            )
        seeded.tenants.setdefault(job.tenant, owner)
        seeded.jobs[job.name] = await _create_job(operations, store, settings, owner, job, now)
        seeded.job_tenants[job.name] = job.tenant
        if on_job is not None:
            on_job(job.name)
    for spec in fixture.tenants:
        for i, rule in enumerate(spec.faults):
            where = f"tenant {spec.name!r}, fault {i + 1}"
            reply = await operations.call(
                CREATE_FAULT, seeded.tenants[spec.name], services_at(store, settings, now),
                body=dict(rule),
            )  # fmt: skip
            if reply.status != 201:
                raise SeedError(f"{where} was refused with {reply.status}: {reply_detail(reply)}")
            seeded.faults.setdefault(spec.name, []).append(reply.body["id"])
    return seeded


async def apply_once(
    store: Store, settings: Settings, fixture: Fixture, operations: Operations, *, now: float
) -> Seeded | None:
    """Seed the fixture unless this store had it already (then None), even when several
    servers start on the store together: the one whose token the store keeps seeds.

    The token is kept before seeding, so a fixture that fails half-way is not tried again
    on this store; a changed fixture is another fixture."""
    token = secrets.token_hex(16)
    if await store.meta(f"fixture:{fixture.digest}", token) != token:
        return None
    return await seed(store, settings, fixture, operations, now=now)


async def _create_job(
    operations: Operations,
    store: Store,
    settings: Settings,
    tenant: Tenant,
    job: JobSpec,
    now: float,
) -> str:
    where = f"job {job.name!r} ({job.operation})"
    params = dict(job.params)
    try:
        target = operations.find(job.operation)
        operation = target.operation
        if job.scenario is not None:
            if PREFER_KEY not in {p.key for p in operation.params}:
                raise SeedError("the operation takes no Prefer header, so no scenario")
            if any(str(name).lower() == PREFER_KEY for name in params):
                raise SeedError("give the scenario either as scenario or as a Prefer param")
            params[PREFER_KEY] = f"scenario={job.scenario}"
        created = parse_instant(job.created, now)
        services = services_at(store, settings, created)
        reply = await operations.call(job.operation, tenant, services, params=params, body=job.body)
    except SeedError as exc:
        raise SeedError(f"{where}: {exc}") from None
    if reply.status >= 300:
        raise SeedError(f"{where} was refused with {reply.status}: {reply_detail(reply)}")
    field = target.api.job_id_field
    job_id = reply.body.get(field) if isinstance(reply.body, dict) else None
    if not isinstance(job_id, str):
        raise SeedError(f"{where}: the operation does not create a job (no {field} in its reply)")
    return job_id
