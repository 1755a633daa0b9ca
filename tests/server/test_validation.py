"""Pins the 3.1 semantics of request and response validation, and the error items."""

from __future__ import annotations

from typing import Any

import pytest

from pollable.server.validation import MAX_ERRORS, SchemaCompiler, errors

DOCUMENT: dict[str, Any] = {
    "components": {
        "schemas": {
            "Job": {
                "type": "object",
                "properties": {
                    "job_id": {"type": "string", "format": "uuid"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": {
                        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]
                    },
                    "note": {"type": ["string", "null"], "maxLength": 3},
                    "status": {"type": "string", "const": "pending"},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "count": {"type": "integer", "minimum": 1, "maximum": 5},
                    "tags": {"type": "array", "maxItems": 1},
                    "secret": {"type": "string", "pattern": "^AKIA[A-Z0-9]{16}$"},
                    "session": {"anyOf": [{"type": "string", "maxLength": 2}, {"type": "null"}]},
                },
                "required": ["job_id"],
                "additionalProperties": False,
            }
        }
    }
}
UUID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


@pytest.fixture(scope="module")
def job() -> Any:
    return SchemaCompiler(DOCUMENT).compile({"$ref": "#/components/schemas/Job"})


def test_formats_are_asserted(job: Any) -> None:
    assert not job.is_valid({"job_id": "zzz"})
    assert not job.is_valid({"job_id": UUID, "created_at": "yesterday"})
    assert job.is_valid({"job_id": UUID, "created_at": "2026-01-02T03:04:05.123456Z"})


def test_null_through_anyof_and_type_arrays(job: Any) -> None:
    assert job.is_valid({"job_id": UUID, "started_at": None, "note": None})
    assert job.is_valid({"job_id": UUID, "started_at": "2026-01-02T03:04:05Z", "note": "abc"})
    assert not job.is_valid({"job_id": UUID, "started_at": 5})


def test_const_is_a_31_keyword(job: Any) -> None:
    assert job.is_valid({"job_id": UUID, "status": "pending"})
    assert not job.is_valid({"job_id": UUID, "status": "done"})


@pytest.mark.parametrize(
    ("instance", "loc", "kind"),
    [
        ({}, ["body", "job_id"], "missing"),
        ({"job_id": "zzz"}, ["body", "job_id"], "uuid_parsing"),
        ({"job_id": UUID, "created_at": "x"}, ["body", "created_at"], "datetime_parsing"),
        ({"job_id": UUID, "note": "abcd"}, ["body", "note"], "string_too_long"),
        ({"job_id": UUID, "kind": "c"}, ["body", "kind"], "enum"),
        ({"job_id": UUID, "count": 9}, ["body", "count"], "less_than_equal"),
        ({"job_id": UUID, "count": 0}, ["body", "count"], "greater_than_equal"),
        ({"job_id": UUID, "count": "1"}, ["body", "count"], "int_type"),
        ({"job_id": UUID, "tags": [1, 2]}, ["body", "tags"], "too_long"),
        ({"job_id": UUID, "status": "x"}, ["body", "status"], "literal_error"),
        ({"job_id": UUID, "extra": 1}, ["body", "extra"], "extra_forbidden"),
        ({"job_id": UUID, "secret": "nope"}, ["body", "secret"], "string_pattern_mismatch"),
        # The nullable string's own constraint is reported, not "matches no shape".
        ({"job_id": UUID, "session": "abc"}, ["body", "session"], "string_too_long"),
    ],
)
def test_errors_are_fastapi_items(job: Any, instance: Any, loc: list[Any], kind: str) -> None:
    items = errors(job, instance, ("body",))
    assert [(item["loc"], item["type"]) for item in items] == [(loc, kind)]
    assert all(isinstance(item["msg"], str) and item["msg"] for item in items)


def test_one_item_per_unexpected_field(job: Any) -> None:
    items = errors(job, {"job_id": UUID, "x": 1, "y": 2}, ("body",))
    assert sorted(tuple(item["loc"]) for item in items) == [("body", "x"), ("body", "y")]


def test_messages_never_quote_the_offending_value(job: Any) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    items = errors(job, {"job_id": secret, "secret": secret, "note": secret}, ("body",))
    assert items and all(secret not in str(item) for item in items)


def test_error_lists_are_bounded() -> None:
    validator = SchemaCompiler({}).compile({"type": "array", "items": {"type": "string"}})
    assert len(errors(validator, list(range(500)), ("body",))) == MAX_ERRORS


def test_references_resolve_through_the_components_they_reach() -> None:
    """A validator carries what its schema reaches, transitively (and names with ``/`` in
    them, escaped ``~1``); a component nobody refers to is left out."""
    document = {
        "components": {
            "schemas": {
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/a~1b"}}
                    },
                },
                "a/b": {"$ref": "#/components/schemas/Leaf"},
                "Leaf": {"type": "integer", "maximum": 3},
                "Unused": {"$ref": "#/components/schemas/Missing"},
            }
        }
    }
    compiler = SchemaCompiler(document)
    page = compiler.compile({"$ref": "#/components/schemas/Page"})
    assert page.is_valid({"items": [1, 3]})
    assert errors(page, {"items": [1, 4]}, ("body",)) == [
        {
            "loc": ["body", "items", 1],
            "msg": "Input should be less than or equal to 3",
            "type": "less_than_equal",
        }
    ]
    assert set(compiler._reached({"$ref": "#/components/schemas/Page"})["schemas"]) == {
        "Page",
        "a/b",
        "Leaf",
    }


def test_a_schema_met_again_reuses_its_validator() -> None:
    compiler = SchemaCompiler(DOCUMENT)
    first = compiler.compile({"$ref": "#/components/schemas/Job", "description": "x"})
    assert compiler.compile({"description": "x", "$ref": "#/components/schemas/Job"}) is first
    assert compiler.compile({"$ref": "#/components/schemas/Job"}) is not first
