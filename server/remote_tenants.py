"""``pollable tenants``, ``pollable keys`` and ``pollable reset`` on a running server."""

from __future__ import annotations

import inspect
import os
from typing import Any

import click

from pollable.lifecycle import scenarios

from .remote import (
    CONTEXT,
    TENANT_REF,
    echo_json,
    fields,
    json_option,
    own_or_named,
    remote,
    resolve_tenant,
    sandbox,
    table,
    tenant_option,
)

SCENARIO_NAMES = ", ".join(scenarios.CATALOGUE)
TENANT_COLUMNS = (
    ("id", "ID"), ("name", "NAME"), ("organization_id", "ORGANIZATION"),
    ("credits", "CREDITS"), ("default_scenario", "SCENARIO"), ("created_at", "CREATED"),
)  # fmt: skip
KEY_COLUMNS = (
    ("id", "ID"), ("api", "API"), ("environment", "ENV"), ("label", "LABEL"),
    ("clock_id", "CLOCK"), ("created_at", "CREATED"), ("revoked_at", "REVOKED"),
)  # fmt: skip


# -- tenants --------------------------------------------------------------------------------


@click.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--credits", type=click.FloatRange(min=0), help="Credit balance. [default: the server's]"
)
@click.option(
    "--default-scenario",
    metavar="SCENARIO",
    help=f"The scenario its jobs follow when a request picks none ({SCENARIO_NAMES}).",
)
@click.option("--organization-id", metavar="UUID", help="A fixed organization id. [default: new]")
@json_option
@remote
def tenants_create(
    name: str,
    credits: float | None,
    default_scenario: str | None,
    organization_id: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Create tenant NAME (admin) with one API key per API, and print the keys.

    The keys are shown this once.
    """
    with sandbox(url, token) as client:
        created = client.create_tenant(
            name,
            credits=credits,
            default_scenario=default_scenario,
            organization_id=organization_id,
        )
    if as_json:
        echo_json(created)
        return
    tenant = created["tenant"]
    click.echo(
        f"tenant {tenant['name']}  id {tenant['id']}  organization {tenant['organization_id']}"
    )
    for key in created["keys"]:
        click.echo(f"  {key['api'] + ' key':<12} {key['key']}  ({key['id']}, {key['environment']})")
    click.echo("Keys are stored hashed: this is the only time they are shown.")


@click.command("list", context_settings=CONTEXT)
@json_option
@remote
def tenants_list(as_json: bool, url: str | None, token: str | None) -> None:
    """List the tenants (the admin sees all; a tenant key its own)."""
    with sandbox(url, token) as client:
        found = list(client.iter_tenants())
    if as_json:
        echo_json(found)
    else:
        table(found, TENANT_COLUMNS)


@click.command("show", context_settings=CONTEXT)
@click.argument("tenant")
@json_option
@remote
def tenants_show(tenant: str, as_json: bool, url: str | None, token: str | None) -> None:
    """Show TENANT (an id or a name)."""
    with sandbox(url, token) as client:
        found = resolve_tenant(client, tenant)
    if as_json:
        echo_json(found)
    else:
        fields(found, (column for column, _ in TENANT_COLUMNS))


@click.command("update", context_settings=CONTEXT)
@click.argument("tenant")
@click.option("--credits", type=click.FloatRange(min=0), help="Set the credit balance.")
@click.option(
    "--default-scenario",
    metavar="SCENARIO",
    help=f"Set the scenario its jobs follow when a request picks none ({SCENARIO_NAMES}), "
    'or "none" to clear it.',
)
@json_option
@remote
def tenants_update(
    tenant: str,
    credits: float | None,
    default_scenario: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Set TENANT's credit balance or default scenario."""
    if credits is None and default_scenario is None:
        raise click.UsageError("nothing to change: pass --credits or --default-scenario")
    with sandbox(url, token) as client:
        found = resolve_tenant(client, tenant)
        if default_scenario is None:
            updated = client.update_tenant(found["id"], credits=credits)
        else:
            scenario = None if default_scenario == "none" else default_scenario
            updated = client.update_tenant(found["id"], credits=credits, default_scenario=scenario)
    if as_json:
        echo_json(updated)
    else:
        fields(updated, (column for column, _ in TENANT_COLUMNS))


@click.command("delete", context_settings=CONTEXT)
@click.argument("tenant")
@remote
def tenants_delete(tenant: str, url: str | None, token: str | None) -> None:
    """Delete TENANT (admin) and everything it owns: keys, jobs, clocks, log."""
    with sandbox(url, token) as client:
        found = resolve_tenant(client, tenant)
        client.delete_tenant(found["id"])
    click.echo(f"deleted tenant {found['name']} ({found['id']})")


# -- keys -----------------------------------------------------------------------------------


@click.command("list", context_settings=CONTEXT)
@tenant_option(TENANT_REF + " [default: a tenant key's own]")
@json_option
@remote
def keys_list(tenant_ref: str | None, as_json: bool, url: str | None, token: str | None) -> None:
    """List a tenant's API keys: labels, never the keys."""
    with sandbox(url, token) as client:
        found = client.list_keys(own_or_named(client, tenant_ref, token)["id"])
    if as_json:
        echo_json(found)
    else:
        table(found, KEY_COLUMNS)


@click.command("revoke", context_settings=CONTEXT)
@click.argument("key_id")
@tenant_option(TENANT_REF + " [default: a tenant key's own]")
@json_option
@remote
def keys_revoke(
    key_id: str, tenant_ref: str | None, as_json: bool, url: str | None, token: str | None
) -> None:
    """Revoke API key KEY_ID (key_...): refused from the next request on."""
    with sandbox(url, token) as client:
        revoked = client.revoke_key(own_or_named(client, tenant_ref, token)["id"], key_id)
    if as_json:
        echo_json(revoked)
    else:
        click.echo(f"revoked {revoked['id']} ({revoked['label']}) at {revoked['revoked_at']}")


def keys_create_anywhere(local: click.Command) -> click.Command:
    """``keys create`` in a store file (``local``, unchanged) or on a server.

    --url (or --token, --clock) on the command line asks the server; else a store named
    (--store, $POLLABLE_STORE) wins over a server named by $POLLABLE_URL.
    """

    @click.command(
        "create",
        context_settings=CONTEXT,
        help=inspect.cleandoc(local.help or "")
        + "\n\nOn a running server instead, with --url (or $POLLABLE_URL when no store is "
        "named): --tenant is the tenant's id or name, and --clock binds the key to a test clock.",
        short_help="Create an API key, in a store or on a server.",
    )
    @click.option(
        "--clock",
        "clock_id",
        metavar="CLOCK_ID",
        help="On a server: bind the key to this test clock; the jobs it creates run on it.",
    )
    @remote
    @click.pass_context
    def create(
        ctx: click.Context,
        /,
        clock_id: str | None,
        url: str | None,
        token: str | None,
        **values: Any,
    ) -> None:
        typed = {
            name
            for name in ("url", "token")
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        }
        if values["store"] is not None and "url" in typed:
            raise click.UsageError("--store and --url name two places: keep one")
        store_named = values["store"] is not None or "POLLABLE_STORE" in os.environ
        if typed or clock_id is not None or (url and not store_named):
            with sandbox(url, token) as client:
                tenant = own_or_named(client, values["tenant"], token)
                key = client.create_key(
                    tenant["id"], values["api"], environment=values["environment"],
                    clock_id=clock_id,
                )  # fmt: skip
            if values["as_json"]:
                owner = {"tenant": tenant["name"], "organization_id": tenant["organization_id"]}
                echo_json({**key, **owner})
            else:
                click.echo(key["key"])
            return
        ctx.invoke(local, **values)

    create.params[:0] = local.params
    return create


# -- reset ----------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@tenant_option(TENANT_REF + " The admin names one, or passes --all; a tenant key resets its own.")
@click.option("--all", "all_tenants", is_flag=True, help="Reset every tenant (admin).")
@json_option
@remote
def reset(
    tenant_ref: str | None, all_tenants: bool, as_json: bool, url: str | None, token: str | None
) -> None:
    """Start over: clear a tenant's jobs, clocks, request log and idempotency keys, and
    restore its credits. Its keys stay."""
    if tenant_ref is not None and all_tenants:
        raise click.UsageError("--tenant and --all: keep one")
    with sandbox(url, token) as client:
        tenant_id = None if tenant_ref is None else resolve_tenant(client, tenant_ref)["id"]
        done = client.reset(tenant_id=tenant_id, all_tenants=all_tenants)
    if as_json:
        echo_json({"tenants": done})
    else:
        click.echo(f"reset {len(done)} tenant{'s' if len(done) != 1 else ''}: {', '.join(done)}")


TENANT_COMMANDS = (tenants_create, tenants_list, tenants_show, tenants_update, tenants_delete)
KEY_COMMANDS = (keys_list, keys_revoke)
