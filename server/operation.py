"""Each operation of a contract, compiled at start-up: how to read and check its request
and how to check and write its responses. Nothing here compiles a schema per request."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs
import orjson

from .headers import first_values
from .validation import ErrorItem, SchemaCompiler, errors

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: An integer as pydantic (FastAPI's validation, lax mode) reads one from a string: ASCII
#: digits only (``int()`` and ``\d`` would take any script's digits), an optional sign,
#: single ``_`` between digits and a zero fraction allowed.
_INTEGER = re.compile(r"([+-]?)([0-9](?:_?[0-9])*)(?:\.0+)?")
#: pydantic refuses longer integers (``int_parsing_size``); so does ``int()`` (CPython's
#: conversion limit), which would otherwise raise on them.
_MAX_DIGITS = 4300
#: What pydantic strips around a value: Unicode White_Space (Rust's ``str::trim``), which
#: is not quite Python's ``str.strip()`` (that also strips U+001C..U+001F).
_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: Sandbox bound: how deep a request body may nest (``{"a": [1]}`` is 2 levels). The
#: contracts' own shapes take 4 (Crosmos ``meta`` is free-form below that); the JSON
#: encoder that fingerprints bodies and the validator's error reports stop near 255, and
#: the parser at 1,024. Deeper bodies are refused like unparsable ones, never a 500.
MAX_BODY_DEPTH = 128
#: What JSON nests in, as orjson parses it.
_CONTAINERS = (list, dict)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"


class RequestInvalid(Exception):
    """The request does not satisfy the contract; ``items`` are FastAPI error items."""

    def __init__(self, items: list[ErrorItem]) -> None:
        super().__init__(f"{len(items)} validation error(s)")
        self.items = items


class ResponseInvalid(Exception):
    """A response the contract does not allow: a bug in pollable, never sent."""


_HEADER_NUMBER = {
    "integer": re.compile(r"-?[0-9]{1,18}"),
    "number": re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,18})?"),
}
#: Response headers the transport adds to every response after the reply is checked
#: (``Request-Id``, by ``server/recording.py``): a reply need not carry them itself.
TRANSPORT_HEADERS = frozenset({"request-id"})


@dataclass(frozen=True)
class ResponseHeader:
    """A header a response declares, that the reply itself carries (not the transport's)."""

    #: Lower case.
    name: str
    required: bool
    json_type: str
    validator: jsonschema_rs.Validator

    def problem(self, raw: str | None) -> str | None:
        """Why ``raw`` (the reply's value, None if absent) breaks the contract, if it does."""
        if raw is None:
            return f"required header {self.name} is missing" if self.required else None
        value: Any = raw
        if self.json_type in ("integer", "number"):
            # As HTTP writes numbers in fields (``Retry-After: 5``): plain ASCII digits.
            if _HEADER_NUMBER[self.json_type].fullmatch(raw) is None:
                return f"header {self.name}: {raw!r} is not a plain {self.json_type}"
            value = int(raw) if self.json_type == "integer" else float(raw)
        if not self.validator.is_valid(value):
            return f"header {self.name}: {raw!r} breaks its schema"
        return None


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    #: The name handlers see: lower case, dashes as underscores (``x_organization_id``).
    key: str
    required: bool
    json_type: str
    default: Any
    validator: jsonschema_rs.Validator

    def coerce(self, raw: str) -> tuple[Any, ErrorItem | None]:
        loc = [self.location, self.name.lower() if self.location == "header" else self.name]
        match self.json_type:
            case "integer":
                return _integer(raw, loc)
            case "number":
                return _number(raw, loc)
            case "boolean":
                if raw.lower() in _TRUE | _FALSE:
                    return raw.lower() in _TRUE, None
                msg = "Input should be a valid boolean, unable to interpret input"
                return None, {"loc": loc, "msg": msg, "type": "bool_parsing"}
        return raw, None


def _integer(raw: str, loc: list[str]) -> tuple[int | None, ErrorItem | None]:
    match = _INTEGER.fullmatch(raw.strip(_WHITESPACE))
    if match is None:
        msg = "Input should be a valid integer, unable to parse string as an integer"
        return None, {"loc": loc, "msg": msg, "type": "int_parsing"}
    sign, digits = match.groups()
    digits = digits.replace("_", "").lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        msg = "Unable to parse input string as an integer, exceeded maximum size"
        return None, {"loc": loc, "msg": msg, "type": "int_parsing_size"}
    return int(sign + digits), None


def _number(raw: str, loc: list[str]) -> tuple[float | None, ErrorItem | None]:
    try:
        # float() takes any script's digits too; only ASCII is a number here.
        value = float(raw) if raw.isascii() else None
    except ValueError:
        value = None
    if value is None:
        msg = "Input should be a valid number, unable to parse string as a number"
        return None, {"loc": loc, "msg": msg, "type": "float_parsing"}
    if not math.isfinite(value):
        # JSON has no infinities; a contract's bounds cannot be checked against NaN.
        return None, {"loc": loc, "msg": "Input should be a finite number", "type": "finite_number"}
    return value, None


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    params: tuple[Param, ...]
    body: jsonschema_rs.Validator | None
    body_required: bool
    #: Declared status codes, each with its JSON body validator (None: no JSON body).
    responses: Mapping[int, jsonschema_rs.Validator | None]
    #: By status, the declared headers a reply must carry or may carry (checked if it
    #: does); the transport's own (``TRANSPORT_HEADERS``) are left out.
    response_headers: Mapping[int, tuple[ResponseHeader, ...]]
    #: Whether a security requirement applies (so a 401 is possible).
    secured: bool

    # -- requests ---------------------------------------------------------------------

    def read_params(
        self,
        path_params: Mapping[str, Any],
        query_string: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        fields: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Parameters by key, coerced, defaulted and validated; raises ``RequestInvalid``.
        ``fields``: ``headers`` as ``first_values`` reads them, if the caller has them."""
        query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        header_map = first_values(headers) if fields is None else fields
        found: dict[str, Any] = {}
        problems: list[ErrorItem] = []
        for param in self.params:
            if param.location == "path":
                raw = path_params.get(param.name)
            elif param.location == "query":
                raw = query.get(param.name)
            else:
                raw = header_map.get(param.name.lower())
            if raw is None:
                if param.required:
                    loc = [
                        param.location,
                        param.name.lower() if param.location == "header" else param.name,
                    ]
                    problems.append({"loc": loc, "msg": "Field required", "type": "missing"})
                found[param.key] = param.default
                continue
            value, problem = param.coerce(str(raw))
            if problem is not None:
                problems.append(problem)
                continue
            shown = param.name.lower() if param.location == "header" else param.name
            bad = errors(param.validator, value, (param.location, shown))
            if bad:
                problems.extend(bad)
                continue
            found[param.key] = value
        if problems:
            raise RequestInvalid(problems)
        return found

    def read_body(self, raw: bytes, content_type: str | None) -> Any:
        """The JSON body, validated; raises ``RequestInvalid`` the way FastAPI would."""
        if self.body is None:
            return None
        if not raw:
            if self.body_required:
                raise RequestInvalid(
                    [{"loc": ["body"], "msg": "Field required", "type": "missing"}]
                )
            return None
        if content_type is not None and not _is_json(content_type):
            raise RequestInvalid(
                [
                    {
                        "loc": ["body"],
                        "msg": _NOT_AN_OBJECT,
                        "type": "model_attributes_type",
                    }
                ]
            )
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RequestInvalid(
                [
                    {
                        "loc": ["body", exc.pos],
                        "msg": "JSON decode error",
                        "type": "json_invalid",
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from None
        if _deeper_than(MAX_BODY_DEPTH, raw, value):
            raise RequestInvalid(
                [
                    {
                        "loc": ["body"],
                        "msg": "JSON decode error",
                        "type": "json_invalid",
                        "ctx": {
                            "error": f"nested deeper than {MAX_BODY_DEPTH} levels (a sandbox bound)"
                        },
                    }
                ]
            )
        bad = errors(self.body, value, ("body",))
        if bad:
            raise RequestInvalid(bad)
        return value

    # -- responses --------------------------------------------------------------------

    def check_response(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        """Raises ``ResponseInvalid`` unless ``status`` is declared, ``body`` matches its
        schema, and ``headers`` carry every header it requires (but the transport's), each
        declared header matching its schema. Undeclared headers are not refused."""
        if status not in self.responses:
            raise ResponseInvalid(f"{self.operation_id}: status {status} is not declared")
        validator = self.responses[status]
        if validator is not None and not validator.is_valid(body):
            found = errors(validator, body, ())
            raise ResponseInvalid(
                f"{self.operation_id}: {status} body breaks the contract: {found}"
            )
        declared = self.response_headers[status]
        if declared:
            sent = {name.lower(): value for name, value in headers.items()}
            for header in declared:
                problem = header.problem(sent.get(header.name))
                if problem is not None:
                    raise ResponseInvalid(f"{self.operation_id}: {status}: {problem}")


def _deeper_than(limit: int, raw: bytes, value: Any) -> bool:
    """Whether the parsed JSON ``value`` nests more than ``limit`` levels."""
    # Every level opens a bracket: with no more brackets than levels allowed (most bodies),
    # there is nothing to walk. Counting runs in C.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) in _CONTAINERS
        ]
        if not level:
            return False
    return True


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _resolve(document: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _json_schema(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema of a request body's or response's JSON content (``application/json`` or
    any ``+json`` type such as ``application/problem+json``), if it has one."""
    for media, content in spec.get("content", {}).items():
        if _is_json(media):
            schema: Mapping[str, Any] | None = content.get("schema")
            return schema
    return None


def _json_type(document: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    schema = _resolve(document, schema)
    kind = schema.get("type", "string")
    return kind if isinstance(kind, str) else next(t for t in kind if t != "null")


def _response_header(
    document: Mapping[str, Any], compiler: SchemaCompiler, name: str, header: Mapping[str, Any]
) -> ResponseHeader:
    header = _resolve(document, header)
    schema = header.get("schema", {})
    return ResponseHeader(
        name=name.lower(),
        required=bool(header.get("required", False)),
        json_type=_json_type(document, schema),
        validator=compiler.compile(schema),
    )


def compile_operations(document: Mapping[str, Any]) -> Iterator[Operation]:
    compiler = SchemaCompiler(document)
    for path, item in document.get("paths", {}).items():
        shared = [_resolve(document, p) for p in item.get("parameters", [])]
        for method in HTTP_METHODS:
            if method not in item:
                continue
            op = item[method]
            declared = {(p["name"], p["in"]): p for p in shared}
            declared.update(
                {
                    (p["name"], p["in"]): p
                    for p in map(lambda p: _resolve(document, p), op.get("parameters", []))
                }
            )
            params = tuple(
                Param(
                    name=p["name"],
                    location=p["in"],
                    key=p["name"].lower().replace("-", "_"),
                    required=bool(p.get("required", p["in"] == "path")),
                    json_type=_json_type(document, p.get("schema", {})),
                    default=_resolve(document, p.get("schema", {})).get("default"),
                    validator=compiler.compile(p.get("schema", {})),
                )
                for p in declared.values()
                if p["in"] in ("path", "query", "header")
            )
            body_spec = _resolve(document, op.get("requestBody", {}))
            body_schema = _json_schema(body_spec)
            responses: dict[int, jsonschema_rs.Validator | None] = {}
            response_headers: dict[int, tuple[ResponseHeader, ...]] = {}
            for status, response in op.get("responses", {}).items():
                response = _resolve(document, response)
                schema = _json_schema(response)
                responses[int(status)] = None if schema is None else compiler.compile(schema)
                response_headers[int(status)] = tuple(
                    _response_header(document, compiler, name, header)
                    for name, header in response.get("headers", {}).items()
                    if name.lower() not in TRANSPORT_HEADERS
                )
            yield Operation(
                operation_id=op["operationId"],
                method=method.upper(),
                path=path,
                params=params,
                body=None if body_schema is None else compiler.compile(body_schema),
                body_required=bool(body_spec.get("required", False)),
                responses=responses,
                response_headers=response_headers,
                secured=any(op.get("security", document.get("security", []))),
            )
