"""What a cloud would refuse: credentials and bucket names that cannot work.

Upstream, every credential and bucket name is a plain string: the request is accepted and
the job's scan is what fails. So it is here: the contract bounds only sizes, and a value
below that no provider would take makes the job fail at ``scanning`` with an error code.
One table per provider; the first rule a request breaks decides the failure. Messages
name the field, never its value: credentials are not echoed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pollable.lifecycle.model import Failure, Stage

INVALID_CREDENTIALS = "invalid_credentials"
INVALID_BUCKET_NAME = "invalid_bucket_name"


@dataclass(frozen=True)
class Rule:
    field: str
    valid: Callable[[str], bool]
    code: str
    #: Completes "The <field> is not usable: ...".
    expected: str

    def failure(self) -> Failure:
        return Failure(
            Stage.SCANNING, self.code, f"The {self.field} is not usable: {self.expected}"
        )


def _matches(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda value: compiled.fullmatch(value) is not None


def _service_account(raw: str) -> bool:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(parsed, dict)
        and parsed.get("type") == "service_account"
        and all(
            isinstance(parsed.get(k), str) and parsed[k] for k in ("client_email", "private_key")
        )
    )


def _s3_bucket(name: str) -> bool:
    return _matches(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")(name) and ".." not in name


def _gcs_bucket(name: str) -> bool:
    """3-63 characters, or up to 222 in dot-separated parts of at most 63."""
    if not _matches(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")(name) or ".." in name:
        return False
    return len(name) <= 63 or ("." in name and all(len(p) <= 63 for p in name.split(".")))


_AWS = (
    Rule(
        "aws_access_key_id",
        _matches(r"(AKIA|ASIA)[A-Z0-9]{16}"),
        INVALID_CREDENTIALS,
        "expected AKIA or ASIA followed by 16 uppercase letters or digits",
    ),
    Rule(
        "aws_secret_access_key",
        _matches(r"[A-Za-z0-9/+=]{40}"),
        INVALID_CREDENTIALS,
        "expected 40 characters of A-Z, a-z, 0-9, '/', '+' and '='",
    ),
    Rule(
        "bucket_name",
        _s3_bucket,
        INVALID_BUCKET_NAME,
        "S3 bucket names are 3-63 characters of a-z, 0-9, '.' and '-', "
        "starting and ending with a letter or digit",
    ),
)

#: Per provider, in the order a scan meets them: credentials, then the bucket.
RULES: Mapping[str, tuple[Rule, ...]] = {
    "s3": _AWS,
    "gcs": (
        Rule(
            "service_account_json",
            _service_account,
            INVALID_CREDENTIALS,
            "expected JSON with type 'service_account', client_email and private_key",
        ),
        Rule(
            "bucket_name",
            _gcs_bucket,
            INVALID_BUCKET_NAME,
            "GCS bucket names are 3-63 characters of a-z, 0-9, '.', '_' and '-' (up to 222 "
            "with dots), starting and ending with a letter or digit",
        ),
    ),
    "azure": (
        Rule(
            "account_name",
            _matches(r"[a-z0-9]{3,24}"),
            INVALID_CREDENTIALS,
            "expected 3-24 lowercase letters or digits",
        ),
        Rule(
            "account_key",
            _matches(r"[A-Za-z0-9+/]{86}=="),
            INVALID_CREDENTIALS,
            "expected 88 base64 characters (64 bytes)",
        ),
        Rule(
            "container_name",
            _matches(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}"),
            INVALID_BUCKET_NAME,
            "container names are 3-63 characters of a-z, 0-9 and single '-', "
            "starting and ending with a letter or digit",
        ),
    ),
    "r2": (
        Rule(
            "account_id",
            _matches(r"[0-9a-f]{32}"),
            INVALID_CREDENTIALS,
            "expected 32 lowercase hex characters",
        ),
        Rule(
            "access_key_id",
            _matches(r"[0-9a-f]{32}"),
            INVALID_CREDENTIALS,
            "expected 32 lowercase hex characters",
        ),
        Rule(
            "secret_access_key",
            _matches(r"[0-9a-f]{64}"),
            INVALID_CREDENTIALS,
            "expected 64 lowercase hex characters",
        ),
        Rule(
            "bucket_name",
            _matches(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"),
            INVALID_BUCKET_NAME,
            "R2 bucket names are 3-63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit",
        ),
    ),
}


def scan_failure(provider: str, body: Mapping[str, Any]) -> Failure | None:
    """The failure the cloud's scan would end in, or None if nothing here stops it."""
    for rule in RULES.get(provider, ()):
        value = body.get(rule.field)
        if isinstance(value, str) and not rule.valid(value):
            return rule.failure()
    return None
