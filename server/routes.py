"""The one table that maps each contract operation to its handler.

``create_app`` refuses to start if an operation has no handler or a handler no operation.
"""

from __future__ import annotations

from pollable.handlers import captain, crosmos
from pollable.handlers.api import Handler

HANDLERS: dict[str, Handler] = {
    # Crosmos Memory API
    "get_job_status_api_v1_jobs__job_id__get": crosmos.get_job,
    "ingest_sources_api_v1_sources_post": crosmos.ingest_sources,
    "ingest_conversation_api_v1_conversations_post": crosmos.ingest_conversation,
    # Captain API v2
    "get_job_status_v2": captain.get_job,
    "cancel_job_v2": captain.cancel_job,
    "list_jobs_v2": captain.list_jobs,
    **{operation_id: captain.index_handler(operation_id) for operation_id in captain.INDEX_KINDS},
}
