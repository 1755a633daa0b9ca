"""The rules for what a cloud would refuse: one table per provider, tied to the contract."""

from __future__ import annotations

from typing import Any

import pytest

from pollable.handlers.captain.credentials import (
    INVALID_BUCKET_NAME,
    INVALID_CREDENTIALS,
    RULES,
    Rule,
    scan_failure,
)
from pollable.handlers.captain.jobs import INDEX_KINDS
from pollable.handlers.registry import APIS
from pollable.lifecycle.model import Stage
from pollable.server import contract
from tests.handlers.captain.test_jobs import BODIES, PATHS

#: Values a provider takes, and values it refuses, per (provider, field).
ACCEPTED = {
    ("s3", "bucket_name"): ["abc", "acme.docs-2024", "a" * 63],
    ("gcs", "bucket_name"): ["abc", "my_bucket", "a" * 63, ".".join(["a" * 63] * 3) + ".ab"],
    ("r2", "bucket_name"): ["abc", "acme-docs", "a" * 63],
    ("azure", "container_name"): ["abc", "docs-2024", "a" * 63],
    ("azure", "account_name"): ["abc", "acmestore2024", "a" * 24],
    ("s3", "aws_access_key_id"): ["AKIAIOSFODNN7EXAMPLE", "ASIA" + "Z9" * 8],
}
REFUSED = {
    ("s3", "bucket_name"): ["", "ab", "Acme", "a_b", "-ab", "ab-", "a..b", "a" * 64],
    ("gcs", "bucket_name"): ["", "ab", "Acme", "-ab", "a" * 64, "a" * 64 + ".b", "a" * 223],
    ("r2", "bucket_name"): ["", "ab", "a.b.c", "a_b", "a" * 64],
    ("azure", "container_name"): ["", "ab", "a--b", "-ab", "ab-", "a_b", "a" * 64],
    ("azure", "account_name"): ["", "ab", "Acme", "a-b", "a" * 25],
    ("azure", "account_key"): ["", "A" * 88, "A" * 86 + "=", "!" * 86 + "=="],
    ("s3", "aws_access_key_id"): ["", "AKIB" + "A" * 16, "AKIA" + "a" * 16, "AKIA" + "A" * 15],
    ("s3", "aws_secret_access_key"): ["", "a" * 39, "a" * 41, "a" * 39 + " "],
    ("gcs", "service_account_json"): ["", "{}", "[1]", '{"type": "service_account"}'],
    ("r2", "account_id"): ["", "z" * 32, "0" * 31, "A" * 32],
    ("r2", "access_key_id"): ["", "0" * 33, "g" * 32],
    ("r2", "secret_access_key"): ["", "0" * 63, "F" * 64],
}


def _rule(provider: str, field: str) -> Rule:
    (rule,) = [r for r in RULES[provider] if r.field == field]
    return rule


def test_the_fixtures_cover_every_rule() -> None:
    assert set(REFUSED) == {(p, r.field) for p, rules in RULES.items() for r in rules}


@pytest.mark.parametrize("target", sorted(PATHS.values()))
def test_valid_requests_pass(target: str) -> None:
    assert scan_failure(target.split("/")[0], BODIES[target]) is None


@pytest.mark.parametrize(("provider", "field"), sorted(ACCEPTED))
def test_what_a_provider_takes(provider: str, field: str) -> None:
    for value in ACCEPTED[(provider, field)]:
        assert _rule(provider, field).valid(value), value


@pytest.mark.parametrize(("provider", "field"), sorted(REFUSED))
def test_what_a_provider_refuses(provider: str, field: str) -> None:
    names = ("bucket_name", "container_name")
    expected = INVALID_BUCKET_NAME if field in names else INVALID_CREDENTIALS
    for value in REFUSED[(provider, field)]:
        failure = scan_failure(provider, {**BODIES[provider], field: value})
        assert failure is not None, value
        assert (failure.stage, failure.code) == (Stage.SCANNING, expected)
        assert field in failure.message
        if len(value) > 3:
            assert value not in failure.message, "a refused value is echoed"


def test_absent_and_non_string_values_are_the_contracts_business() -> None:
    assert scan_failure("s3", {}) is None
    assert scan_failure("url", {"bucket_name": "NOT A BUCKET"}) is None
    assert scan_failure("text", {}) is None


def test_every_rule_names_a_required_string_of_its_providers_operations() -> None:
    """The contract leaves these fields plain strings (no pattern), as upstream does."""
    document = contract.load(APIS["captain"]).document
    schemas: dict[str, Any] = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return resolve(schemas[ref.rsplit("/", 1)[-1]]) if ref else schema

    for item in document["paths"].values():
        operation = item.get("post", {})
        kind = INDEX_KINDS.get(operation.get("operationId", ""))
        if kind is None or kind.provider not in RULES:
            continue
        body = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
        for rule in RULES[kind.provider]:
            assert rule.field in body["required"], (kind, rule.field)
            field = resolve(body["properties"][rule.field])
            assert field["type"] == "string" and "pattern" not in field, (kind, rule.field)
            assert "minLength" not in field, (kind, rule.field)
