"""The one table that maps each contract operation to its handler.

``create_app`` refuses to start if an operation has no handler or a handler no operation.
"""

from __future__ import annotations

from handlers import crosmos
from handlers.api import Handler

HANDLERS: dict[str, Handler] = {
    # Crosmos Memory API
    "get_job_status_api_v1_jobs__job_id__get": crosmos.get_job,
    "ingest_sources_api_v1_sources_post": crosmos.ingest_sources,
    "ingest_conversation_api_v1_conversations_post": crosmos.ingest_conversation,
}
