"""``pollable requests``: a running server's request log, listed, counted, shown, deleted,
and followed as it grows (``requests tail``, like ``stripe logs tail``)."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import click

from pollable.testing.client import LogFilters, RequestEntry, SandboxClient

from .remote import (
    ADMIN_TENANT,
    CONTEXT,
    echo_json,
    json_option,
    parse_when,
    remote,
    sandbox,
    table,
    tenant_for,
    tenant_option,
)

#: How long ``tail`` waits between two polls; tests replace it.
pause: Callable[[float], None] = time.sleep
#: Entries per page ``tail`` reads.
PAGE = 100
#: Pages ``tail`` reads in one poll before it stops catching up.
CATCH_UP_PAGES = 10
#: Ids ``tail`` remembers, to show each entry once.
REMEMBERED = 10_000
COLUMNS = (
    ("time", "TIME"), ("method", "METHOD"), ("path", "PATH"), ("status", "STATUS"),
    ("duration_ms", "MS"), ("id", "REQUEST-ID"), ("job_id", "JOB"),
)  # fmt: skip


def entry_id(entry: RequestEntry) -> str:
    return str(entry.get("id") or entry.get("request_id"))


def row(entry: RequestEntry) -> dict[str, Any]:
    """The fields a line shows, whatever the entry calls its time and its duration."""
    moment = next(
        (entry[k] for k in ("time", "received_at", "created_at", "at") if k in entry), None
    )
    duration = entry.get("duration_ms")
    if duration is None and entry.get("duration") is not None:
        duration = round(float(entry["duration"]) * 1000, 1)
    return {**entry, "time": moment, "duration_ms": duration, "id": entry_id(entry)}


def line(entry: RequestEntry) -> str:
    shown = row(entry)
    parts = [shown["time"], shown["method"], shown["path"], shown["status"]]
    text = "  ".join(str(part) for part in parts if part is not None)
    if shown["duration_ms"] is not None:
        text += f"  {shown['duration_ms']}ms"
    text += f"  {shown['id']}"
    if shown.get("job_id"):
        text += f"  job {shown['job_id']}"
    return text


def filter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--job-id, --path, --method, --status, --api."""
    for option in reversed(
        (
            click.option("--job-id", metavar="JOB_ID", help="Only requests that touched this job."),
            click.option("--path", metavar="PATH", help="Only requests to this path."),
            click.option(
                "--method", metavar="METHOD", help="Only this HTTP method (GET, POST, ...)."
            ),
            click.option(
                "--status", type=int, metavar="CODE", help="Only answers with this status."
            ),
            click.option("--api", metavar="API", help="Only requests to this API."),
        )
    ):
        function = option(function)
    return function


def time_options(function: Callable[..., Any]) -> Callable[..., Any]:
    since = click.option(
        "--since", callback=parse_when, metavar="TIME", help="Not before TIME (RFC 3339)."
    )
    until = click.option(
        "--until", callback=parse_when, metavar="TIME", help="Not after TIME (RFC 3339)."
    )
    return since(until(function))


def chosen(**values: Any) -> LogFilters:
    """The filters given, as the client takes them (the method upper-cased)."""
    found: dict[str, Any] = {name: value for name, value in values.items() if value is not None}
    if "method" in found:
        found["method"] = found["method"].upper()
    return cast(LogFilters, found)


@click.group(context_settings=CONTEXT)
def requests() -> None:
    """The request log of a running server: every request to its APIs, credentials redacted."""


@requests.command("list", context_settings=CONTEXT)
@filter_options
@time_options
@click.option(
    "--limit", type=click.IntRange(1, 200), default=20, show_default=True, help="How many."
)
@tenant_option(ADMIN_TENANT)
@json_option
@remote
def requests_list(
    limit: int, tenant_ref: str | None, as_json: bool, url: str | None, token: str | None,
    **filters: Any,
) -> None:  # fmt: skip
    """List the newest requests, newest first."""
    with sandbox(url, token) as client:
        page = client.list_requests(
            limit=limit, tenant_id=tenant_for(client, tenant_ref), **chosen(**filters)
        )
    if as_json:
        echo_json(page)
    else:
        table([row(entry) for entry in page["data"]], COLUMNS)


