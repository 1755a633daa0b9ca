"""The polling report: what a reviewer would flag in how each client polls, read from one
tenant's request log. Pure: entries and the job APIs' terms in, findings out.

A client is what its request headers say it is: a Stainless SDK (``X-Stainless-Lang``,
``X-Stainless-Package-Version``, its ``User-Agent`` product), a Fern SDK
(``X-Fern-SDK-Name``, ``X-Fern-SDK-Version``), else its ``User-Agent``. A *poll* is a read
of a job by its API's status operation without a page cursor (a read with one is a page
of the job's items, not a poll). Times between two reads of one job are measured on the
job's clock when both entries have a clock time, else in real time. The findings:

``early_poll``
    a poll sooner, since the same client's previous poll of the job, than that poll's
    answer's ``Retry-After`` allowed;
``poll_after_terminal``
    a poll of a job an earlier answer to the same client already showed terminal;
``no_backoff``
    a request by the same client to the same operation sooner after a 429 or 503 than
    that answer's ``Retry-After`` (1 s without one), in real time;
``retry_without_idempotency_key``
    a request to an operation that declares ``Idempotency-Key``, sent without one, that
    repeats (same path, same body) the same client's previous request to it, which was
    answered 408, 429 or 5xx, or that says it is a retry (``X-Stainless-Retry-Count``);
``cursor_not_followed``
    the newest answer about a job to a client that carried a non-null page cursor
    (``files_page.next_cursor``): the client never asked for that cursor afterwards;
``gave_up``
    the client's last read of the job that showed a status showed a non-terminal one, and
    no answer in the log showed the job terminal.

Only what the log shows counts: a body cut at the log's size limit, or that is not JSON,
shows no status and no cursor, so it makes no finding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from pollable.store.base import LoggedMessage, RequestEntry

KINDS = (
    "early_poll",
    "poll_after_terminal",
    "no_backoff",
    "retry_without_idempotency_key",
    "cursor_not_followed",
    "gave_up",
)
#: Statuses a client must back off from, and how long without a ``Retry-After``.
BACK_OFF_STATUSES = frozenset({429, 503})
DEFAULT_BACK_OFF = 1.0
#: Answers after which an SDK retries a create (``408``, ``429``, ``5xx``).
RETRIED_STATUSES = frozenset({408, 429})
#: How many examples of each kind a client's summary shows, the worst first.
EXAMPLES = 5


@dataclass(frozen=True)
class ApiTerms:
    """What the report needs to know of one job API (from its descriptor and contract)."""

    name: str
    #: The operation that reads one job.
    status_operation: str
    #: Its status words that are terminal (``completed``, ``partial``, ...).
    terminal: frozenset[str]
    #: Every status word it answers (the rest are not statuses, e.g. ``queued`` of a
    #: create reply).
    statuses: frozenset[str] = frozenset()
    #: Operations whose contract declares the ``Idempotency-Key`` header.
    idempotent_operations: frozenset[str] = frozenset()
    #: The status operation's page cursor: the query parameter, and where the answer
    #: holds the next one (``files_cursor``, ``("files_page", "next_cursor")``).
    cursor_parameter: str | None = None
    cursor_field: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    kind: str
    client: str
    request_id: str
    at: float
    detail: str
    job_id: str | None = None
    #: The earlier entry it is judged against (the previous poll, the 429, ...).
    related_request_id: str | None = None
    #: How many seconds too soon, for the kinds about time: what ranks the worst first.
    seconds_early: float | None = None


@dataclass
class ClientSummary:
    client: str
    sdk: Mapping[str, str | None] | None
    user_agent: str | None
    requests: int = 0
    polls: int = 0
    jobs: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class JobSummary:
    job_id: str
    api: str
    polls: int = 0
    last_status: str | None = None
    terminal: bool = False
    clients: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    clients: dict[str, ClientSummary]
    jobs: dict[str, JobSummary]

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.clients.values() for f in c.findings]


def client_of(headers: Mapping[str, str]) -> str:
    """The client a request's headers name: ``crosmos/0.4.1 (stainless, python)``,
    ``captain-sdk/0.1.1 (fern, python)``, else the ``User-Agent`` (``-`` without one)."""
    agent = headers.get("user-agent")
    if "x-stainless-lang" in headers or "x-stainless-package-version" in headers:
        product = (agent or "").split(" ", 1)[0].split("/", 1)[0] or "stainless"
        version = headers.get("x-stainless-package-version") or "?"
        return f"{product}/{version} (stainless, {headers.get('x-stainless-lang') or '?'})"
    if "x-fern-sdk-name" in headers:
        version = headers.get("x-fern-sdk-version") or "?"
        language = headers.get("x-fern-language") or "?"
        return f"{headers['x-fern-sdk-name']}/{version} (fern, {language})"
    return agent or "-"


def retry_after(message: LoggedMessage) -> float | None:
    """An answer's ``Retry-After`` in seconds, when it is a whole number of them."""
    value = message.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() and len(value) < 10 else None


