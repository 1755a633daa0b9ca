"""Schemathesis over every operation of both served contracts, in-process (ASGI), on each
backend: every default check, positive and negative data (the examples, coverage and
fuzzing phases; the contracts carry no examples, so the first sends nothing), and the
stateful phase that follows the contracts' OpenAPI links (Crosmos: ingest -> GET job;
Captain: index -> GET job -> cancel -> GET job). Jobs run on real time, 1000x faster, so
the stateful phase meets them pending, running and finished.

Authentication goes through Schemathesis' auth mechanism, so its negative cases (no
``Authorization``, a broken ``X-Organization-ID``) still reach the server as generated.
A positive case always carries the tenant's own organization id: a generated UUID would
belong to nobody, and the contract answers that 403 (legitimately, and the check that
positive data is accepted allows it), which would leave the handlers untested.
test_isolation covers the foreign-organization 403 on purpose.

A few generated values are made meaningful before they are sent (``semantic_fixups``);
each says why. None of them touches a value a negative case negated.
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import negated_parameters

from pollable.server.app import create_app
from pollable.server.settings import Settings
from tests.conformance.live import provision

pytestmark = pytest.mark.slow

CONTRACTS = {"crosmos": "/openapi.json", "captain": "/v2/openapi.json"}
OPERATIONS = {"crosmos": 3, "captain": 17}
ORGANIZATION_HEADER = "x-organization-id"
TIME_SCALE = 0.001
#: A fixed seed, so runs start from the same draws (responses still steer generation a
#: little: Schemathesis feeds values it has seen back into its cases).
SEED = 20240501
#: Fuzzing examples per operation, and the stateful phase's scenarios and steps.
MAX_EXAMPLES = 50
STATEFUL_SCENARIOS = 30
STATEFUL_STEPS = 8
#: Largest listing a generated positive case asks for (the contract allows 100,000).
LISTING_CAP = 500

Counts = collections.Counter[tuple[str, str, str]]


def schemathesis_config() -> schemathesis.Config:
    expected_rejections = [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
    ]  # fmt: skip
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            # Schemathesis' default list, plus 413: a negative body longer than a schema
            # bound (a 1,000,001-character source, x100) is also over the server's
            # 10 MiB body limit, and the contract declares that 413. It is a rejection.
            "checks": {"negative_data_rejection": {"expected-statuses": expected_rejections}},
        }
    )


# -- making generated values meaningful -----------------------------------------------------


def _negated_headers(case: Any) -> set[str]:
    return {
        name.lower()
        for name, location in negated_parameters(case.meta)
        if location == ParameterLocation.HEADER
    }


def _positive(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    component = meta.components.get(location) if meta else None
    return component is None or component.mode.is_positive


def scope_idempotency_key(case: Any) -> None:
    """Make a generated ``Idempotency-Key`` unique to the request it is sent with.

    Hypothesis draws the same few keys ("0", ...) for many different bodies, and the
    contract answers a key reused with a different request 422, as it says it will. That is
    state the generator cannot see, not invalid data. Keeping the generated key and
    suffixing a digest of the request keeps "same key, same request: same job" intact."""
    headers = case.headers or {}
    name = next((n for n in headers if n.lower() == "idempotency-key"), None)
    if name is None or "idempotency-key" in _negated_headers(case):
        return
    request = json.dumps(
        [case.operation.label, case.path_parameters, case.body], sort_keys=True, default=str
    )
    digest = hashlib.sha256(request.encode()).hexdigest()[:16]
    headers[name] = f"{str(headers[name])[:200]}.{digest}"


def drop_invented_cursor(case: Any) -> None:
    """``files_cursor`` is opaque: only a ``files_page.next_cursor`` the server issued for
    the job is valid, and the contract says so. No generator can invent one, so a positive
    case does not send a generated cursor (negative cases keep theirs)."""
    if case.query and "files_cursor" in case.query and _positive(case, ParameterLocation.QUERY):
        del case.query["files_cursor"]


def drop_invented_clock(case: Any) -> None:
    """A ``Pollable-Clock`` is valid only if it names a test clock the tenant made, and the
    contract answers any other 422. No generator can invent one, so a positive case does
    not send a generated clock (negative cases keep theirs)."""
    headers = case.headers or {}
    name = next((n for n in headers if n.lower() == "pollable-clock"), None)
    if name is not None and "pollable-clock" not in _negated_headers(case):
        del headers[name]


def cap_listing_size(case: Any) -> None:
    """Keep generated ``max_files`` small. A 100,000-file job takes 3-6 s to plan and store,
    and the coverage phase sends the bound to every bucket and directory operation: that
    alone would blow this module's time budget. Values outside the contract's range (the
    negative cases) are kept, and so is the JSON type (an integral float stays a float);
    the bound itself is exercised in test_bad_input."""
    body = case.body
    if not isinstance(body, dict):
        return
    value = body.get("max_files")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if LISTING_CAP < value <= 100_000:
        body["max_files"] = type(value)(1 + int(value) % LISTING_CAP)


def semantic_fixups(case: Any) -> None:
    scope_idempotency_key(case)
    drop_invented_cursor(case)
    drop_invented_clock(case)
    cap_listing_size(case)


# -- authentication -------------------------------------------------------------------------


def auth_provider(token: str, organization_id: str | None) -> type:
    """A Schemathesis auth provider: the bearer token, and for Captain the tenant's own
    ``X-Organization-ID`` unless this case negates that header."""

    class PollableAuth:
        def get(self, case: Any, context: Any) -> tuple[str, str | None]:
            return token, organization_id

        def set(self, case: Any, data: tuple[str, str | None], context: Any) -> None:
            key, organization = data
            case.headers = dict(case.headers or {})
            case.headers["Authorization"] = f"Bearer {key}"
            declared = {p.name.lower() for p in case.operation.headers}
            if organization is None or ORGANIZATION_HEADER not in declared:
                return
            if ORGANIZATION_HEADER in _negated_headers(case):
                return
            for name in [n for n in case.headers if n.lower() == ORGANIZATION_HEADER]:
                del case.headers[name]
            case.headers["X-Organization-ID"] = organization

    return PollableAuth


# -- the app under test -----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def st_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(CONTRACTS))
def st_api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


MEMORY_ORGANIZATION = "0b9c2a6e-39f1-4a47-9a58-0d1a1bd4a001"


def _memory_settings(tmp_path: Path) -> tuple[Settings, str, str]:
    """memory:// lives inside the app: its tenant and keys come from a start-up fixture."""
    crosmos_key, captain_key = "csk_schemathesis_crosmos_0001", "cap_dev_schemathesis_0001"
    fixture = tmp_path / "tenants.yaml"
    fixture.write_text(
        "tenants:\n"
        "  - name: acme\n"
        f"    organization_id: {MEMORY_ORGANIZATION}\n"
        "    keys:\n"
        f"      - {{api: crosmos, key: {crosmos_key}}}\n"
        f"      - {{api: captain, key: {captain_key}}}\n",
        encoding="utf-8",
    )
    settings = Settings(store="memory://", time_scale=TIME_SCALE, fixtures=str(fixture))
    return settings, crosmos_key, captain_key


