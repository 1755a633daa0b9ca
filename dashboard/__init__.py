"""The dashboard: pages at ``/dashboard/`` over the control plane's operations only.

It imports nothing of ``server/``: the composition root hands it a gateway
(``server.gateway``) that signs credentials in and calls operations through
``dispatch.respond``; its templates and static files ship inside the package.
"""

from .app import PATH, dashboard_app, root_page

__all__ = ["PATH", "dashboard_app", "root_page"]
