"""A polite poller on the official Captain SDK: it sends an ``Idempotency-Key`` with its
create (so the SDK's retries of it cannot index twice), leaves the SDK's retries on (they
wait the ``Retry-After`` of a 429 or 503), polls no sooner than each answer's
``Retry-After``, stops at the first terminal status, and reads every page of the job's
files.

    python polite.py http://127.0.0.1:8000 CAPTAIN_KEY ORGANIZATION_ID

``wait`` is how it waits between polls: ``time.sleep`` from the command line, the test
clock's ``advance`` in ``test_pollers.py``.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable

import runcaptain

TERMINAL = frozenset({"completed", "completed_with_failures", "failed", "cancelled"})
#: How long to wait when an answer gives no Retry-After.
DEFAULT_WAIT = 5.0
#: Fake but well-formed credentials: the sandbox lists a bucket of its own making.
AWS = {"aws_access_key_id": "AKIA" + "EXAMPLEPOLITE001", "aws_secret_access_key": "p/" + "x" * 38}


def index_and_wait(
    client: runcaptain.Captain, files: int, wait: Callable[[float], None] = time.sleep
) -> list[str]:
    """Index a bucket of ``files`` files and wait for the job to end; the files' URIs."""
    accepted = client.indexing.index_s3bucket_v2(
        "polite", bucket_name="acme-archive", processing_type="basic", max_files=files,
        request_options={"additional_headers": {"Idempotency-Key": str(uuid.uuid4())}}, **AWS,
    )  # fmt: skip
    job_id = str(accepted.job_id)
    while True:
        answer = client.jobs.with_raw_response.get_job_status_v2(job_id)
        job = answer.data
        if job.status in TERMINAL:
            break
        after = answer.headers.get("retry-after")
        wait(float(after) if after else DEFAULT_WAIT)
    uris = [file.uri for file in job.files or ()]
    cursor = job.files_page.next_cursor if job.files_page else None
    while cursor:  # every page, each asked for once
        page = client.jobs.get_job_status_v2(
            job_id, request_options={"additional_query_parameters": {"files_cursor": cursor}}
        )
        uris += [file.uri for file in page.files or ()]
        cursor = page.files_page.next_cursor if page.files_page else None
    return uris


def main(argv: list[str]) -> None:
    base_url, key, organization_id = argv
    client = runcaptain.Captain(base_url=base_url, key=key, organization_id=organization_id)
    print(f"{len(index_and_wait(client, files=120))} files indexed")


if __name__ == "__main__":
    main(sys.argv[1:])
