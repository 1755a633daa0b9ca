"""Captain API v2 (jobs surface): index from URLs, text or (synthetic) cloud storage;
poll, list and cancel jobs.

The served document (``openapi/captain.json``) is pollable's transcription of the official
SDK and docs, with ``x-source`` on every part.
"""

from __future__ import annotations

from importlib import resources

from ..descriptor import ApiDescriptor, DemoCall, KeyRule, words_for
from . import jobs, presenter

DESCRIPTOR = ApiDescriptor(
    name="captain",
    title="Captain",
    documents=(
        resources.files("pollable.openapi") / "captain.json",
        resources.files("pollable.openapi") / "captain.bounds.json",
        resources.files("pollable.openapi") / "captain.faults.json",
        resources.files("pollable.openapi") / "captain.polling.json",
    ),
    openapi_url="/v2/openapi.json",
    docs_url="/v2/docs",
    handlers={
        "get_job_status_v2": jobs.get_job,
        "cancel_job_v2": jobs.cancel_job,
        "list_jobs_v2": jobs.list_jobs,
        **{operation_id: jobs.index_handler(operation_id) for operation_id in jobs.INDEX_KINDS},
    },
    keys=KeyRule({"dev": "cap_dev_", "prod": "cap_prod_"}),
    status_operation="get_job_status_v2",
    demo=DemoCall(
        summary="index a URL, then poll the job",
        create_path="/v2/collections/demo/index/url",
        body={"url": "https://example.com/annual-report.pdf", "processing_type": "basic"},
        poll_path="/v2/jobs/JOB_ID",
    ),
    organization_header="X-Organization-ID",
    statuses=words_for(presenter.STATUS),
    stages=words_for(presenter.STAGE),
    secret_fields=jobs.SECRET_FIELDS,
)
