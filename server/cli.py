"""The ``pollable`` command: run the server, and drive the sandbox's control plane from a shell.

This is the one place that reads ``os.environ``: every command builds its Settings with
``Settings.build(os.environ, **flags)``, flags left unset passed as None.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from pollable import __version__
from pollable.handlers.registry import JOB_APIS, by_name
from pollable.lifecycle import scenarios
from pollable.lifecycle.errors import Conflict, NotFound, PollableError
from pollable.store import BACKENDS, StoreNotFound, UnsupportedStore, open_store
from pollable.store.base import SchemaTooNew, Store, Tenant

from . import remote, remote_faults, remote_report
from . import seed as seeding
from .address import AddressUnavailable, check_free
from .auth import ensure_admin_token, jwt_secret, new_jwt
from .banner import admin_banner, demo_banner, docs_banner, fixture_banner, store_banner
from .contract import ContractError
from .operation import ResponseInvalid
from .provision import TenantKeys, issue_key, provision_tenant
from .seed import Fixture, Operations, SeedError, reply_detail
from .settings import Settings, SettingsError

T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
APIS = by_name(JOB_APIS)
#: The APIs that accept JWT access tokens besides keys.
JWT_APIS = tuple(name for name, api in APIS.items() if api.accepts_jwt)
ENV_HELP = "; ".join(
    f"{name}: {', '.join(api.key_rule.environments)}"
    for name, api in APIS.items()
    if len(api.key_rule.environments) > 1
)
#: Seconds a thread may hold the GIL while another waits (CPython's default is 0.005).
SWITCH_INTERVAL = 0.0005
#: Seeding more jobs than this shows a progress bar.
HANDFUL = 5

DEMO_TENANT = "demo"

#: Errors that are the user's (a bad URL, a missing tenant, a broken fixture), shown as one line.
USER_ERRORS = (
    SettingsError,
    UnsupportedStore,
    SchemaTooNew,
    SeedError,
    PollableError,
    ContractError,
    ResponseInvalid,
    sqlite3.Error,
    OSError,
)


#: The stores that outlive a command, and those that do not (serve alone can use those).
PERSISTENT_STORES = " or ".join(backend.example for backend in BACKENDS if backend.persistent)
TRANSIENT_STORES = " or ".join(backend.example for backend in BACKENDS if not backend.persistent)


def store_option(*, transient: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--store``; ``transient`` for serve, where a store that lives in the server works."""
    if transient:
        kinds = f"{PERSISTENT_STORES}, or {TRANSIENT_STORES} (kept only while the server runs)"
    else:
        kinds = PERSISTENT_STORES
    return click.option(
        "--store",
        metavar="URL",
        help=f"Store URL: {kinds}. Default: $POLLABLE_STORE, else {Settings().store}.",
    )


def _settings(**flags: Any) -> Settings:
    try:
        return Settings.build(os.environ, **flags)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _persistent(settings: Settings) -> Settings:
    if settings.store.startswith("memory:"):
        raise click.ClickException(
            f"{settings.store} keeps nothing once this command ends; use {PERSISTENT_STORES}"
        )
    return settings


def with_store(url: str, work: Callable[[Store], Awaitable[T]], *, create: bool = True) -> T:
    """Open the store at ``url``, run ``work`` on it, close it. The user's mistakes come out
    as one-line errors. Commands that only read pass ``create=False``: a mistyped URL must
    not leave an empty store behind."""

    async def run() -> T:
        store = open_store(url, create=create)
        try:
            await store.open()
        except StoreNotFound as exc:
            raise click.ClickException(f"{exc}; check --store or $POLLABLE_STORE") from None
        except Exception as exc:  # every driver has its own errors; all mean the same here
            raise click.ClickException(f"cannot open the store {url}: {exc}") from None
        async with store:  # already open: closes it however ``work`` ends
            return await work(store)

    try:
        return asyncio.run(run())
    except USER_ERRORS as exc:
        raise click.ClickException(_one_line(exc)) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


async def _tenant(store: Store, name: str) -> Tenant:
    tenant = await store.find_tenant(name)
    if tenant is None:
        raise click.ClickException(
            f"unknown tenant {name!r}; "
            f"create it with: pollable keys create --tenant {name} --api {next(iter(APIS))}"
        )
    return tenant


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@click.group(context_settings=CONTEXT)
@click.version_option(
    __version__, "--version", prog_name="pollable", message="%(prog)s %(version)s"
)
def cli() -> None:
    """pollable: a contract-first reference server and partner sandbox for asynchronous
    ingestion-job APIs.

    Every option can also be set with a POLLABLE_* environment variable
    (POLLABLE_STORE, POLLABLE_PORT, POLLABLE_TIME_SCALE, ...); a flag wins over the variable.
    """


