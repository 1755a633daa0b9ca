"""Reading requests and checking replies against one compiled operation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from urllib.parse import quote

import pytest

from pollable.handlers.registry import APIS
from pollable.server import contract
from pollable.server.operation import (
    MAX_BODY_DEPTH,
    Operation,
    Param,
    RequestInvalid,
    ResponseInvalid,
    compile_operations,
)
from pollable.server.validation import SchemaCompiler

ORG = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


@pytest.fixture(scope="module")
def operations() -> dict[str, Operation]:
    found = {}
    for name in ("crosmos", "captain"):
        for operation in compile_operations(contract.load(APIS[name]).document):
            found[operation.operation_id] = operation
    return found


def problems(call: Callable[[], object]) -> list[tuple[tuple[object, ...], str]]:
    with pytest.raises(RequestInvalid) as caught:
        call()
    return [(tuple(item["loc"]), item["type"]) for item in caught.value.items]


def test_every_operation_of_both_contracts_compiles(operations: dict[str, Operation]) -> None:
    assert len(operations) == 3 + 17
    assert all(op.secured for op in operations.values())


def test_query_parameters_are_coerced_defaulted_and_bounded(
    operations: dict[str, Operation],
) -> None:
    get = operations["get_job_status_v2"]
    headers = [(b"x-organization-id", ORG.encode())]
    params = get.read_params({"job_id": "j"}, b"", headers)
    assert params == {
        "job_id": "j",
        "x_organization_id": ORG,
        "files_limit": 50,
        "files_cursor": None,
        "prefer": None,  # the sandbox's `Prefer: fault=...` (captain.faults.json)
        "if_none_match": None,
    }
    assert get.read_params({"job_id": "j"}, b"files_limit=500", headers)["files_limit"] == 500
    assert problems(lambda: get.read_params({"job_id": "j"}, b"files_limit=501", headers)) == [
        (("query", "files_limit"), "less_than_equal")
    ]
    assert problems(lambda: get.read_params({"job_id": "j"}, b"files_limit=ten", headers)) == [
        (("query", "files_limit"), "int_parsing")
    ]


def test_headers_are_case_insensitive_and_required_ones_reported(
    operations: dict[str, Operation],
) -> None:
    listing = operations["list_jobs_v2"]
    assert listing.read_params({}, b"", [(b"X-Organization-Id", ORG.encode())])["limit"] == 50
    assert problems(lambda: listing.read_params({}, b"", [])) == [
        (("header", "x-organization-id"), "missing")
    ]
    assert problems(lambda: listing.read_params({}, b"", [(b"x-organization-id", b"acme")])) == [
        (("header", "x-organization-id"), "uuid_parsing")
    ]


def test_path_uuid_is_asserted(operations: dict[str, Operation]) -> None:
    get = operations["get_job_status_api_v1_jobs__job_id__get"]
    assert problems(lambda: get.read_params({"job_id": "not-a-uuid"}, b"", [])) == [
        (("path", "job_id"), "uuid_parsing")
    ]


def test_bodies_are_read_the_way_fastapi_reads_them(operations: dict[str, Operation]) -> None:
    ingest = operations["ingest_sources_api_v1_sources_post"]
    assert problems(lambda: ingest.read_body(b"", "application/json")) == [(("body",), "missing")]
    assert problems(lambda: ingest.read_body(b"{", "application/json")) == [
        (("body", 1), "json_invalid")
    ]
    assert problems(lambda: ingest.read_body(b"{}", "text/plain")) == [
        (("body",), "model_attributes_type")
    ]
    body = b'{"space_id": "%s", "sources": [{"content": "hi"}]}' % ORG.encode()
    assert (
        ingest.read_body(body, "application/json; charset=utf-8")["sources"][0]["content"] == "hi"
    )
    assert ingest.read_body(body, "application/vnd.api+json")["space_id"] == ORG
    assert ingest.read_body(body, None)["space_id"] == ORG


def test_replies_must_be_declared_and_valid(operations: dict[str, Operation]) -> None:
    get = operations["get_job_status_api_v1_jobs__job_id__get"]
    get.check_response(404, {"detail": "Job not found"}, {})
    with pytest.raises(ResponseInvalid, match="not declared"):
        get.check_response(409, {"detail": "x"}, {})
    job = {
        "job_id": ORG,
        "status": "pending",
        "source_ids": [1],
        "created_at": "2026-01-01T00:00:00Z",
    }
    get.check_response(200, job, TAGGED)
    with pytest.raises(ResponseInvalid):
        get.check_response(200, {**job, "job_id": "zzz"}, TAGGED)
    with pytest.raises(ResponseInvalid):
        get.check_response(200, {**job, "created_at": "yesterday"}, TAGGED)


TAGGED = {"ETag": '"0123456789abcdef0123456789abcdef"'}


def test_replies_carry_their_declared_headers(operations: dict[str, Operation]) -> None:
    """Required headers must be there (but ``Request-Id``, which the transport adds to
    every response after the check), and every declared header must match its schema."""
    get = operations["get_job_status_v2"]
    job = {"detail": "Not authenticated"}
    get.check_response(401, job, {"WWW-Authenticate": "Bearer"})
    with pytest.raises(ResponseInvalid, match="www-authenticate is missing"):
        get.check_response(401, job, {})
    get.check_response(304, None, {"etag": '"abc"', "Retry-After": "60"})
    get.check_response(304, None, {"ETag": '"abc"'})  # Retry-After is optional
    with pytest.raises(ResponseInvalid, match="etag is missing"):
        get.check_response(304, None, {"Retry-After": "5"})
    for bad in ("0", "61", "5.5", " 5", "+5", "five", ""):
        with pytest.raises(ResponseInvalid, match="retry-after"):
            get.check_response(304, None, {"ETag": '"abc"', "Retry-After": bad})
    for bad in ("abc", 'W/"abc"', '"a"b"'):
        with pytest.raises(ResponseInvalid, match="etag"):
            get.check_response(304, None, {"ETag": bad})
    assert all(
        header.name != "request-id"
        for headers in get.response_headers.values()
        for header in headers
    )


def test_integers_are_read_as_pydantic_reads_them(operations: dict[str, Operation]) -> None:
    """FastAPI (pydantic, lax mode) reads ASCII digits with an optional sign, ``_`` between
    digits and a zero fraction, whitespace around; nothing else is an integer."""
    listing = operations["list_jobs_v2"]
    headers = [(b"x-organization-id", ORG.encode())]

    def read(raw: str) -> dict[str, object]:
        return listing.read_params({}, b"limit=" + quote(raw).encode(), headers)

    def limit(raw: str) -> object:
        return read(raw)["limit"]

    for raw in ("12", " 12\t", "+12", "012", "1_2", "12.0", "\u300012"):
        assert limit(raw) == 12, raw
    for raw in (
        "\u0661\u0662", "\uff11\uff12", "\u00b2", "\u0663", "\U0001d7d9", "1__2", "_1", "12.5",
        "1e2", "0x10", "", " ", "1 2", "12.", "\x1c12",
    ):  # fmt: skip
        assert problems(partial(read, raw)) == [(("query", "limit"), "int_parsing")], raw


def test_integers_beyond_the_schema_are_422_never_an_error(
    operations: dict[str, Operation],
) -> None:
    listing = operations["list_jobs_v2"]
    headers = [(b"x-organization-id", ORG.encode())]

    def read(query: str) -> object:
        return listing.read_params({}, query.encode(), headers)

    for digits in (20, 25, 400, 4300):
        assert problems(partial(read, "limit=" + "9" * digits)) == [
            (("query", "limit"), "less_than_equal")
        ]
        assert problems(partial(read, "offset=-" + "9" * digits)) == [
            (("query", "offset"), "greater_than_equal")
        ]
    # Leading zeros do not count; pydantic refuses more than 4,300 significant digits.
    assert read("offset=" + "0" * 5000 + "7")["offset"] == 7
    for query in ("limit=" + "9" * 4301, "offset=-" + "1" * 100_000):
        assert [kind for _, kind in problems(partial(read, query))] == ["int_parsing_size"]


def test_numbers_are_ascii_and_finite() -> None:
    compiler = SchemaCompiler({})
    param = Param("ratio", "query", "ratio", False, "number", None, compiler.compile({}))

    def refused(raw: str) -> str | None:
        _, problem = param.coerce(raw)
        return None if problem is None else str(problem["type"])

    assert param.coerce(" 1.5 ") == (1.5, None)
    assert param.coerce("-2") == (-2.0, None)
    for raw in ("\u0661.\u0665", "\uff11", "one", ""):
        assert refused(raw) == "float_parsing", raw
    for raw in ("inf", "-Infinity", "nan", "1e400"):
        assert refused(raw) == "finite_number", raw


def _nested(depth: int) -> bytes:
    """A Crosmos ingest body nested ``depth`` levels deep (its ``meta`` takes the rest)."""
    meta = b'{"a": ' * (depth - 3) + b"1" + b"}" * (depth - 3)
    return b'{"space_id": "%s", "sources": [{"content": "x", "meta": %s}]}' % (ORG.encode(), meta)


def test_bodies_nest_at_most_the_sandbox_bound(operations: dict[str, Operation]) -> None:
    """The bound sits far above the contracts' shapes and below what the JSON encoder (the
    idempotency fingerprint) and the schema validator's error reports can take (~255)."""
    ingest = operations["ingest_sources_api_v1_sources_post"]

    def read(raw: bytes) -> object:
        return ingest.read_body(raw, "application/json")

    assert 16 <= MAX_BODY_DEPTH <= 200
    assert ingest.read_body(_nested(MAX_BODY_DEPTH), None)["space_id"] == ORG
    for depth in (MAX_BODY_DEPTH + 1, 254, 255, 256, 300, 1000):
        assert problems(partial(read, _nested(depth))) == [(("body",), "json_invalid")], depth
    for raw in (b"[" * 300 + b"]" * 300, b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000):
        assert [kind for _, kind in problems(partial(read, raw))] == ["json_invalid"]
    # Wide is not deep: many brackets side by side are read (and judged by the schema).
    wide = b"[" + b",".join([b"[[]]"] * 1000) + b"]"
    assert problems(partial(read, wide)) == [(("body",), "dict_type")]
