"""Dashboard sessions: a signed cookie, and the CSRF token of its forms.

A session is a cookie the server signs (HMAC-SHA256 with a key derived from the store's
JWT secret, so every process on one store accepts it): the credential's issuer, its
SHA-256, an expiry and a random nonce. Nothing is kept server-side, and the credential
itself is in no cookie, URL, page or log: the digest is what the store already keeps, and
only the raw key authenticates an API request. Each request looks the digest up again, so
a revoked key ends its sessions at once. The cookie is HttpOnly, SameSite=Strict, scoped to
the dashboard's path (and Secure over HTTPS); a form carries a token derived from the
nonce, and a POST whose Origin is another site's is refused as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

COOKIE = "pollable_session"
#: Before sign-in: a nonce whose token the sign-in form must carry (login CSRF).
SIGNIN_COOKIE = "pollable_signin"
#: Seconds a session lasts.
MAX_AGE = 8 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, data: str) -> str:
    return _b64(hmac.digest(key, f"{purpose}|{data}".encode(), hashlib.sha256))


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def token_for(key: bytes, nonce: str) -> str:
    """The CSRF token of a session's (or a sign-in page's) forms."""
    return _mac(key, "csrf", nonce)


def token_matches(key: bytes, nonce: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(token_for(key, nonce), sent)


@dataclass(frozen=True)
class Session:
    #: The job API that issued the key (None: the admin token), and the key's SHA-256.
    issuer: str | None
    digest: str
    nonce: str
    expires: float

    def seal(self, key: bytes) -> str:
        payload = _b64(orjson.dumps([self.issuer, self.digest, self.nonce, self.expires]))
        return f"{payload}.{_mac(key, 'session', payload)}"

    @staticmethod
    def unseal(key: bytes, value: str | None, now: float) -> Session | None:
        """The session a cookie holds, if the server signed it and it has not expired."""
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(_mac(key, "session", payload), mac):
            return None
        try:
            issuer, digest, nonce, expires = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError, TypeError):
            return None
        if not isinstance(expires, int | float) or expires <= now:
            return None
        if not (issuer is None or isinstance(issuer, str)) or not isinstance(digest, str):
            return None
        if not isinstance(nonce, str):
            return None
        return Session(issuer, digest, nonce, float(expires))