def main() -> None:
    cli(prog_name="pollable")


# -- serve ----------------------------------------------------------------------------------


Demo = TenantKeys


async def bootstrap_demo(store: Store, settings: Settings) -> Demo | None:
    """On an empty store, create the tenant ``demo`` with one key per API; else None."""
    if await store.count_tenants():
        return None
    try:
        return await provision_tenant(store, DEMO_TENANT, JOB_APIS, credits=settings.tenant_credits)
    except Conflict:  # another process bootstrapped the same store first
        return None


class DemoOnStartup:
    """An ASGI wrapper that bootstraps the demo tenant inside the app's lifespan, once the
    app's own store is open. For memory://, whose store lives only inside the server."""

    def __init__(
        self, app: Any, settings: Settings, announce: Callable[[Demo | None], None]
    ) -> None:
        self.app = app
        self.settings = settings
        self.announce = announce

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_after_bootstrap(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                store = scope["state"]["services"].store
                self.announce(await bootstrap_demo(store, self.settings))
            await send(message)

        await self.app(scope, receive, send_after_bootstrap)


class AdminTokenOnStartup:
    """An ASGI wrapper that prints the admin token the app generated on a fresh store,
    once its start-up completes. For memory://, whose store lives only inside the server."""

    def __init__(self, app: Any, announce: Callable[[str], None]) -> None:
        self.app = app
        self.announce = announce

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_after_start(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                token = scope["state"]["services"].new_admin_token
                if token:
                    self.announce(admin_banner(token))
            await send(message)

        await self.app(scope, receive, send_after_start)


class OneLineStartupErrors:
    """An ASGI wrapper that keeps a user's mistake failing the app's start-up (a fixture
    that breaks the contract, seeded on memory:// where only the server can seed it) as one
    line in ``error``, for ``serve`` to print once uvicorn gives up, instead of uvicorn's
    log of the traceback. Other failures keep their traceback: they are bugs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.error: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Any] = []

        async def hold_failure(message: Any) -> None:
            # Starlette sends the traceback as the failure's message, then raises.
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except USER_ERRORS as exc:
            if not held:
                raise
            self.error = _one_line(exc)
            await send({"type": "lifespan.startup.failed", "message": ""})
            return
        except BaseException:
            for message in held:
                await send(message)
            raise
        for message in held:
            await send(message)


async def _prepare(store: Store, settings: Settings, fixture: Fixture | None) -> str:
    """Make a store the server has not opened yet ready to try, and say how: the admin
    token if this is its first start; the fixture seeded, or the demo bootstrapped on an
    empty store, or how to get a key."""
    _, token = await ensure_admin_token(store, settings.admin_token)
    first = admin_banner(token) + "\n" if token else ""
    if fixture is not None:
        operations = Operations(validate_responses=settings.validate_responses)
        seeded = await seeding.apply_once(store, settings, fixture, operations, now=time.time())
        return first + await fixture_banner(store, seeded, settings)
    demo = await bootstrap_demo(store, settings)
    if demo is not None:
        return first + demo_banner(demo, settings)
    return first + store_banner(await store.count_tenants(), settings)


def worker_app() -> Any:
    """uvicorn's app factory in worker processes: ``serve`` put the settings in the
    environment with ``Settings.to_environ()`` before starting them."""
    from .app import create_app

    return create_app(Settings.build(os.environ))


@cli.command(context_settings=CONTEXT)
@click.option("--host", help="Interface to bind. [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to bind. [default: 8000]")
@store_option(transient=True)
@click.option(
    "--time-scale",
    type=float,
    help="Multiplies every duration of a new job's plan: 0.01 runs jobs 100x faster. [default: 1]",
)
@click.option(
    "--workers",
    type=int,
    help=f"Server processes; more than one needs a shared store ({PERSISTENT_STORES}). "
    "[default: 1]",
)
@click.option(
    "--seed",
    "seed_value",
    metavar="TEXT",
    help="Seed of every synthetic choice (listings, failing items, timing jitter). [default: 0]",
)
@click.option(
    "--max-body-bytes",
    type=int,
    help="Request bodies above this size are answered 413. [default: 10 MiB]",
)
@click.option(
    "--validate-responses/--no-validate-responses",
    default=None,
    help="Check every response against the served contract before sending it. [default: on]",
)
@click.option(
    "--jwt-secret",
    metavar="SECRET",
    help=f"HS256 secret of access tokens ({', '.join(JWT_APIS)}). "
    "[default: generated once, kept in the store]",
)
@click.option(
    "--admin-token",
    metavar="TOKEN",
    help="The control plane's admin token (at least 16 bytes). [default: generated on a "
    "fresh store, printed once, kept hashed]",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="uvicorn's log level. [default: info]",
)
@click.option(
    "--fixtures",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="A seed fixture (see `pollable seed --help`) loaded once per store at start-up, "
    "e.g. fixed keys for CI on memory://; what it seeded is printed. No demo tenant is "
    "created then.",
)
@click.option(
    "--max-stored-items",
    type=int,
    help="Per tenant: the most jobs, job items (files, sources), test clocks and named "
    "counters it may store; a create past it is refused (403). [default: 5,000,000]",
)
@click.option(
    "--rate-limit",
    type=float,
    metavar="PER_SECOND",
    help="Requests a second each tenant may make of the job APIs, per server process; more "
    "are answered 429 with Retry-After. 0: no limit. [default: 100]",
)
@click.option(
    "--rate-burst",
    type=int,
    help="Requests a tenant may make at once before the rate limit applies. [default: 500]",
)
def serve(
    host: str | None,
    port: int | None,
    store: str | None,
    time_scale: float | None,
    workers: int | None,
    seed_value: str | None,
    max_body_bytes: int | None,
    validate_responses: bool | None,
    jwt_secret: str | None,
    admin_token: str | None,
    log_level: str | None,
    fixtures: str | None,
    max_stored_items: int | None,
    rate_limit: float | None,
    rate_burst: int | None,
) -> None:
    """Serve every registered API's contract with uvicorn.

    On an empty store, first creates the tenant "demo" with a key for each API, and prints
    them with curl lines to try. Keys are stored hashed: on a store that has tenants, it
    says how to create a key instead.
    """
    settings = _settings(
        host=host, port=port, store=store, time_scale=time_scale, workers=workers,
        seed=seed_value, max_body_bytes=max_body_bytes, validate_responses=validate_responses,
        jwt_secret=jwt_secret, admin_token=admin_token,
        log_level=log_level.lower() if log_level else None, fixtures=fixtures,
        max_stored_items=max_stored_items,
        rate_limit=rate_limit, rate_burst=rate_burst,
    )  # fmt: skip
    log_level = settings.log_level.lower()
    if log_level not in LOG_LEVELS:
        raise click.ClickException(
            f"log level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}"
        )
    memory = settings.store.startswith("memory:")
    if memory and settings.workers > 1:
        raise click.ClickException(
            "memory:// cannot serve more than one worker: each process would have its own "
            f"memory; use {PERSISTENT_STORES}"
        )
    try:
        open_store(settings.store)  # only checks the URL; opening happens below or in the app
        # Before anything is printed or created: a banner for someone else's server misleads.
        check_free(settings.host, settings.port)
        fixture = seeding.load_fixture(settings.fixtures) if settings.fixtures else None
    except (UnsupportedStore, AddressUnavailable, SeedError) as exc:
        raise click.ClickException(str(exc)) from None

    def announce(text: str | None) -> None:
        if text:
            click.echo(text)
        click.echo(docs_banner(settings))
        sys.stdout.flush()

    def announce_demo(demo: Demo | None) -> None:
        announce(None if demo is None else demo_banner(demo, settings))

    async def announce_seeded(opened: Store, seeded: seeding.Seeded | None) -> None:
        announce(await fixture_banner(opened, seeded, settings))

    # A memory store lives in the server: the app seeds it or bootstraps it, and says so.
    if not memory:
        announce(with_store(settings.store, lambda opened: _prepare(opened, settings, fixture)))

    import uvicorn

    from .protocol import uvicorn_options

    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "auto",
        "log_level": log_level,
        # Bounded request heads (size, time), keep-alive, JSON refusals: server/protocol.py.
        **uvicorn_options(settings),
    }
    # Long work (planning a 100,000-file job) runs on threads; the event loop waits for
    # the GIL at every handoff. A shorter switch interval bounds that wait: polls of other
    # tenants stay prompt while a big job is planned.
    sys.setswitchinterval(SWITCH_INTERVAL)
    # A fatal signal (SIGSEGV, SIGBUS: a driver or a mapped file failing under the process)
    # kills it before any Python handler runs; this prints where it was, so it is not
    # silent. Worker processes get it through the environment (PYTHONFAULTHANDLER).
    # (Not when stderr is no file: an in-process runner, as the CLI tests use.)
    with contextlib.suppress(RuntimeError, ValueError, OSError):
        faulthandler.enable()
    if settings.workers == 1:
        from .app import create_app

        try:
            # Other stores had the fixture seeded above: their app finds it there.
            app: Any = create_app(settings, on_seeded=announce_seeded if memory else None)
        except (ContractError, SeedError) as exc:
            raise click.ClickException(str(exc)) from None
        if memory and fixture is None:
            app = DemoOnStartup(app, settings, announce_demo)
        if memory:
            app = AdminTokenOnStartup(app, click.echo)
        app = guard = OneLineStartupErrors(app)
        try:
            uvicorn.run(app, **common)
        except SystemExit:
            if guard.error is None:
                raise
            raise click.ClickException(guard.error) from None
    else:
        os.environ.update(settings.to_environ(), PYTHONFAULTHANDLER="1")
        uvicorn.run(
            "pollable.server.cli:worker_app", factory=True, workers=settings.workers, **common
        )


# -- keys, tokens, tenants --------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def keys() -> None:
    """API keys of tenants."""


@keys.command("create", context_settings=CONTEXT)
@click.option(
    "--tenant", required=True, metavar="NAME", help="Tenant to give the key to (created if needed)."
)
@click.option("--api", type=click.Choice(APIS), required=True, help="API the key is for.")
@click.option(
    "--env",
    "environment",
    metavar="ENV",
    help=f"The key's environment, for APIs that have several ({ENV_HELP}). "
    "[default: the API's first]",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print key, tenant, organization_id and api as JSON."
)
@store_option()
def keys_create(
    tenant: str, api: str, environment: str | None, as_json: bool, store: str | None
) -> None:
    """Create an API key for a tenant, creating the tenant if needed, and print it.

    The key is stored hashed: this is the only time it is shown.
    """
    described = APIS[api]
    if environment is not None and environment not in described.key_rule.environments:
        raise click.UsageError(
            f"--env of a {api} key must be {' or '.join(described.key_rule.environments)}"
        )
    if not tenant.strip():
        raise click.UsageError("--tenant cannot be empty")
    settings = _persistent(_settings(store=store))
    issued = with_store(
        settings.store,
        lambda opened: issue_key(
            opened, tenant, described, credits=settings.tenant_credits, environment=environment
        ),
    )
    if as_json:
        _echo_json({
            "key": issued.key, "tenant": issued.tenant.name,
            "organization_id": issued.tenant.organization_id, "api": api,
            "env": issued.environment,
        })  # fmt: skip
    else:
        click.echo(issued.key)


@cli.group(context_settings=CONTEXT)
def tokens() -> None:
    """JWT access tokens, for the APIs that accept them."""


@tokens.command("create", context_settings=CONTEXT)
@click.option(
    "--tenant", required=True, metavar="NAME", help="Tenant the token authenticates (its sub)."
)
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="Lifetime of the token.",
)
@click.option("--json", "as_json", is_flag=True, help="Print token, tenant and expires_at as JSON.")
@store_option()
def tokens_create(tenant: str, ttl: int, as_json: bool, store: str | None) -> None:
    """Create a JWT access token for a tenant's calls to the APIs that accept them, and
    print it.

    It is signed (HS256) with $POLLABLE_JWT_SECRET, else with the secret the server keeps in
    the store, so a server on the same store accepts it.
    """
    settings = _persistent(_settings(store=store))

    async def sign(opened: Store) -> str:
        found = await _tenant(opened, tenant)
        secret = await jwt_secret(settings.jwt_secret, opened)
        return new_jwt(secret, found.name, ttl_seconds=ttl)

    token = with_store(settings.store, sign, create=False)
    if as_json:
        _echo_json({"token": token, "tenant": tenant, "expires_at": int(time.time()) + ttl})
    else:
        click.echo(token)


@cli.group(context_settings=CONTEXT)
def tenants() -> None:
    """Tenants of the sandbox."""


@tenants.command(
    "default-scenario",
    context_settings=CONTEXT,
    epilog="Scenarios: " + ", ".join(scenarios.CATALOGUE) + ".",
)
@click.argument("name")
@click.argument("scenario", metavar="SCENARIO|none")
@store_option()
def tenants_default_scenario(name: str, scenario: str, store: str | None) -> None:
    """Set the scenario NAME's new jobs follow when a request chooses none ("none" clears it).

    A Prefer: scenario=... header or a pollable:scenario=... marker in the content still wins.
    """
    chosen = None if scenario.lower() == "none" else scenario
    if chosen is not None and chosen not in scenarios.CATALOGUE:
        raise click.BadParameter(str(scenarios.UnknownScenario(chosen)), param_hint="SCENARIO")
    settings = _persistent(_settings(store=store))

    async def update(opened: Store) -> Tenant:
        return await opened.set_default_scenario((await _tenant(opened, name)).id, chosen)

    updated = with_store(settings.store, update, create=False)
    click.echo(f"{updated.name}: default scenario {updated.default_scenario or 'none'}")


# -- seed -----------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@store_option()
@click.option("--time-scale", type=float, help="Time scale of the seeded plans. [default: 1]")
@click.option("--seed", "seed_value", metavar="TEXT", help="Seed of the seeded plans. [default: 0]")
def seed(file: str, store: str | None, time_scale: float | None, seed_value: str | None) -> None:
    """Create the tenants, keys and jobs of a fixture FILE (YAML, or JSON if it ends in .json),
    through the real handlers, and print JSON: {"tenants": {name: organization_id},
    "keys": [{tenant, api, key}], "jobs": {name: job_id}}.

    \b
    tenants:
      - name: acme                  # reused if the store has it
        default_scenario: partial   # optional
        credits: 5000               # optional, for a new tenant
        keys:
          - {api: crosmos, key: csk_fixture_acme_0001}  # fixed (right prefix), or
          - {api: captain, env: dev}                     # generated and printed
    jobs:
      - name: done                  # unique; the output's name for the job
        tenant: acme
        operation: ingest_sources_api_v1_sources_post  # any job-creating operationId
        params: {}                  # path/query/header params, e.g. {collection_name: docs}
        body: {space_id: 3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54, sources: [{content: hi}]}
        scenario: happy             # optional, sent as Prefer: scenario=happy
        created: -1h                # optional: now, -90s, +5m, -1h, -2d or ISO-8601
        count: 1                    # optional: N copies named done-1 ... done-N

    Bodies and params are checked against the operation's contract; a job that breaks it is
    refused, naming the job. APIs with an organization header get the tenant's own.
    """
    settings = _persistent(_settings(store=store, time_scale=time_scale, seed=seed_value))
    try:
        fixture = seeding.load_fixture(file)
        operations = Operations(validate_responses=settings.validate_responses)
    except (SeedError, ContractError) as exc:
        raise click.ClickException(_one_line(exc)) from None
    now = time.time()
    if len(fixture.jobs) > HANDFUL:
        with click.progressbar(
            length=len(fixture.jobs), label="Seeding jobs", file=sys.stderr
        ) as bar:
            seeded = with_store(
                settings.store,
                lambda opened: seeding.seed(
                    opened, settings, fixture, operations, now=now, on_job=lambda _: bar.update(1)
                ),
            )
    else:
        seeded = with_store(
            settings.store,
            lambda opened: seeding.seed(opened, settings, fixture, operations, now=now),
        )
    _echo_json(seeded.as_json())


# -- jobs -----------------------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def jobs() -> None:
    """Jobs, as their contracts present them."""


def _param(_ctx: Any, _param: Any, values: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}")
        params[name] = raw
    return params


@jobs.command("show", context_settings=CONTEXT)
@click.argument("job_id")
@click.option("--tenant", required=True, metavar="NAME", help="Tenant owning the job.")
@click.option(
    "--at",
    metavar="TIME",
    help="Show the job as it is at TIME: ISO-8601, or relative like +10m, -1h. [default: now]",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    callback=_param,
    metavar="NAME=VALUE",
    help="Extra query parameter of the GET operation, e.g. -p files_limit=10.",
)
@store_option()
def jobs_show(
    job_id: str, tenant: str, at: str | None, params: dict[str, str], store: str | None
) -> None:
    """Print job JOB_ID as its contract's GET operation answers it (pretty JSON)."""
    now = time.time()
    try:
        moment = now if at is None else seeding.parse_instant(at, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    settings = _persistent(_settings(store=store))

    async def show(opened: Store) -> Any:
        owner = await _tenant(opened, tenant)
        try:
            record = await opened.get_job(owner.id, job_id)
        except NotFound:
            raise click.ClickException(f"tenant {tenant!r} has no job {job_id!r}") from None
        operations = Operations(validate_responses=settings.validate_responses)
        operation = operations.job_status(record.api)
        reply = await operations.call(
            operation.operation_id,
            owner,
            seeding.services_at(opened, settings, moment),
            params={**params, "job_id": job_id},
        )
        if reply.status != 200:
            raise click.ClickException(
                f"{operation.operation_id} answered {reply.status}: {reply_detail(reply)}"
            )
        return reply.body

    _echo_json(with_store(settings.store, show, create=False))


remote.attach(cli)  # tenants, keys, clocks, requests, reset on a running server
cli.add_command(remote_report.report)  # report polling, on a running server
cli.add_command(remote_faults.faults)
