"""The polling report's ``early_poll`` end to end, judged on the job's clock. It needs
``Retry-After`` on non-terminal job reads (issue 8, item 1, another branch): until that is
merged these tests fail, by design, at their first assertion that the header is there.
They are not skipped: once the header exists they must pass."""

from __future__ import annotations

import runcaptain

from pollable.testing import Sandbox
from tests.conformance.test_polling_report import index_bucket, options


def read(client: runcaptain.Captain, job_id: str) -> tuple[str, int]:
    answer = client.jobs.with_raw_response.get_job_status_v2(job_id, request_options=options())
    header = answer.headers.get("retry-after")
    assert header is not None, "no Retry-After on a non-terminal job read (issue 8, item 1)"
    return answer.data.status, int(header)


def test_eight_polls_at_one_clock_time_are_seven_early_polls(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=3)
    for _ in range(8):
        status, _ = read(client, job_id)
        assert status in ("pending", "running")
    pollable.clock.advance(until=(job_id, "completed"))
    client.jobs.get_job_status_v2(job_id, request_options=options())
    report = pollable.polling_report()
    assert report["findings"]["early_poll"] == 7
    assert {k: n for k, n in report["findings"].items() if n} == {"early_poll": 7}


def test_advancing_the_clock_by_retry_after_is_polite(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=3)
    polls = 0
    while True:
        answer = client.jobs.with_raw_response.get_job_status_v2(job_id, request_options=options())
        polls += 1
        if answer.data.status == "completed":
            break
        header = answer.headers.get("retry-after")
        assert header is not None, "no Retry-After on a non-terminal job read (issue 8, item 1)"
        pollable.clock.advance(seconds=int(header))
    assert polls >= 2
    pollable.assert_polite_polling()
