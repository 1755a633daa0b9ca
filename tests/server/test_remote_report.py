"""``pollable report polling`` against a real server (the plugin's, in-process): the report
as lines a person reads or as the API's JSON, and an exit status for CI."""

from __future__ import annotations

import json

from pollable.testing import Sandbox
from tests.conformance.test_polling_report import index_bucket, options
from tests.server.cli_runner import fails, invoke, ok


def test_report_polling(pollable: Sandbox) -> None:
    client = pollable.captain()
    job_id = index_bucket(client, files=3)
    pollable.clock.advance(until=(job_id, "completed"))
    for _ in range(2):
        client.jobs.get_job_status_v2(job_id, request_options=options())
    remote = ("--url", pollable.base_url, "--token", pollable.captain_key)
    text = ok("report", "polling", *remote)
    request_id = pollable.requests(job_id=job_id)[0]["id"]
    assert "captain-sdk/" in text and "poll_after_terminal 1" in text
    assert f"poll_after_terminal  {request_id} job {job_id}" in text
    as_json = json.loads(ok("report", "polling", "--json", *remote))
    assert as_json["findings"]["poll_after_terminal"] == 1
    assert as_json["tenant_id"] == pollable.tenant_id
    assert invoke("report", "polling", "--fail-on-findings", *remote).exit_code == 1
    narrowed = json.loads(ok("report", "polling", "--json", "--client", "curl/8", *remote))
    assert narrowed["clients"] == [] and set(narrowed["findings"].values()) == {0}
    assert "max-entries" in fails("report", "polling", "--max-entries", "0", *remote, code=2)