def json_body(message: LoggedMessage) -> Any:
    """The body, parsed, when it was kept whole and is JSON; else None."""
    if message.body is None or message.truncated:
        return None
    try:
        return orjson.loads(message.body)
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True)
class _Read:
    """One entry, as the report reads it."""

    entry: RequestEntry
    client: str
    terms: ApiTerms
    status_word: str | None
    next_cursor: str | None
    cursor_sent: str | None

    @property
    def poll(self) -> bool:
        return (
            self.entry.operation_id == self.terms.status_operation
            and self.entry.job_id is not None
            and self.cursor_sent is None
        )

    @property
    def status_read(self) -> bool:
        return self.entry.operation_id == self.terms.status_operation

    @property
    def terminal(self) -> bool:
        return self.status_word is not None and self.status_word in self.terms.terminal

    @property
    def ended(self) -> float:
        """When the answer was sent, real time."""
        return self.entry.at + self.entry.duration_ms / 1000


def _read(entry: RequestEntry, terms: ApiTerms) -> _Read:
    word = cursor = sent = None
    if 200 <= entry.status < 300:
        body = json_body(entry.response)
        if isinstance(body, dict):
            status = body.get("status")
            if isinstance(status, str) and status in terms.statuses:
                word = status
            if entry.operation_id == terms.status_operation and terms.cursor_field:
                value: Any = body
                for name in terms.cursor_field:
                    value = value.get(name) if isinstance(value, dict) else None
                cursor = value if isinstance(value, str) else None
    if terms.cursor_parameter and entry.query:
        values = parse_qs(entry.query).get(terms.cursor_parameter)
        sent = values[0] if values else None
    return _Read(entry, client_of(entry.request.headers), terms, word, cursor, sent)


def _elapsed(earlier: _Read, later: _Read) -> tuple[float, str]:
    """Seconds between two reads of one job, on its clock when both entries have one."""
    a, b = earlier.entry.clock_time, later.entry.clock_time
    if a is not None and b is not None:
        return b - a, "clock"
    return later.entry.at - earlier.ended, "real"


def analyse(entries: Iterable[RequestEntry], apis: Mapping[str, ApiTerms]) -> Report:
    """The findings of one tenant's log entries (in any order) about the given job APIs."""
    reads = sorted(
        (_read(e, apis[e.api]) for e in entries if e.api is not None and e.api in apis),
        key=lambda r: (r.entry.at, r.entry.id),
    )
    report = Report(clients={}, jobs={})
    for read in reads:
        summary = report.clients.get(read.client)
        if summary is None:
            summary = report.clients[read.client] = ClientSummary(
                read.client, read.entry.sdk, read.entry.request.headers.get("user-agent")
            )
        summary.requests += 1
        job_id = read.entry.job_id
        if job_id is None:
            continue
        summary.jobs.add(job_id)
        job = report.jobs.get(job_id)
        if job is None:
            job = report.jobs[job_id] = JobSummary(job_id, read.terms.name)
        job.clients.add(read.client)
        if read.poll:
            summary.polls += 1
            job.polls += 1
        if read.status_word is not None:
            job.last_status = read.status_word
            job.terminal = job.terminal or read.terminal

    found: list[Finding] = []
    found += _early_polls(reads)
    found += _polls_after_terminal(reads)
    found += _no_backoff(reads)
    found += _retries_without_key(reads)
    found += _cursors_not_followed(reads)
    found += _gave_up(reads, report.jobs)
    for finding in sorted(found, key=lambda f: (f.at, f.request_id, f.kind)):
        report.clients[finding.client].findings.append(finding)
        if finding.job_id is not None:
            report.jobs[finding.job_id].findings.append(finding)
    return report


def _by_client_and_job(reads: Sequence[_Read]) -> dict[tuple[str, str], list[_Read]]:
    groups: dict[tuple[str, str], list[_Read]] = defaultdict(list)
    for read in reads:
        if read.entry.job_id is not None:
            groups[read.client, read.entry.job_id].append(read)
    return groups


def _early_polls(reads: Sequence[_Read]) -> Iterable[Finding]:
    for (client, job_id), group in _by_client_and_job(reads).items():
        previous: _Read | None = None
        for read in group:
            if not read.poll:
                continue
            if previous is not None and previous.entry.status < 400:
                allowed = retry_after(previous.entry.response)
                if allowed is not None:
                    waited, on = _elapsed(previous, read)
                    if waited < allowed:
                        yield Finding(
                            "early_poll", client, read.entry.id, read.entry.at,
                            f"polled {waited:g} s ({on} time) after {previous.entry.id}, "
                            f"whose answer said Retry-After: {allowed:g}",
                            job_id, previous.entry.id, round(allowed - waited, 3),
                        )  # fmt: skip
            previous = read


