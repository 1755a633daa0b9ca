"""The served contracts: loaded, merged, checked as OpenAPI 3.1, and handed to Connexion.

This is the one place that decides how pollable serves OpenAPI 3.1 documents on
Connexion 3.3 (which accepts only 3.0 documents and validates with Draft 4):

* documents are checked with openapi-spec-validator's 3.1 validator, here, once;
* Connexion gets them through ``Specification31``, which skips its own 3.0 schema
  check and otherwise parses them as usual (routing, security);
* request and response validation is ours (``server.operation``), with JSON Schema
  2020-12 semantics and asserted formats, compiled at start-up.

What pollable adds to a vendored document lives in its own file and is merged here;
the merge may only add keys, so a vendored value can never be changed.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from connexion.spec import OpenAPISpecification
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation import OpenAPIV31SpecValidator


class ContractError(Exception):
    """A contract document is invalid, or an addition tries to change a vendored value."""


@dataclass(frozen=True)
class ContractSource:
    name: str
    files: tuple[str, ...]
    #: Where the served document and Swagger UI live.
    openapi_url: str
    docs_url: str


SOURCES: Mapping[str, ContractSource] = {
    "crosmos": ContractSource(
        "crosmos",
        ("crosmos.vendored.json", "crosmos.additions.json"),
        "/openapi.json",
        "/docs",
    ),
    "captain": ContractSource("captain", ("captain.json",), "/v2/openapi.json", "/v2/docs"),
}


@dataclass(frozen=True)
class Contract:
    name: str
    document: Mapping[str, Any]
    #: The served document, serialised once.
    served: bytes
    openapi_url: str
    docs_url: str

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def specification(self) -> Specification31:
        return Specification31(self.document)


def read_document(filename: str) -> dict[str, Any]:
    text = resources.files("pollable.openapi").joinpath(filename).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def merge_additions(base: Mapping[str, Any], additions: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``additions`` added. Adding to a dictionary is allowed; replacing any
    existing value (or extending a list) is a ``ContractError``."""
    merged = copy.deepcopy(dict(base))
    _add(merged, additions, "#")
    return merged


def _add(target: dict[str, Any], additions: Mapping[str, Any], where: str) -> None:
    for key, value in additions.items():
        here = f"{where}/{key}"
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping):
            _add(target[key], value, here)
        elif target[key] != value:
            raise ContractError(f"an addition would change the vendored value at {here}")


def check_openapi_31(document: Mapping[str, Any], name: str) -> None:
    if not str(document.get("openapi", "")).startswith("3.1."):
        raise ContractError(f"{name}: expected an OpenAPI 3.1 document")
    try:
        validate_spec(document, cls=OpenAPIV31SpecValidator)
    except Exception as exc:  # the validator raises several unrelated types
        raise ContractError(f"{name}: not a valid OpenAPI 3.1 document: {exc}") from exc


@functools.cache
def load(name: str) -> Contract:
    """The served contract ``name``; loaded and checked once per process."""
    source = SOURCES[name]
    first, *rest = source.files
    document = read_document(first)
    for extra in rest:
        document = merge_additions(document, read_document(extra))
    check_openapi_31(document, name)
    return Contract(
        name=name,
        document=document,
        served=orjson.dumps(document),
        openapi_url=source.openapi_url,
        docs_url=source.docs_url,
    )


class Specification31(OpenAPISpecification):
    """Connexion's view of a document that ``load`` has checked as OpenAPI 3.1.

    Connexion validates documents against its bundled 3.0 schema, which rejects
    ``openapi: 3.1.0`` and 3.1-only schema keywords. That check is the one thing replaced:
    ``load`` already ran the 3.1 validator, so it is not run a second time at start-up.
    Build instances with ``Contract.specification()``.
    """

    @classmethod
    def _validate_spec(cls, spec: Any) -> None:
        return None
