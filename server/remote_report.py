"""``pollable report polling``: how politely each client of a tenant polls, from a running
server's request log (``GET /sandbox/v1/reports/polling``)."""

from __future__ import annotations

from typing import Any

import click

from pollable.testing.client import ReportFilters, describe_polling

from .remote import (
    ADMIN_TENANT,
    CONTEXT,
    echo_json,
    json_option,
    parse_when,
    remote,
    sandbox,
    tenant_for,
    tenant_option,
)


@click.group(context_settings=CONTEXT)
def report() -> None:
    """Reports a running server makes from its request log."""


@report.command("polling", context_settings=CONTEXT)
@click.option("--job-id", metavar="JOB_ID", help="Only requests that touched this job.")
@click.option("--since", callback=parse_when, metavar="TIME", help="Not before TIME (RFC 3339).")
@click.option("--until", callback=parse_when, metavar="TIME", help="Not after TIME (RFC 3339).")
@click.option("--client", metavar="CLIENT", help="Only this client, as the report names it.")
@click.option(
    "--max-entries", type=click.IntRange(1, 20_000), metavar="N",
    help="Consider at most the newest N log entries (the server's default: 5000).",
)  # fmt: skip
@click.option(
    "--fail-on-findings", is_flag=True, help="Exit with status 1 when anything is flagged."
)
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def report_polling(
    job_id: str | None, since: str | None, until: str | None, client: str | None,
    max_entries: int | None, fail_on_findings: bool, tenant_ref: str | None, as_json: bool,
    url: str | None, token: str | None,
) -> None:  # fmt: skip
    """What a reviewer would flag in how each client polls: polls sooner than Retry-After
    (on the job's clock), polls after the job ended, no backoff after 429/503, creates
    retried without an Idempotency-Key, page cursors not followed, jobs given up on."""
    given: dict[str, Any] = {"job_id": job_id, "since": since, "until": until}
    filters: ReportFilters = {k: v for k, v in given.items() if v is not None}  # type: ignore[assignment]
    with sandbox(url, token) as sandbox_client:
        found = sandbox_client.polling_report(
            tenant_id=tenant_for(sandbox_client, tenant_ref), client=client,
            max_entries=max_entries, **filters,
        )  # fmt: skip
    if as_json:
        echo_json(found)
    else:
        click.echo(describe_polling(found))
    if fail_on_findings and any(found["findings"].values()):
        raise SystemExit(1)
