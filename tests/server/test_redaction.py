"""What the request log keeps of headers, query strings and bodies: never a credential."""

from __future__ import annotations

import json

import orjson

from pollable.handlers.registry import REGISTRY
from pollable.server.redaction import REDACTED, Redactor, scrub

REDACTOR = Redactor(
    fields=(name for api in REGISTRY for name in api.secret_fields),
    headers=(name for api in REGISTRY for name in api.secret_headers),
)


def test_credential_headers_are_redacted_and_remembered() -> None:
    found: list[str] = []
    kept = REDACTOR.headers(
        [
            (b"Authorization", b"Bearer csk_abcdefghijklmnop"),
            (b"Cookie", b"session=0123456789abcdef"),
            (b"X-Amz-Security-Token", b"FwoGZXIvYXdzEJr"),
            (b"X-Api-Key", b"key-1234567890"),
            (b"Accept", b"*/*"),
            (b"accept", b"text/html"),
            (b"X-Stainless-Retry-Count", b"1"),
        ],
        found,
    )
    assert kept == {
        "authorization": f"Bearer {REDACTED}",
        "cookie": REDACTED,
        "x-amz-security-token": REDACTED,
        "x-api-key": REDACTED,
        "accept": "*/*, text/html",
        "x-stainless-retry-count": "1",
    }
    assert "csk_abcdefghijklmnop" in found and "session=0123456789abcdef" in found


def test_fields_seen_before_are_kept_alike_and_credentials_never_remembered_as_plain() -> None:
    redactor = Redactor()
    fields = [
        (b"Host", b"sandbox"),
        (b"Authorization", b"Bearer csk_abcdefghijklmnop"),
        (b"Accept", b"*/*"),
        (b"accept", b"text/html"),
    ]
    first: list[str] = []
    kept = redactor.headers(fields, first)
    for _ in range(3):
        again: list[str] = []
        assert redactor.headers(fields, again) == kept
        assert again == first == ["csk_abcdefghijklmnop"]
    assert kept == {
        "host": "sandbox",
        "authorization": f"Bearer {REDACTED}",
        "accept": "*/*, text/html",
    }
    assert all(b"csk_" not in value for _, value in redactor._plain)


def test_the_fields_remembered_as_plain_are_bounded() -> None:
    from pollable.server.redaction import PLAIN_FIELDS, PLAIN_VALUE_BYTES

    redactor = Redactor()
    for n in range(3 * PLAIN_FIELDS):
        kept = redactor.headers([(b"X-Request-Number", str(n).encode())], [])
        assert kept == {"x-request-number": str(n)}
        assert len(redactor._plain) <= PLAIN_FIELDS
    long = b"v" * (PLAIN_VALUE_BYTES + 1)
    assert redactor.headers([(b"X-Long", long)], []) == {"x-long": long.decode()}
    assert (b"X-Long", long) not in redactor._plain


def test_every_captain_secret_field_is_redacted_at_any_depth_and_in_any_case() -> None:
    body = {
        "bucket_name": "acme",
        "aws_access_key_id": "AKIAABCDEFGHIJKLMNOP",
        "aws_secret_access_key": "s3cr3t/with/slashes/and+more",
        "nested": [{"Secret_Access_Key": "r2-secret-0123456789"}, {"account_key": None}],
        "service_account_json": json.dumps({"private_key": "-----BEGIN\nPK-0123456789\n"}),
        "custom_metadata": {"password": "hunter2hunter2", "note": "kept"},
    }
    found: list[str] = []
    kept = orjson.loads(REDACTOR.body(orjson.dumps(body), found))
    assert kept == {
        "bucket_name": "acme",
        "aws_access_key_id": REDACTED,
        "aws_secret_access_key": REDACTED,
        "nested": [{"Secret_Access_Key": REDACTED}, {"account_key": None}],
        "service_account_json": REDACTED,
        "custom_metadata": {"password": REDACTED, "note": "kept"},
    }
    # The JSON-escaped spelling is remembered too, to scrub it from text that quotes it.
    assert json.dumps(body["service_account_json"])[1:-1] in found


def test_a_body_without_credentials_is_kept_byte_for_byte() -> None:
    raw = b'{"space_id": "x",  "sources": [{"content": "my password is not a field"}]}'
    assert REDACTOR.body(raw, []) is raw


def test_a_body_that_is_not_json_but_names_a_credential_is_not_kept() -> None:
    assert REDACTOR.body(b"aws_secret_access_key=abc&bucket=x", []) == REDACTED.encode()
    assert REDACTOR.body(b'{"aws_secret_access_key": "abc", ', []) == REDACTED.encode()
    # An escaped field name is still the field.
    escaped = b'{"aws_secret\\u005faccess_key": "s3cr3t-value-here"}'
    assert orjson.loads(REDACTOR.body(escaped, [])) == {"aws_secret_access_key": REDACTED}
    assert REDACTOR.body(b"plain text", []) == b"plain text"


def test_new_keys_in_control_plane_replies_are_redacted() -> None:
    raw = orjson.dumps({"keys": [{"id": "key_1", "label": "csk_abcd", "key": "csk_abcdefgh"}]})
    assert orjson.loads(REDACTOR.body(raw, [])) == {
        "keys": [{"id": "key_1", "label": "csk_abcd", "key": REDACTED}]
    }


def test_query_credentials_and_known_values_are_scrubbed() -> None:
    found: list[str] = []
    assert REDACTOR.query("a=1&api_key=abcdefghijkl&b=", found) == f"a=1&api_key={REDACTED}&b="
    assert REDACTOR.query("files_limit=5", found) == "files_limit=5"
    assert scrub("echo abcdefghijkl back", found) == f"echo {REDACTED} back"
    # Short values are not scrubbed from other text: they would match too much.
    short: list[str] = []
    REDACTOR.query("token=abc", short)
    assert short == []
