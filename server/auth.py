"""Bearer authentication: API keys (stored hashed) and, for Crosmos, JWT access tokens.

Keys carry 256 random bits, so a single SHA-256 is the right hash: there is nothing to
brute-force, and a slow password hash would only slow every request down. A key is
never stored, logged or echoed; only its hash and a short label are kept.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from typing import Any

import jwt
from connexion.exceptions import OAuthProblem
from connexion.security import NO_VALUE, BearerSecurityHandler

from pollable.handlers.api import Principal
from pollable.store.base import Store, Tenant

from .headers import field_value

#: Key prefixes per API, as the upstream services issue them.
KEY_PREFIXES = {"crosmos": ("csk_",), "captain": ("cap_dev_", "cap_prod_")}
ORGANIZATION_HEADER = "x-organization-id"
NOT_AUTHENTICATED = "Not authenticated"
INVALID_CREDENTIALS = "Invalid authentication credentials"


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


def new_key(api: str, *, environment: str = "dev") -> str:
    prefix = "csk_" if api == "crosmos" else f"cap_{environment}_"
    return prefix + secrets.token_urlsafe(32)


def key_label(key: str) -> str:
    """What may be shown of a key: its prefix and first characters."""
    return key[: key.index("_", 4) + 5] if key.startswith("cap_") else key[:8]


def new_jwt(secret: str, tenant_name: str, *, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": tenant_name, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")


class Authenticator:
    """Turns a bearer token into a Principal. Resolved keys are cached briefly, per process,
    so the hot path is one store read (the job), not two."""

    def __init__(self, store: Store, jwt_secret: str, *, ttl: float = 30.0, size: int = 10_000):
        self._store = store
        self._jwt_secret = jwt_secret
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[tuple[str, str], tuple[float, Principal]] = OrderedDict()

    async def authenticate(self, api: str, token: str, organization_id: str | None) -> Principal:
        principal = await self._resolve(api, token)
        wrong_org = organization_id is not None and (
            organization_id.lower() != principal.organization_id.lower()
        )
        if api == "captain" and wrong_org:
            raise Forbidden("X-Organization-ID does not match the API key's organization")
        return principal

    async def _resolve(self, api: str, token: str) -> Principal:
        if token.startswith(KEY_PREFIXES[api]):
            return await self._cached(api, hash_key(token), self._by_key)
        if api == "crosmos" and token.count(".") == 2:
            try:
                claims = jwt.decode(token, self._jwt_secret, algorithms=["HS256"])
            except jwt.PyJWTError:
                raise Unauthorized() from None
            subject = claims.get("sub")
            if not isinstance(subject, str):
                raise Unauthorized()
            return await self._cached(api, "jwt:" + subject, self._by_name)
        raise Unauthorized()

    async def _cached(self, api: str, ref: str, lookup: Any) -> Principal:
        now = time.monotonic()
        hit = self._cache.get((api, ref))
        if hit is not None and hit[0] > now:
            return hit[1]
        tenant: Tenant | None = await lookup(api, ref)
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


def bearer_handler(api: str) -> type[BearerSecurityHandler]:
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
                principal = await authenticator.authenticate(
                    api, token, field_value(request.scope["headers"], ORGANIZATION_HEADER)
                )
                return {"sub": principal.tenant_id, "principal": principal}

            return verify

    Handler.__name__ = Handler.__qualname__ = f"{api.title()}BearerHandler"
    return Handler