@requests.command("count", context_settings=CONTEXT)
@filter_options
@time_options
@tenant_option(ADMIN_TENANT)
@remote
def requests_count(
    tenant_ref: str | None, url: str | None, token: str | None, **filters: Any
) -> None:
    """Count the requests that match the filters."""
    with sandbox(url, token) as client:
        click.echo(
            client.count_requests(tenant_id=tenant_for(client, tenant_ref), **chosen(**filters))
        )


@requests.command("show", context_settings=CONTEXT)
@click.argument("request_id")
@tenant_option(ADMIN_TENANT)
@remote
def requests_show(
    request_id: str, tenant_ref: str | None, url: str | None, token: str | None
) -> None:
    """Show the entry of REQUEST_ID (a response's Request-Id header), as JSON."""
    with sandbox(url, token) as client:
        echo_json(client.get_request(request_id, tenant_id=tenant_for(client, tenant_ref)))


@requests.command("delete", context_settings=CONTEXT)
@tenant_option(ADMIN_TENANT)
@remote
def requests_delete(tenant_ref: str | None, url: str | None, token: str | None) -> None:
    """Delete a tenant's request log."""
    with sandbox(url, token) as client:
        client.delete_requests(tenant_id=tenant_for(client, tenant_ref))
    click.echo("deleted the request log")


class Follower:
    """What ``tail`` has shown: new entries are those above the newest seen."""

    def __init__(self, client: SandboxClient, tenant_id: str | None, filters: LogFilters) -> None:
        self.client, self.tenant_id, self.filters = client, tenant_id, filters
        self.seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def poll(self, *, pages: int = CATCH_UP_PAGES) -> list[RequestEntry]:
        """Entries not seen before, oldest first. Reads pages newest first until one holds
        an entry already seen: the log is written in batches, so an entry may land a little
        below newer ones, and each page is read whole."""
        fresh: list[RequestEntry] = []
        cursor = None
        for _ in range(pages):
            page = self.client.list_requests(
                limit=PAGE, cursor=cursor, tenant_id=self.tenant_id, **self.filters
            )
            met = False
            for entry in page["data"]:
                if entry_id(entry) in self.seen:
                    met = True
                else:
                    fresh.append(entry)
            cursor = page.get("next_cursor")
            if met or not cursor:
                break
        return self.remember(fresh)

    def remember(self, fresh: Iterable[RequestEntry]) -> list[RequestEntry]:
        ordered = list(reversed(list(fresh)))
        for entry in ordered:
            self.seen[entry_id(entry)] = None
        while len(self.seen) > REMEMBERED:
            self.seen.popitem(last=False)
        return ordered


@requests.command("tail", context_settings=CONTEXT)
@filter_options
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to ask for new requests.",
)
@tenant_option(ADMIN_TENANT)
@click.option("--json", "as_json", is_flag=True, help="Print each entry as one line of JSON.")
@remote
def requests_tail(
    interval: float, tenant_ref: str | None, as_json: bool, url: str | None, token: str | None,
    **filters: Any,
) -> None:  # fmt: skip
    """Follow the request log: print each new request as it is made, until Ctrl-C."""
    with sandbox(url, token) as client:
        follower = Follower(client, tenant_for(client, tenant_ref), chosen(**filters))
        follower.poll(pages=1)  # what is there already is history, not news
        click.echo("Following the request log; Ctrl-C stops.", err=True)
        try:
            while True:
                pause(interval)
                for entry in follower.poll():
                    click.echo(json.dumps(entry) if as_json else line(entry))
        except KeyboardInterrupt:
            click.echo("Stopped.", err=True)
