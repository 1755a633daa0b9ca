"""Bearer authentication: API keys (stored hashed) and, for APIs that accept them, JWT
access tokens. Which is which comes from each API's descriptor.

Keys carry 256 random bits, so a single SHA-256 is the right hash: there is nothing to
brute-force, and a slow password hash would only slow every request down. A key is
never stored, logged or echoed; only its hash and a short label are kept.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any

import jwt
from connexion.exceptions import OAuthProblem
from connexion.security import NO_VALUE, BearerSecurityHandler

from pollable.handlers.api import Principal
from pollable.handlers.descriptor import ApiDescriptor, hash_key
from pollable.lifecycle.errors import Forbidden
from pollable.store.base import Store

from .headers import field_value

NOT_AUTHENTICATED = "Not authenticated"
INVALID_CREDENTIALS = "Invalid authentication credentials"
WRONG_ORGANIZATION = "{header} does not match the API key's organization"
JWT_SECRET_META = "jwt_secret"
ADMIN_TOKEN_META = "admin_token_sha256"
ADMIN_TOKEN_PREFIX = "pat_"


class Unauthorized(Exception):
    status = 401

    def __init__(self, detail: str = INVALID_CREDENTIALS) -> None:
        super().__init__(detail)
        self.detail = detail


def new_jwt(secret: str, tenant_name: str, *, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": tenant_name, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")


async def jwt_secret(configured: str | None, store: Store) -> str:
    """The HS256 secret of access tokens: the configured one, else the one the store keeps
    (generated the first time it is asked for, so every process on a store agrees)."""
    return configured or await store.meta(JWT_SECRET_META, secrets.token_urlsafe(32))


async def ensure_admin_token(store: Store, configured: str | None) -> tuple[str, str | None]:
    """The hash of the admin token, and the token itself when this call created it.

    A configured token is used as it is and never stored. Without one, a store keeps the
    hash of a token generated the first time any process asks; only that process learns
    the token (to print it once)."""
    if configured:
        return hash_key(configured), None
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    kept = await store.meta(ADMIN_TOKEN_META, hash_key(token))
    return kept, token if kept == hash_key(token) else None


def check_organization(api: ApiDescriptor, principal: Principal, sent: str | None) -> None:
    """An API with an organization header refuses (403) a value naming another organization
    than the key's. Not sending it is the contract's business (required or not)."""
    if api.organization_header is None or sent is None:
        return
    if sent.lower() != principal.organization_id.lower():
        raise Forbidden(WRONG_ORGANIZATION.format(header=api.organization_header))


class Authenticator:
    """Turns a bearer token into a Principal.

    Every key is looked up in the store on every request (one indexed read), so a key
    revoked through any process is refused by every process from the next request on.
    """

    def __init__(
        self,
        store: Store,
        *,
        jwt_secret: str,
        admin_hash: str,
        job_apis: Sequence[ApiDescriptor],
    ) -> None:
        self._store = store
        self._jwt_secret = jwt_secret
        self._admin_hash = admin_hash
        self._job_apis = tuple(job_apis)

    async def authenticate(self, api: ApiDescriptor, token: str) -> Principal:
        if api.control_plane:
            return await self._control(api, token)
        if api.keys is not None and api.keys.issued(token):
            return await self._by_key(api, api, token)
        if api.accepts_jwt and token.count(".") == 2:
            return await self._by_jwt(api, token)
        raise Unauthorized()

    async def _control(self, api: ApiDescriptor, token: str) -> Principal:
        """The admin token, or any tenant's key of any job API (acting for that tenant)."""
        if hmac.compare_digest(hash_key(token), self._admin_hash):
            return Principal("", "", "", api.name, admin=True)
        for issuer in self._job_apis:
            if issuer.key_rule.issued(token):
                return await self._by_key(api, issuer, token)
        raise Unauthorized()

    async def by_digest(self, api: ApiDescriptor, issuer: str | None, digest: str) -> Principal:
        """The control plane's principal for a credential known only by its hash (what a
        dashboard session keeps): the admin token's (``issuer`` None) or a key of the job
        API ``issuer``. Looked up as a bearer token is, so a revoked key ends its sessions."""
        if issuer is None:
            if hmac.compare_digest(digest, self._admin_hash):
                return Principal("", "", "", api.name, admin=True)
            raise Unauthorized()
        if not any(job_api.name == issuer for job_api in self._job_apis):
            raise Unauthorized()
        return await self._by_hash(api, issuer, digest)

    def issuer_of(self, token: str) -> str | None:
        """The job API whose key ``token`` looks like; None for anything else."""
        return next((a.name for a in self._job_apis if a.key_rule.issued(token)), None)

    def derived_key(self, purpose: str) -> bytes:
        """A secret for ``purpose`` (signing a dashboard's cookies), the same in every process
        on one store: derived from the JWT secret, so neither reveals the other."""
        return hmac.digest(self._jwt_secret.encode(), purpose.encode(), "sha256")

    async def _by_key(self, api: ApiDescriptor, issuer: ApiDescriptor, token: str) -> Principal:
        return await self._by_hash(api, issuer.name, hash_key(token))

    async def _by_hash(self, api: ApiDescriptor, issuer: str, digest: str) -> Principal:
        found = await self._store.key_for(issuer, digest)
        if found is None:
            raise Unauthorized()
        tenant, key = found
        return Principal(
            tenant.id, tenant.name, tenant.organization_id, api.name,
            key_id=key.id, clock_id=key.clock_id, has_fault_rules=tenant.has_fault_rules,
        )  # fmt: skip

    async def _by_jwt(self, api: ApiDescriptor, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._jwt_secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise Unauthorized() from None
        subject = claims.get("sub")
        tenant = await self._store.find_tenant(subject) if isinstance(subject, str) else None
        if tenant is None:
            raise Unauthorized()
        return Principal(tenant.id, tenant.name, tenant.organization_id, api.name)


def bearer_handler(api: ApiDescriptor) -> type[BearerSecurityHandler]:
    """A Connexion bearer handler for one API. It replaces the per-request signature
    inspection of Connexion's generic check with one direct call."""

    class Handler(BearerSecurityHandler):
        def _resolve_func(self, security_scheme: Any) -> Any:
            return api  # anything but None: there is no user function to look up

        @staticmethod
        def get_auth_header_value(request: Any) -> tuple[str | None, str | None]:
            # Connexion's reads Starlette's headers, whitespace and all: read as validation does.
            value = field_value(request.scope["headers"], "authorization")
            if not value:
                return None, None
            try:
                auth_type, token = value.split(maxsplit=1)
            except ValueError:
                raise OAuthProblem(detail="Invalid authorization header") from None
            return auth_type.lower(), token

        def _get_verify_func(self, _unused: Any) -> Any:
            async def verify(request: Any) -> Any:
                auth_type, token = self.get_auth_header_value(request)
                if auth_type != "bearer" or token is None:
                    return NO_VALUE
                authenticator: Authenticator = request.scope["state"]["services"].authenticator
                principal = await authenticator.authenticate(api, token)
                return {"sub": principal.tenant_id, "principal": principal}

            return verify

    Handler.__name__ = Handler.__qualname__ = f"{api.title}BearerHandler"
    return Handler
