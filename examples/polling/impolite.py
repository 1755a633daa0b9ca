"""An impolite poller on the official Captain SDK, written the way pollers often are: SDK
retries off and a hand-rolled retry loop that tries again at once, no
``Idempotency-Key``, a fixed poll interval that ignores ``Retry-After``, a poll budget
it gives up on, a habit of polling "once more to be sure" after the end, and only the
first page of files.

    python impolite.py http://127.0.0.1:8000 CAPTAIN_KEY ORGANIZATION_ID

``wait`` is how it waits between polls: ``time.sleep`` from the command line, the test
clock's ``advance`` in ``test_pollers.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import runcaptain
from runcaptain.core.api_error import ApiError

#: One poll a second, whatever the answers say.
INTERVAL = 1.0
NO_RETRIES: Any = {"max_retries": 0}
AWS = {"aws_access_key_id": "AKIA" + "EXAMPLEIMPOLITE1", "aws_secret_access_key": "i/" + "x" * 38}


def create(client: runcaptain.Captain, files: int) -> str:
    """Index a bucket, retrying at once (and without an Idempotency-Key) on any error."""
    for _ in range(5):
        try:
            accepted = client.indexing.index_s3bucket_v2(
                "impolite", bucket_name="acme-archive", processing_type="basic",
                max_files=files, request_options=NO_RETRIES, **AWS,
            )  # fmt: skip
            return str(accepted.job_id)
        except ApiError:
            continue  # straight away
    raise RuntimeError("could not create the job")


def index_and_wait(
    client: runcaptain.Captain,
    files: int,
    *,
    max_polls: int = 200,
    wait: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Index ``files`` files and poll every ``INTERVAL`` seconds, at most ``max_polls``
    times; the URIs on the first page of files (an empty list when it gave up)."""
    job_id = create(client, files)
    for _ in range(max_polls):
        job = client.jobs.get_job_status_v2(job_id, request_options=NO_RETRIES)
        if job.status in ("completed", "completed_with_failures", "failed", "cancelled"):
            client.jobs.get_job_status_v2(job_id, request_options=NO_RETRIES)  # to be sure
            return [file.uri for file in job.files or ()]
        wait(INTERVAL)
    return []  # gave up


def main(argv: list[str]) -> None:
    base_url, key, organization_id = argv
    client = runcaptain.Captain(base_url=base_url, key=key, organization_id=organization_id)
    print(f"{len(index_and_wait(client, files=3, max_polls=2))} files (the budget ran out)")
    print(f"{len(index_and_wait(client, files=120))} files of 120 (the first page)")


if __name__ == "__main__":
    main(sys.argv[1:])
