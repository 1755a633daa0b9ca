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
from importlib.abc import Traversable
from typing import Any

import orjson
from connexion.spec import OpenAPISpecification
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from pollable.handlers.descriptor import ApiDescriptor


class ContractError(Exception):
    """A contract document is invalid, or an addition tries to change a vendored value."""


@dataclass(frozen=True)
class Contract:
    api: ApiDescriptor
    document: Mapping[str, Any]
    #: The served document, serialised once.
    served: bytes

    @property
    def name(self) -> str:
        return self.api.name

    @property
    def openapi_url(self) -> str:
        return self.api.openapi_url

    @property
    def docs_url(self) -> str:
        return self.api.docs_url

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def specification(self) -> Specification31:
        return Specification31(self.document)


def read_document(source: Traversable) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return document


def merge_additions(base: Mapping[str, Any], additions: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``additions`` added. Adding to a dictionary is allowed, and so is adding
    a parameter to a ``parameters`` list (OpenAPI identifies one by its name and location,
    so a new one changes none that is there); replacing any existing value (or extending
    any other list) is a ``ContractError``."""
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
        elif key == "parameters" and isinstance(target[key], list) and isinstance(value, list):
            _add_parameters(target[key], value, here)
        elif target[key] != value:
            raise ContractError(f"an addition would change the vendored value at {here}")


def _add_parameters(target: list[Any], additions: list[Any], where: str) -> None:
    def identity(parameter: Any) -> Any:
        if isinstance(parameter, Mapping) and "name" in parameter and "in" in parameter:
            return (str(parameter["name"]).lower(), parameter["in"])
        if isinstance(parameter, Mapping) and "$ref" in parameter:
            return ("$ref", parameter["$ref"])
        raise ContractError(f"not a parameter at {where}: {parameter!r}")

    present = {identity(p): p for p in target}
    for parameter in additions:
        known = identity(parameter)
        if known not in present:
            target.append(copy.deepcopy(parameter))
            present[known] = parameter
        elif present[known] != parameter:
            raise ContractError(f"an addition would change the parameter {known} at {where}")


def check_openapi_31(document: Mapping[str, Any], name: str) -> None:
    if not str(document.get("openapi", "")).startswith("3.1."):
        raise ContractError(f"{name}: expected an OpenAPI 3.1 document")
    try:
        validate_spec(document, cls=OpenAPIV31SpecValidator)
    except Exception as exc:  # the validator raises several unrelated types
        raise ContractError(f"{name}: not a valid OpenAPI 3.1 document: {exc}") from exc


@functools.cache
def load(api: ApiDescriptor) -> Contract:
    """The served contract of ``api``; loaded and checked once per process."""
    first, *rest = api.documents
    document = read_document(first)
    for extra in rest:
        document = merge_additions(document, read_document(extra))
    check_openapi_31(document, api.name)
    return Contract(api=api, document=document, served=orjson.dumps(document))


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
