"""Crosmos Memory API (jobs surface): ingest sources or a conversation, poll the job.

The served document is the seed's OpenAPI document, vendored verbatim, with pollable's
additions merged in (``openapi/crosmos.additions.json``).
"""

from __future__ import annotations

from importlib import resources

from ..descriptor import ApiDescriptor, DemoCall, KeyRule, words_for
from . import jobs, presenter

_OPENAPI = resources.files("pollable.openapi")

DESCRIPTOR = ApiDescriptor(
    name="crosmos",
    title="Crosmos",
    documents=(
        _OPENAPI / "crosmos.vendored.json",
        _OPENAPI / "crosmos.additions.json",
        _OPENAPI / "crosmos.bounds.json",
        _OPENAPI / "crosmos.faults.json",
        _OPENAPI / "crosmos.polling.json",
    ),
    openapi_url="/openapi.json",
    docs_url="/docs",
    handlers={
        "get_job_status_api_v1_jobs__job_id__get": jobs.get_job,
        "ingest_sources_api_v1_sources_post": jobs.ingest_sources,
        "ingest_conversation_api_v1_conversations_post": jobs.ingest_conversation,
    },
    keys=KeyRule({"dev": "csk_"}),
    status_operation="get_job_status_api_v1_jobs__job_id__get",
    demo=DemoCall(
        summary="ingest sources, then poll the job",
        create_path="/api/v1/sources",
        body={
            "space_id": "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54",
            "sources": [{"content": "Ada Lovelace wrote the first published computer program."}],
        },
        poll_path="/api/v1/jobs/JOB_ID",
    ),
    accepts_jwt=True,
    statuses=words_for(presenter.STATUS),
)
