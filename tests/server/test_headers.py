"""One reading of a request's header fields, for authentication and validation alike."""

from __future__ import annotations

from pollable.server.headers import field_value, first_values

HEADERS = [
    (b"authorization", b"Bearer key \t"),
    (b"x-organization-id", b" first"),
    (b"X-Organization-ID", b"second"),
    (b"prefer", b"\t"),
]


def test_the_first_field_line_without_surrounding_whitespace() -> None:
    assert field_value(HEADERS, "Authorization") == "Bearer key"
    assert field_value(HEADERS, "x-organization-id") == "first"
    assert field_value(HEADERS, "prefer") == ""
    assert field_value(HEADERS, "idempotency-key") is None
    assert first_values(HEADERS) == {
        "authorization": "Bearer key",
        "x-organization-id": "first",
        "prefer": "",
    }


def test_only_sp_and_htab_are_whitespace_and_bytes_are_latin_1() -> None:
    headers = [(b"a", b"\x0bv\xa0"), (b"b", "caf\u00e9".encode())]
    assert field_value(headers, "a") == "\x0bv\xa0"
    assert field_value(headers, "b") == "caf\u00c3\u00a9"
