"""A request's header fields, read one way by everything that reads them.

- RFC 9110 section 5.5: whitespace (SP, HTAB) around a field value is not part of it.
  h11 strips it; other HTTP servers, proxies and test clients may not.
- A field that is not a list (``Authorization``, ``X-Organization-ID``, ...) appears once.
  When a client repeats one, its first field line is the value: that is what Starlette's
  ``Headers.get``, and so FastAPI upstream, read. (Joining the lines with ", ", as RFC
  9110 section 5.3 allows for list fields, would refuse requests the upstream accepts.)
  Authentication and validation both read through this module, so they never disagree.

Values are decoded as ISO-8859-1, as ASGI servers hand them over.
"""

from __future__ import annotations

from collections.abc import Iterable

Headers = Iterable[tuple[bytes, bytes]]
#: Optional whitespace: SP and HTAB only (RFC 9110 section 5.6.3).
OWS = " \t"


def field_value(headers: Headers, name: str) -> str | None:
    """The value of the header field ``name`` (any case), or None if it is absent."""
    wanted = name.lower().encode("latin-1")
    for key, value in headers:
        if key.lower() == wanted:
            return value.decode("latin-1").strip(OWS)
    return None


def first_values(headers: Headers) -> dict[str, str]:
    """Every field's value by lower-case name, as ``field_value`` reads each one."""
    found: dict[str, str] = {}
    for key, value in headers:
        found.setdefault(key.decode("latin-1").lower(), value.decode("latin-1").strip(OWS))
    return found
