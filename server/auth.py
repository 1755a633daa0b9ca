"""Bearer authentication: API keys (stored hashed) and, for APIs that accept them, JWT
access tokens. Which is which comes from each API's descriptor.

Keys carry 256 random bits, so a single SHA-256 is the right hash: there is nothing to
brute-force, and a slow password hash would only slow every request down. A key is
never stored, logged or echoed; only its hash and a short label are kept.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from connexion.security import NO_VALUE, BearerSecurityHandler

from pollable.handlers.api import Principal
from pollable.handlers.descriptor import ApiDescriptor
from pollable.store.base import Store, Tenant

NOT_AUTHENTICATED = "Not authenticated"
INVALID_CREDENTIALS = "Invalid authentication credentials"
WRONG_ORGANIZATION = "{header} does not match the API key's organization"
JWT_SECRET_META = "jwt_secret"


class Unauthorized(Exception):
    status = 401

    def __init__(self, detail: str = INVALID_CREDENTIALS) -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(Exception):
    status = 403

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_jwt(secret: str, tenant_name: str, *, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": tenant_name, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")


async def jwt_secret(configured: str | None, store: Store) -> str:
    """The HS256 secret of access tokens: the configured one, else the one the store keeps
    (generated the first time it is asked for, so every process on a store agrees)."""
    return configured or await store.meta(JWT_SECRET_META, secrets.token_urlsafe(32))


def check_organization(api: ApiDescriptor, principal: Principal, sent: str | None) -> None:
    """An API with an organization header refuses (403) a value naming another organization
    than the key's. Not sending it is the contract's business (required or not)."""
    if api.organization_header is None or sent is None:
        return
    if sent.lower() != principal.organization_id.lower():
        raise Forbidden(WRONG_ORGANIZATION.format(header=api.organization_header))


class Authenticator:
    """Turns a bearer token into a Principal. Resolved keys are cached briefly, per process,
    so the hot path is one store read (the job), not two."""

    def __init__(self, store: Store, jwt_secret: str, *, ttl: float = 30.0, size: int = 10_000):
        self._store = store
        self._jwt_secret = jwt_secret
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[tuple[str, str], tuple[float, Principal]] = OrderedDict()

    async def authenticate(self, api: ApiDescriptor, token: str) -> Principal:
        if api.keys.issued(token):
            return await self._cached(api.name, hash_key(token), self._by_key)
        if api.accepts_jwt and token.count(".") == 2:
            try:
                claims = jwt.decode(token, self._jwt_secret, algorithms=["HS256"])
            except jwt.PyJWTError:
                raise Unauthorized() from None
            subject = claims.get("sub")
            if not isinstance(subject, str):
                raise Unauthorized()
            return await self._cached(api.name, "jwt:" + subject, self._by_name)
        raise Unauthorized()

    async def _cached(
        self, api: str, ref: str, lookup: Callable[[str, str], Awaitable[Tenant | None]]
    ) -> Principal:
        now = time.monotonic()
        hit = self._cache.get((api, ref))
        if hit is not None and hit[0] > now:
            return hit[1]
        tenant = await lookup(api, ref)
        if tenant is None:
            raise Unauthorized()
        principal = Principal(tenant.id, tenant.name, tenant.organization_id, api)
        self._cache[(api, ref)] = (now + self._ttl, principal)
        self._cache.move_to_end((api, ref))
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return principal

    async def _by_key(self, api: str, key_hash: str) -> Tenant | None:
        return await self._store.tenant_for_key(api, key_hash)

    async def _by_name(self, api: str, ref: str) -> Tenant | None:
        return await self._store.find_tenant(ref.removeprefix("jwt:"))


def bearer_handler(api: ApiDescriptor) -> type[BearerSecurityHandler]:
    """A Connexion bearer handler for one API. It replaces the per-request signature
    inspection of Connexion's generic check with one direct call."""

    class Handler(BearerSecurityHandler):
        def _resolve_func(self, security_scheme: Any) -> Any:
            return api  # anything but None: there is no user function to look up

        def _get_verify_func(self, _unused: Any) -> Any:
            async def verify(request: Any) -> Any:
                auth_type, token = self.get_auth_header_value(request)
                if auth_type != "bearer":
                    return NO_VALUE
                authenticator: Authenticator = request.scope["state"]["services"].authenticator
                principal = await authenticator.authenticate(api, token)
                return {"sub": principal.tenant_id, "principal": principal}

            return verify

    Handler.__name__ = Handler.__qualname__ = f"{api.title}BearerHandler"
    return Handler