def _polls_after_terminal(reads: Sequence[_Read]) -> Iterable[Finding]:
    for (client, job_id), group in _by_client_and_job(reads).items():
        terminal: _Read | None = None
        for read in group:
            if terminal is not None and read.poll:
                yield Finding(
                    "poll_after_terminal", client, read.entry.id, read.entry.at,
                    f"polled after {terminal.entry.id} showed the job {terminal.status_word}",
                    job_id, terminal.entry.id,
                )  # fmt: skip
            if terminal is None and read.terminal:
                terminal = read


def _no_backoff(reads: Sequence[_Read]) -> Iterable[Finding]:
    last: dict[tuple[str, str | None], _Read] = {}
    for read in reads:
        key = (read.client, read.entry.operation_id)
        previous = last.get(key)
        last[key] = read
        if previous is None or previous.entry.status not in BACK_OFF_STATUSES:
            continue
        allowed = retry_after(previous.entry.response)
        wait = DEFAULT_BACK_OFF if allowed is None else allowed
        waited = read.entry.at - previous.ended
        if waited < wait:
            said = f"Retry-After: {allowed:g}" if allowed is not None else "no Retry-After (1 s)"
            yield Finding(
                "no_backoff", read.client, read.entry.id, read.entry.at,
                f"sent {max(waited, 0):.3f} s after {previous.entry.id} was answered "
                f"{previous.entry.status} with {said}",
                read.entry.job_id, previous.entry.id, round(wait - max(waited, 0), 3),
            )  # fmt: skip


def _same_request(a: RequestEntry, b: RequestEntry) -> bool:
    """Same path and query, and the same body as far as the log shows (a cut body proves
    nothing)."""
    if (a.path, a.query) != (b.path, b.query):
        return False
    if a.request.truncated or b.request.truncated:
        return False
    return (a.request.body, a.request.size) == (b.request.body, b.request.size)


def _retries_without_key(reads: Sequence[_Read]) -> Iterable[Finding]:
    last: dict[tuple[str, str], _Read] = {}
    for read in reads:
        operation = read.entry.operation_id
        if operation is None or operation not in read.terms.idempotent_operations:
            continue
        previous = last.get((read.client, operation))
        last[read.client, operation] = read
        if "idempotency-key" in read.entry.request.headers:
            continue
        failed = previous is not None and (
            previous.entry.status in RETRIED_STATUSES or previous.entry.status >= 500
        )
        repeated = previous is not None and failed and _same_request(previous.entry, read.entry)
        said_retry = (read.entry.retry_count or 0) > 0
        if repeated or said_retry:
            why = (
                f"repeats {previous.entry.id} (answered {previous.entry.status})"
                if repeated and previous is not None
                else f"retry {read.entry.retry_count} by the client's own count"
            )
            yield Finding(
                "retry_without_idempotency_key", read.client, read.entry.id, read.entry.at,
                f"{why} without an Idempotency-Key, which {operation} accepts: the create "
                "may run twice",
                read.entry.job_id, previous.entry.id if repeated and previous else None,
            )  # fmt: skip


def _cursors_not_followed(reads: Sequence[_Read]) -> Iterable[Finding]:
    for (client, job_id), group in _by_client_and_job(reads).items():
        offered: _Read | None = None
        asked: set[str] = set()
        for read in group:
            if read.cursor_sent is not None:
                asked.add(read.cursor_sent)
            if read.next_cursor is not None:
                offered, asked = read, set()
        if offered is not None and offered.next_cursor not in asked:
            yield Finding(
                "cursor_not_followed", client, offered.entry.id, offered.entry.at,
                f"the answer offered next_cursor {offered.next_cursor!r}; the client never "
                "asked for it",
                job_id,
            )  # fmt: skip


def _gave_up(reads: Sequence[_Read], jobs: Mapping[str, JobSummary]) -> Iterable[Finding]:
    for (client, job_id), group in _by_client_and_job(reads).items():
        if jobs[job_id].terminal:
            continue
        shown = [r for r in group if r.status_read and r.status_word is not None]
        if shown:
            last = shown[-1]
            yield Finding(
                "gave_up", client, last.entry.id, last.entry.at,
                f"last read showed the job {last.status_word}; nothing in the log shows it "
                "ended",
                job_id,
            )  # fmt: skip


def worst(findings: Iterable[Finding], per_kind: int = EXAMPLES) -> list[Finding]:
    """Up to ``per_kind`` findings of each kind: the most seconds early first, then the
    earliest."""
    chosen: list[Finding] = []
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_kind[finding.kind].append(finding)
    for kind in KINDS:
        ranked = sorted(by_kind[kind], key=lambda f: (-(f.seconds_early or 0), f.at))
        chosen += ranked[:per_kind]
    return chosen


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    tally = dict.fromkeys(KINDS, 0)
    for finding in findings:
        tally[finding.kind] += 1
    return tally
