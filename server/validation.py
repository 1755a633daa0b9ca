"""JSON Schema validation with OpenAPI 3.1 semantics, compiled once at start-up.

OpenAPI 3.1 schemas are JSON Schema 2020-12: ``null`` through ``anyOf`` and type
arrays, ``const``, and formats. Formats are asserted (``uuid``, ``date-time``, ...),
because a reference server that lets ``job_id: "zzz"`` through proves nothing.
Validators come from jsonschema-rs and are built when the app is built; the request
path only calls them.

Errors are turned into FastAPI's ``{"loc", "msg", "type"}`` items. Messages never
quote the offending value: request bodies carry credentials, and an error must not
echo them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema_rs
import orjson

ErrorItem = dict[str, Any]

#: Cap on the error items one response lists.
MAX_ERRORS = 50

_TYPE_NAMES = {
    "string": ("string_type", "Input should be a valid string"),
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("dict_type", "Input should be a valid dictionary"),
    "null": ("none_required", "Input should be None"),
}

_FORMATS = {
    "uuid": ("uuid_parsing", "Input should be a valid UUID"),
    "date-time": ("datetime_parsing", "Input should be a valid datetime"),
    "date": ("date_parsing", "Input should be a valid date"),
    "email": ("value_error", "Input should be a valid email address"),
    "uri": ("url_parsing", "Input should be a valid URL"),
}


class SchemaCompiler:
    """Compiles the schemas of one OpenAPI document; ``$ref``s resolve inside it.

    Each validator carries only the components its schema reaches, and a schema met again
    (every operation's error bodies, a shared header) reuses the validator built for it: a
    validator holds no state between calls. Built whole, each of a document's ~700
    validators re-read every component, and start-up spent most of its time there.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._components: Mapping[str, Any] = document.get("components", {})
        self._built: dict[bytes, jsonschema_rs.Validator] = {}

    def compile(self, schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        validator = self._built.get(key)
        if validator is None:
            root = {**schema, "components": self._reached(schema)}
            validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
            self._built[key] = validator
        return validator

    def _reached(self, schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """The components ``schema`` refers to, and those they refer to, by section."""
        reached: dict[str, dict[str, Any]] = {}
        pending = list(_refs(schema))
        while pending:
            ref = pending.pop()
            parts = ref.removeprefix("#/components/").split("/")
            if not ref.startswith("#/components/") or len(parts) != 2:
                continue  # jsonschema-rs reports a reference it cannot resolve
            section, name = (part.replace("~1", "/").replace("~0", "~") for part in parts)
            if name in reached.get(section, {}):
                continue
            target = self._components.get(section, {}).get(name)
            if target is None:
                continue
            reached.setdefault(section, {})[name] = target
            pending.extend(_refs(target))
        return reached


def _refs(value: Any) -> Iterator[str]:
    """Every ``$ref`` string inside ``value``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def errors(
    validator: jsonschema_rs.Validator, instance: Any, loc: tuple[str | int, ...]
) -> list[ErrorItem]:
    """FastAPI-shaped error items for ``instance``, each ``loc`` prefixed with ``loc``."""
    if validator.is_valid(instance):  # the common case, and much cheaper than iterating
        return []
    items: list[ErrorItem] = []
    for error in validator.iter_errors(instance):
        items.extend(_translate(error, loc))
        if len(items) >= MAX_ERRORS:
            break
    return items[:MAX_ERRORS]


def _item(loc: tuple[str | int, ...], kind: str, msg: str) -> ErrorItem:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _translate(error: Any, prefix: tuple[str | int, ...]) -> Iterator[ErrorItem]:
    loc = (*prefix, *error.instance_path)
    name = error.kind.name
    info = error.kind.as_dict()
    if name == "required":
        yield _item((*loc, info["property"]), "missing", "Field required")
    elif name == "additionalProperties":
        for extra in info["unexpected"]:
            yield _item((*loc, extra), "extra_forbidden", "Extra inputs are not permitted")
    elif name in ("anyOf", "oneOfNotValid"):
        yield from _union(info.get("context", []), loc, prefix)
    else:
        kind, msg = _describe(name, info)
        yield _item(loc, kind, msg)


def _union(
    branches: list[list[Any]], loc: tuple[str | int, ...], prefix: tuple[str | int, ...]
) -> Iterator[ErrorItem]:
    """Report the branch that got furthest: the only one that failed on more than its type."""
    informative = [b for b in branches if any(e.kind.name != "type" for e in b)]
    if len(informative) == 1:
        for error in informative[0]:
            yield from _translate(error, prefix)
        return
    yield _item(loc, "union_error", "Input does not match any of the allowed shapes")


def _describe(name: str, info: Mapping[str, Any]) -> tuple[str, str]:
    limit = info.get("limit")
    match name:
        case "type":
            types = info.get("types") or ["value"]
            return _TYPE_NAMES.get(types[0], ("type_error", "Input has the wrong type"))
        case "format":
            fmt = info.get("format", "")
            return _FORMATS.get(fmt, ("value_error", f"Input should be a valid {fmt}"))
        case "maxLength":
            return "string_too_long", f"String should have at most {limit} characters"
        case "minLength":
            return "string_too_short", f"String should have at least {limit} characters"
        case "maxItems":
            return "too_long", f"List should have at most {limit} items after validation"
        case "minItems":
            return "too_short", f"List should have at least {limit} items after validation"
        case "maxProperties":
            return "too_long", f"Object should have at most {limit} keys"
        case "minProperties":
            return "too_short", f"Object should have at least {limit} keys"
        case "maximum":
            return "less_than_equal", f"Input should be less than or equal to {limit}"
        case "minimum":
            return "greater_than_equal", f"Input should be greater than or equal to {limit}"
        case "exclusiveMaximum":
            return "less_than", f"Input should be less than {limit}"
        case "exclusiveMinimum":
            return "greater_than", f"Input should be greater than {limit}"
        case "enum":
            options = ", ".join(repr(o) for o in info.get("options", []))
            return "enum", f"Input should be one of: {options}"
        case "const":
            return "literal_error", f"Input should be {info.get('expected_value')!r}"
        case "pattern":
            return "string_pattern_mismatch", f"String should match pattern '{info['pattern']}'"
        case "oneOfMultipleValid":
            return "union_error", "Input matches more than one of the allowed shapes"
        case "propertyNames":
            return "value_error", "Object has a key that is not allowed"
        case _:
            return "value_error", f"Input is not valid ({name})"
