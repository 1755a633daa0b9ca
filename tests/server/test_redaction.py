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
