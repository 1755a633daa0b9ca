"""``pollable clocks`` on a running server: create, list, show, delete and advance test
clocks."""

from __future__ import annotations

from typing import Any

import click

from pollable.lifecycle.model import STAGES
from pollable.testing.sandbox import STAGE_WORDS

from .remote import (
    ADMIN_TENANT,
    CONTEXT,
    echo_json,
    fields,
    json_option,
    parse_when,
    remote,
    sandbox,
    table,
    tenant_for,
    tenant_option,
)

CLOCK_COLUMNS = (("id", "ID"), ("name", "NAME"), ("now", "NOW"), ("created_at", "CREATED"))


# -- clocks ---------------------------------------------------------------------------------


@click.group(context_settings=CONTEXT)
def clocks() -> None:
    """Test clocks of a running server: frozen time that only moves when told."""


@clocks.command("create", context_settings=CONTEXT)
@click.option("--name", help="A name for the clock.")
@click.option(
    "--now", callback=parse_when, metavar="TIME", help="Its start, RFC 3339. [default: now]"
)
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def clocks_create(
    name: str | None,
    now: str | None,
    tenant_ref: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Create a test clock. Bind keys to it with `pollable keys create --clock CLOCK_ID`."""
    with sandbox(url, token) as client:
        clock = client.create_clock(name=name, now=now, tenant_id=tenant_for(client, tenant_ref))
    if as_json:
        echo_json(clock)
    else:
        fields(clock, (column for column, _ in CLOCK_COLUMNS))


@clocks.command("list", context_settings=CONTEXT)
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def clocks_list(tenant_ref: str | None, as_json: bool, url: str | None, token: str | None) -> None:
    """List a tenant's test clocks."""
    with sandbox(url, token) as client:
        found = client.list_clocks(tenant_id=tenant_for(client, tenant_ref))
    if as_json:
        echo_json(found)
    else:
        table(found, CLOCK_COLUMNS)


@clocks.command("show", context_settings=CONTEXT)
@click.argument("clock_id")
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def clocks_show(
    clock_id: str, tenant_ref: str | None, as_json: bool, url: str | None, token: str | None
) -> None:
    """Show test clock CLOCK_ID."""
    with sandbox(url, token) as client:
        clock = client.get_clock(clock_id, tenant_id=tenant_for(client, tenant_ref))
    if as_json:
        echo_json(clock)
    else:
        fields(clock, (column for column, _ in CLOCK_COLUMNS))


@clocks.command("delete", context_settings=CONTEXT)
@click.argument("clock_id")
@tenant_option(ADMIN_TENANT)
@remote
def clocks_delete(
    clock_id: str, tenant_ref: str | None, url: str | None, token: str | None
) -> None:
    """Delete test clock CLOCK_ID and every job bound to it."""
    with sandbox(url, token) as client:
        client.delete_clock(clock_id, tenant_id=tenant_for(client, tenant_ref))
    click.echo(f"deleted clock {clock_id}")


STAGE_NAMES = ", ".join(stage.value for stage in STAGES)


@clocks.command(
    "advance",
    context_settings=CONTEXT,
    epilog=f"Stages: {STAGE_NAMES}. Any other word given to --until is a status.",
)
@click.argument("clock_id")
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="Move the clock forward by this many seconds."
)
@click.option("--to", callback=parse_when, metavar="TIME", help="Move it to TIME, RFC 3339.")
@click.option(
    "--until",
    nargs=2,
    metavar="JOB_ID WORD",
    help="Move it until job JOB_ID reaches WORD: a status or a stage in the job's own "
    "contract's words (processing, running, embedding, completed, ...).",
)
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def clocks_advance(
    clock_id: str,
    seconds: float | None,
    to: str | None,
    until: tuple[str, str] | None,
    tenant_ref: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Move test clock CLOCK_ID forward: by --seconds, --to a time, or --until a job gets
    somewhere. Clocks never move back."""
    if sum(given is not None for given in (seconds, to, until)) != 1:
        raise click.UsageError("pass exactly one of --seconds, --to, --until")
    target: dict[str, Any] = {}
    if until is not None:
        job_id, word = until
        kind = "stage" if word in STAGE_WORDS else "status"
        target = {"until_job": job_id, kind: word}
    with sandbox(url, token) as client:
        clock = client.advance_clock(
            clock_id, seconds=seconds, to=to, tenant_id=tenant_for(client, tenant_ref), **target
        )
    if as_json:
        echo_json(clock)
    else:
        click.echo(f"{clock['id']} now {clock['now']}")
