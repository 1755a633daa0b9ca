"""Credentials out of everything the request log keeps: headers, query strings and bodies.

What counts as a credential comes from the served APIs' descriptors (``secret_fields``,
``secret_headers``) and a few names every API shares (``Authorization``, cookies,
``password``, ``token``, ...). A redacted value becomes ``"[redacted]"``; every value
redacted this way is also scrubbed from whatever else is kept (a body that quotes a key
back, a query string), so a credential sent in a known place never reaches the store.

Request bodies are parsed as JSON and walked (fields are matched case-insensitively, at any
depth); one that is not JSON but could name a credential field is not kept at all. Reply
bodies are the server's own and never echo a credential it was sent (tests hold it to
that), so the log walks only the replies whose contract can carry one (the control plane's
new keys); in the others it only scrubs the values redacted from the request's body and
query, at the cost of one substring search each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote_plus

import orjson

REDACTED = "[redacted]"

#: JSON fields (and query parameters) that hold credentials in any API.
COMMON_FIELDS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "private_key",
        "authorization",
    }
)
#: Headers that hold credentials in any API; and words that make any header one.
COMMON_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
HEADER_WORDS = ("token", "secret", "passw", "api-key", "apikey", "credential", "session")
#: Values shorter than this are not scrubbed from other text: they would match too much.
MIN_SCRUB = 8
#: Header fields without credentials remembered as kept (each at most this long).
PLAIN_FIELDS, PLAIN_VALUE_BYTES = 512, 256


class Redactor:
    """Built once from the names of every served API's secret fields and headers."""

    def __init__(self, fields: Iterable[str] = (), headers: Iterable[str] = ()) -> None:
        self.fields = frozenset(name.lower() for name in (*COMMON_FIELDS, *fields))
        self.secret_headers = frozenset(name.lower() for name in (*COMMON_HEADERS, *headers))
        words = {name.encode() for name in self.fields}
        # A word that holds another word is found whenever that one is.
        self._words = tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))
        self._header_names: dict[bytes, tuple[str, bool]] = {}
        #: Header fields seen before that hold no credential, as they are kept: a client
        #: sends the same ones with every request (``Host``, ``User-Agent``, its SDK's).
        self._plain: dict[tuple[bytes, bytes], tuple[str, str]] = {}

    # -- headers ------------------------------------------------------------------------

    def headers(self, raw: Sequence[tuple[bytes, bytes]], found: list[str]) -> dict[str, str]:
        """Headers by lower-case name, repeated ones joined; credentials redacted (an
        ``Authorization`` keeps its scheme: ``Bearer [redacted]``) and added to ``found``."""
        kept: dict[str, str] = {}
        names, plain = self._header_names, self._plain
        for field in raw:
            seen = plain.get(field)
            if seen is not None:
                name, value = seen
                kept[name] = f"{kept[name]}, {value}" if name in kept else value
                continue
            raw_name, raw_value = field
            known = names.get(raw_name)
            if known is None:
                known = self._learn(raw_name)
            name, secret = known
            value = raw_value.decode("latin-1")
            if not secret and len(raw_value) <= PLAIN_VALUE_BYTES:
                if len(plain) >= PLAIN_FIELDS:  # values vary without end (ids, dates)
                    plain.clear()
                plain[field] = (name, value)
            elif secret:
                scheme, space, credential = value.partition(" ")
                if space and scheme.isalpha() and credential.strip():
                    remember(found, credential.strip())
                    value = f"{scheme} {REDACTED}"
                else:
                    remember(found, value)
                    value = REDACTED
            kept[name] = f"{kept[name]}, {value}" if name in kept else value
        return kept

    def _learn(self, raw: bytes) -> tuple[str, bool]:
        if len(self._header_names) > 1024:  # clients may invent names without end
            self._header_names.clear()
        name = raw.decode("latin-1").lower()
        secret = name in self.secret_headers or any(w in name for w in HEADER_WORDS)
        known = self._header_names[raw] = (name, secret)
        return known

    # -- bodies and query strings -------------------------------------------------------

    def may_name_a_secret(self, raw: bytes) -> bool:
        """Whether bytes that are not JSON could still name a credential field."""
        lowered = raw.lower()
        return any(word in lowered for word in self._words)

    def body(self, raw: bytes, found: list[str]) -> bytes:
        """``raw`` with the value of every credential field redacted (at any depth), and
        those values added to ``found``; ``[redacted]`` for a body that is not JSON and
        could name a credential field."""
        if not raw:
            return raw
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return REDACTED.encode() if self.may_name_a_secret(raw) else raw
        kept, changed = self._json(value, found)
        return orjson.dumps(kept) if changed else raw

    def _json(self, value: Any, found: list[str]) -> tuple[Any, bool]:
        """The value with credential fields redacted, and whether any was."""
        if isinstance(value, dict):
            kept, changed = {}, False
            for name, item in value.items():
                if name.lower() in self.fields and item is not None:
                    for secret in _strings(item):
                        remember(found, secret)
                    kept[name], changed = REDACTED, True
                else:
                    kept[name], inner = self._json(item, found)
                    changed = changed or inner
            return kept, changed
        if isinstance(value, list):
            items = [self._json(item, found) for item in value]
            return [item for item, _ in items], any(inner for _, inner in items)
        return value, False

    def query(self, raw: str, found: list[str]) -> str:
        """The query string with the values of credential parameters redacted (the rest of
        it as sent)."""
        if not raw:
            return raw
        parts = raw.split("&")
        for i, part in enumerate(parts):
            name, _, value = part.partition("=")
            if unquote_plus(name).lower() in self.fields:
                remember(found, unquote_plus(value))
                parts[i] = f"{name}={REDACTED}"
        return "&".join(parts)


def remember(found: list[str], secret: str) -> None:
    """Add a credential (and its JSON-escaped spelling) to the values to scrub."""
    if len(secret) < MIN_SCRUB:
        return
    found.append(secret)
    escaped = orjson.dumps(secret).decode()[1:-1]
    if escaped != secret:
        found.append(escaped)


def scrub(text: str, found: Sequence[str]) -> str:
    """``text`` with every credential in ``found`` replaced by ``[redacted]``."""
    for secret in found:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    else:
        yield str(value)
