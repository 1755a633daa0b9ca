"""``pollable faults`` on a running server: create, list, show and delete fault rules (what
a tenant's job-API requests meet before they are answered: 429, 503, 500, latency, or a
connection closed unanswered)."""

from __future__ import annotations

from typing import Any

import click

from .remote import (
    ADMIN_TENANT,
    CONTEXT,
    echo_json,
    fields,
    json_option,
    remote,
    sandbox,
    table,
    tenant_for,
    tenant_option,
)

FAULT_COLUMNS = (
    ("id", "ID"),
    ("api", "API"),
    ("operation", "OPERATION"),
    ("job_id", "JOB"),
    ("does", "ACTION"),
    ("when", "TRIGGER"),
    ("matched", "MATCHED"),
)


def _described(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule with its action and trigger in words, for tables."""
    action, trigger = rule["action"], rule["trigger"] or {}
    if "status" in action:
        does = str(action["status"])
        if "retry_after" in action:
            does += f" retry-after {action['retry_after']}s"
    elif "latency_ms" in action:
        does = f"latency {action['latency_ms']} ms"
    else:
        does = "close"
    if "next" in trigger:
        when = f"next {trigger['next']}"
    elif "every" in trigger:
        when = f"every {trigger['every']}"
    elif "probability" in trigger:
        when = f"p={trigger['probability']} seed {trigger['seed']}"
    else:
        when = "always"
    return {**rule, "does": does, "when": when}


@click.group(context_settings=CONTEXT)
def faults() -> None:
    """Fault rules of a running server: what a tenant's job-API requests meet."""


@faults.command("create", context_settings=CONTEXT)
@click.option(
    "--status", type=click.Choice(["429", "503", "500"]), help="Answer this status instead."
)
@click.option("--latency-ms", type=click.IntRange(1, 60_000), help="Wait this long, then answer.")
@click.option("--close", is_flag=True, help="Close the connection without answering.")
@click.option(
    "--retry-after", type=click.IntRange(0, 3600), help="Retry-After seconds of a 429 or 503."
)
@click.option("--api", help="Only requests of this API (crosmos, captain).")
@click.option("--operation", help="Only requests of this operation (its operationId).")
@click.option("--job", "job_id", help="Only requests that address this job.")
@click.option("--times", type=click.IntRange(min=1), help="Fire on the next N matching requests.")
@click.option("--every", type=click.IntRange(min=1), help="Fire on every Nth matching request.")
@click.option(
    "--probability", type=click.FloatRange(0, 1), help="Fire with this probability (seeded)."
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of --probability: the same seed, the same sequence.")  # fmt: skip
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def faults_create(
    status: str | None,
    latency_ms: int | None,
    close: bool,
    retry_after: int | None,
    api: str | None,
    operation: str | None,
    job_id: str | None,
    times: int | None,
    every: int | None,
    probability: float | None,
    seed: int,
    tenant_ref: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Create a fault rule: exactly one of --status, --latency-ms, --close; at most one of
    --times, --every, --probability (none: every matching request)."""
    if sum((status is not None, latency_ms is not None, close)) != 1:
        raise click.UsageError("pass exactly one of --status, --latency-ms, --close")
    if sum((times is not None, every is not None, probability is not None)) > 1:
        raise click.UsageError("pass at most one of --times, --every, --probability")
    if retry_after is not None and status not in ("429", "503"):
        raise click.UsageError("--retry-after goes with --status 429 or 503")
    with sandbox(url, token) as client:
        rule = client.create_fault(
            status=None if status is None else int(status), latency_ms=latency_ms, close=close,
            retry_after=retry_after, api=api, operation=operation, job_id=job_id, times=times,
            every=every, probability=probability, seed=seed,
            tenant_id=tenant_for(client, tenant_ref),
        )  # fmt: skip
    if as_json:
        echo_json(rule)
    else:
        fields(_described(dict(rule)), (column for column, _ in FAULT_COLUMNS))


@faults.command("list", context_settings=CONTEXT)
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def faults_list(tenant_ref: str | None, as_json: bool, url: str | None, token: str | None) -> None:
    """List a tenant's fault rules, oldest first (the order they fire in)."""
    with sandbox(url, token) as client:
        found = client.list_faults(tenant_id=tenant_for(client, tenant_ref))
    if as_json:
        echo_json(found)
    else:
        table([_described(dict(rule)) for rule in found], FAULT_COLUMNS)


@faults.command("delete", context_settings=CONTEXT)
@click.argument("fault_id")
@tenant_option(ADMIN_TENANT)
@remote
def faults_delete(
    fault_id: str, tenant_ref: str | None, url: str | None, token: str | None
) -> None:
    """Delete fault rule FAULT_ID."""
    with sandbox(url, token) as client:
        client.delete_fault(fault_id, tenant_id=tenant_for(client, tenant_ref))
    click.echo(f"deleted fault rule {fault_id}")
