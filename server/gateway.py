"""The dashboard's one way in: a credential checked as the control plane's bearer check
does, and operations called through ``dispatch.respond`` as an HTTP request would be
(the same validation of request and reply, the same errors), never the store.

It names no API: the control plane is the descriptor marked ``control_plane``, and a job's
own read is its API's ``status_operation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pollable.handlers.api import Principal, Reply
from pollable.handlers.descriptor import ApiDescriptor, hash_key

from .auth import Unauthorized
from .seed import Operations
from .services import Services


class Credential(NamedTuple):
    """What a session keeps of a credential: which job API issued the key (None: the admin
    token) and its SHA-256, never the credential itself."""

    issuer: str | None
    digest: str


class Gateway:
    def __init__(self, operations: Operations, control: ApiDescriptor) -> None:
        self._operations = operations
        self._control = control

    async def sign_in(self, services: Services, token: str) -> tuple[Principal, Credential] | None:
        """The principal ``token`` authenticates on the control plane, and what a session
        keeps of it; None when it authenticates nobody."""
        try:
            principal = await services.authenticator.authenticate(self._control, token)
        except Unauthorized:
            return None
        issuer = None if principal.admin else services.authenticator.issuer_of(token)
        return principal, Credential(issuer, hash_key(token))

    async def resume(
        self, services: Services, credential: tuple[str | None, str]
    ) -> Principal | None:
        """The principal of a session's credential (a ``Credential``) now; None once the
        key is revoked."""
        issuer, digest = credential
        try:
            return await services.authenticator.by_digest(self._control, issuer, digest)
        except Unauthorized:
            return None

    def session_key(self, services: Services) -> bytes:
        return services.authenticator.derived_key("pollable dashboard session")

    async def call(
        self,
        services: Services,
        principal: Principal,
        operation_id: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Reply:
        """A control-plane operation, called by ``principal``."""
        if self._operations.find(operation_id).api is not self._control:
            raise ValueError(f"{operation_id} is not an operation of the control plane")
        return await self._operations.call_as(
            operation_id, principal, services, params=params, body=body
        )

    async def read_job(
        self,
        services: Services,
        principal: Principal,
        job: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> Reply:
        """``job`` (as the control plane lists it) read through its own API's contract, for
        its tenant: what the caller, who could read the job's timeline, may see of it."""
        tenant = await self.call(services, principal, "get_tenant", {"tenant_id": job["tenant_id"]})
        if tenant.status != 200:
            return tenant
        api = self._operations.apis[job["api"]]
        if api.status_operation is None:
            raise ValueError(f"the {api.name} API has no jobs")
        # Paging parameters (``files_cursor``) only for a read that takes them.
        taken = {p.key for p in self._operations.find(api.status_operation).operation.params}
        asked = {k: v for k, v in (params or {}).items() if k in taken and v is not None}
        owner = Principal(job["tenant_id"], tenant.body["name"], tenant.body["organization_id"], "")
        return await self._operations.call_as(
            api.status_operation, owner, services, params={**asked, "job_id": job["id"]}
        )