@pytest.fixture
def api_schema(
    request: pytest.FixtureRequest,
    st_api: str,
    st_backend: str,
    tmp_path: Path,
    case_counts: Counts,
) -> Iterator[Any]:
    if st_backend == "sqlite":
        url = f"sqlite:///{tmp_path}/schemathesis.db"
        acme = provision(url, "acme")["acme"]
        crosmos_key, captain_key = acme.crosmos_key, acme.captain_key
        organization = acme.organization_id
        settings = Settings(store=url, time_scale=TIME_SCALE)
    else:
        settings, crosmos_key, captain_key = _memory_settings(tmp_path)
        organization = MEMORY_ORGANIZATION
    # Loading the document starts the app's lifespan; Schemathesis ends it after the test.
    schema = schemathesis.openapi.from_asgi(
        CONTRACTS[st_api], create_app(settings), config=schemathesis_config()
    )
    token = crosmos_key if st_api == "crosmos" else captain_key
    schema.auth(refresh_interval=None)(auth_provider(token, organization))

    sent: Counts = collections.Counter()
    reached: set[str] = set()

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        meta = case.meta
        kind = f"{meta.phase.name.value}/{meta.generation.mode.value}" if meta else "explicit"
        sent[(st_api, st_backend, kind)] += 1
        reached.add(case.operation.label)
        case_counts[(st_api, st_backend, kind)] += 1
        case_counts[(st_api, st_backend, f"status {response.status_code}")] += 1

    schema.pollable_sent = sent
    yield schema

    if request.node.originalname == "test_contract":
        # Whatever the checks found: every operation got requests, in every phase and mode.
        operations = {result.ok().label for result in schema.get_all_operations()}
        assert len(operations) == OPERATIONS[st_api]
        assert reached == operations, f"never called: {sorted(operations - reached)}"
        assert {"coverage", "fuzzing", "positive", "negative"} <= _kinds(sent), sent


def _kinds(sent: Counts) -> set[str]:
    """The phases and modes of what was sent: {"coverage", "fuzzing", "positive", ...}."""
    return {part for (_, _, kind) in sent for part in kind.split("/")}


# -- the tests --------------------------------------------------------------------------------

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _pytest_node_id(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's lazy loader reads and writes ``node._nodeid``, which pytest 9.2
    no longer has; give it the attribute back (it only labels subtests with it)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
def test_contract(case: Any) -> None:
    semantic_fixups(case)
    case.call_and_validate()


def test_stateful(api_schema: Any) -> None:
    class Links(api_schema.as_state_machine()):
        def before_call(self, case: Any) -> None:
            semantic_fixups(case)

    Links.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            database=None,
            derandomize=True,
        )
    )
    sent = api_schema.pollable_sent
    assert {"stateful", "positive", "negative"} <= _kinds(sent), sent
    assert sent.total() >= STATEFUL_SCENARIOS, sent
