"""The ``pollable`` commands that drive a running server's control plane over HTTP, and what
they share: tenants, keys and reset (``remote_tenants``), test clocks (``remote_clocks``),
the request log (``remote_log``).

They are clients, like the pytest plugin: ``--url`` (``$POLLABLE_URL``) names the server,
``--token`` (``$POLLABLE_ADMIN_TOKEN``) is its admin token or any API key of a tenant,
which then acts on that tenant only. Each prints a human-readable answer, or the API's own
JSON with ``--json``; a refusal is one line naming the status and the problem's detail.

``attach(cli)`` adds them to the ``pollable`` group: subcommands of its ``tenants`` and
``keys`` groups beside the ones working on a store file, and ``clocks``, ``requests`` and
``reset``. ``keys create`` keeps creating keys in a store file unless a server is named.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from pollable.handlers.registry import JOB_APIS
from pollable.testing.client import SandboxClient, SandboxError, Tenant

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DEFAULT_URL = "http://127.0.0.1:8000"


# -- plumbing -------------------------------------------------------------------------------


def url_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--url",
        envvar="POLLABLE_URL",
        show_envvar=True,
        metavar="URL",
        help=f"The pollable server to talk to. [default: {DEFAULT_URL}]",
    )(function)


def token_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--token",
        envvar="POLLABLE_ADMIN_TOKEN",
        show_envvar=True,
        metavar="TOKEN",
        help="The server's admin token, or an API key of a tenant (which then acts on its "
        "own tenant only).",
    )(function)


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")(
        function
    )


def remote(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every remote command takes: --url, --token."""
    return url_option(token_option(function))


@contextmanager
def sandbox(url: str | None, token: str | None) -> Iterator[SandboxClient]:
    """The control plane at ``url``; its refusals become one-line errors."""
    if not token:
        raise click.UsageError(
            "no credential: pass --token (or set POLLABLE_ADMIN_TOKEN) with the admin token "
            "or a tenant's API key"
        )
    try:
        with SandboxClient(url or DEFAULT_URL, token) as client:
            yield client
    except SandboxError as exc:
        raise click.ClickException(" ".join(str(exc).split())) from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Rows as aligned columns under upper-case headings; None shows as "-"."""
    cells = [[title for _, title in columns]] + [
        ["-" if row.get(key) is None else str(row.get(key)) for key, _ in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def fields(record: Mapping[str, Any], names: Iterable[str]) -> None:
    """A record as ``name  value`` lines."""
    names = list(names)
    width = max(len(name) for name in names)
    for name in names:
        value = record.get(name)
        click.echo(f"{name:<{width}}  {'-' if value is None else value}")


def resolve_tenant(client: SandboxClient, ref: str) -> Tenant:
    """The tenant ``ref`` names: its id, else its name."""
    try:
        return client.get_tenant(ref)
    except SandboxError as exc:
        if exc.status not in (404, 422):
            raise
    for tenant in client.iter_tenants():
        if tenant["name"] == ref:
            return tenant
    raise click.ClickException(f"no tenant {ref!r} (neither an id nor a name) on this server")


def own_or_named(client: SandboxClient, ref: str | None, token: str | None) -> Tenant:
    """The tenant ``ref`` names, else the caller's own when ``token`` is a tenant's API key.
    The admin must name one, even on a server with a single tenant."""
    if ref is not None:
        return resolve_tenant(client, ref)
    if not any(api.key_rule.issued(token or "") for api in JOB_APIS):
        raise click.UsageError("name the tenant with --tenant: the admin token acts on any tenant")
    (own,) = client.list_tenants(limit=1)["data"]
    return own


def tenant_for(client: SandboxClient, ref: str | None) -> str | None:
    """The ``tenant_id`` parameter of clock and log calls: the admin names a tenant."""
    return None if ref is None else resolve_tenant(client, ref)["id"]


def parse_when(_ctx: Any, param: click.Parameter, value: str | None) -> str | None:
    """An RFC 3339 date-time (a date alone is its midnight UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a date-time like 2030-01-01T12:00:00Z, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone: add Z or +HH:MM")
    return moment.isoformat()


def tenant_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--tenant", "tenant_ref", metavar="TENANT", help=help_text)


TENANT_REF = "A tenant's id or name."
ADMIN_TENANT = TENANT_REF + " The admin names one; a tenant key acts on its own."


# -- attach ---------------------------------------------------------------------------------


def _group(cli: click.Group, name: str, help_text: str) -> click.Group:
    group = cli.commands.get(name)
    if group is None:
        group = click.Group(name, help=help_text, context_settings=CONTEXT)
        cli.add_command(group)
    assert isinstance(group, click.Group)
    return group


def attach(cli: click.Group) -> None:
    """Add the remote commands to ``cli``."""
    # Imported here: each imports this module's plumbing.
    from . import remote_clocks, remote_log, remote_tenants

    tenants = _group(cli, "tenants", "Tenants of the sandbox.")
    for command in remote_tenants.TENANT_COMMANDS:
        tenants.add_command(command)
    keys = _group(cli, "keys", "API keys of tenants.")
    local_create = keys.commands.get("create")
    if local_create is not None:
        keys.add_command(remote_tenants.keys_create_anywhere(local_create))
    for command in remote_tenants.KEY_COMMANDS:
        keys.add_command(command)
    cli.add_command(remote_clocks.clocks)
    cli.add_command(remote_log.requests)
    cli.add_command(remote_tenants.reset)
