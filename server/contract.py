"""The served contracts: loaded, merged, checked as OpenAPI 3.1, and handed to Connexion.

This is the one place that decides how pollable serves OpenAPI 3.1 documents on
Connexion 3.3 (which accepts only 3.0 documents and validates with Draft 4):

* documents are checked with openapi-spec-validator's 3.1 validator, here, once; a served
  document whose exact bytes that validator (the installed version) already accepted, as
  recorded in ``openapi/checked.json`` by ``python -m pollable.server.contract --record``
  and held true by the test suite, is not checked again at every start (the check of the
  three took 0.4 CPU-seconds of a 1.1 s start, and importing the validator 10 MB of RSS,
  with the pydantic it brings); any other document is;
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
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.abc import Traversable
from typing import Any

import orjson
from connexion.spec import OpenAPISpecification

from pollable.handlers.descriptor import ApiDescriptor

#: The served documents the 3.1 validator accepted: ``{"validator": "<name> <version>",
#: "documents": {api name: SHA-256 of the served bytes}}``.
CHECKED = resources.files("pollable.openapi") / "checked.json"
VALIDATOR = "openapi-spec-validator"


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
    _add(merged, copy.deepcopy(additions), "#")
    return merged


def _add(target: dict[str, Any], additions: Mapping[str, Any], where: str) -> None:
    """Add ``additions`` into ``target`` in place, sharing their values: the caller owns
    both (``merge_additions`` copies them first; ``load`` reads them fresh from files)."""
    for key, value in additions.items():
        here = f"{where}/{key}"
        if key not in target:
            target[key] = value
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
            target.append(parameter)
            present[known] = parameter
        elif present[known] != parameter:
            raise ContractError(f"an addition would change the parameter {known} at {where}")


def check_openapi_31(document: Mapping[str, Any], name: str) -> None:
    """Raise ``ContractError`` unless ``document`` is a valid OpenAPI 3.1 document."""
    if not str(document.get("openapi", "")).startswith("3.1."):
        raise ContractError(f"{name}: expected an OpenAPI 3.1 document")
    # Imported here: only a document not recorded as checked needs it (10 MB with pydantic).
    from openapi_spec_validator import validate as validate_spec
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    try:
        validate_spec(document, cls=OpenAPIV31SpecValidator)
    except Exception as exc:  # the validator raises several unrelated types
        raise ContractError(f"{name}: not a valid OpenAPI 3.1 document: {exc}") from exc


def digest(served: bytes) -> str:
    return hashlib.sha256(served).hexdigest()


@functools.cache
def validator_version() -> str:
    """The installed validator, as ``checked.json`` names the one that checked."""
    return f"{VALIDATOR} {metadata.version(VALIDATOR)}"


@functools.cache
def _checked() -> frozenset[str]:
    """Digests of the served documents that the installed validator accepted; none if
    ``checked.json`` was recorded with another version (or is missing)."""
    try:
        recorded = json.loads(CHECKED.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return frozenset()
    if recorded.get("validator") != validator_version():
        return frozenset()
    return frozenset(recorded["documents"].values())


def merged_document(api: ApiDescriptor) -> dict[str, Any]:
    """``api``'s documents, the first with each later one merged in (add-only)."""
    first, *rest = api.documents
    document = read_document(first)
    for extra in rest:
        # Both were just read from their files: merge in place, without copies.
        _add(document, read_document(extra), "#")
    return document


@functools.cache
def load(api: ApiDescriptor) -> Contract:
    """The served contract of ``api``; loaded and checked once per process. Checking is
    skipped only for bytes the installed validator is recorded to have accepted."""
    document = merged_document(api)
    served = orjson.dumps(document)
    if digest(served) not in _checked():  # recorded only once check_openapi_31 passed
        check_openapi_31(document, api.name)
    return Contract(api=api, document=document, served=served)


def record_checked(apis: Iterable[ApiDescriptor]) -> dict[str, Any]:
    """Check every document of ``apis`` with the validator and return what ``checked.json``
    holds for them. Raises ``ContractError`` if any is invalid: nothing is recorded then."""
    documents = {}
    for api in apis:
        document = merged_document(api)
        check_openapi_31(document, api.name)
        documents[api.name] = digest(orjson.dumps(document))
    return {
        "about": "SHA-256 of each served document (merged, as pollable serves it) that this "
        "validator accepted as OpenAPI 3.1. A document whose digest is here is not checked "
        "again at start-up; any other is. Written by `python -m pollable.server.contract "
        "--record`; tests/server/test_contract.py fails if it is stale.",
        "validator": validator_version(),
        "documents": documents,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m pollable.server.contract --record``: check and record the registry's."""
    from pollable.handlers.registry import REGISTRY

    args = sys.argv[1:] if argv is None else argv
    if args != ["--record"]:
        print("usage: python -m pollable.server.contract --record", file=sys.stderr)
        return 2
    recorded = record_checked(REGISTRY)
    with resources.as_file(CHECKED) as target:
        target.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    print(f"recorded {', '.join(recorded['documents'])} ({recorded['validator']})")
    return 0


class Specification31(OpenAPISpecification):
    """Connexion's view of a document that ``load`` has checked as OpenAPI 3.1.

    Connexion validates documents against its bundled 3.0 schema, which rejects
    ``openapi: 3.1.0`` and 3.1-only schema keywords. That check is the one thing replaced:
    ``load`` already ran the 3.1 validator (or found these bytes recorded as accepted by
    it), so it is not run a second time at start-up.
    Build instances with ``Contract.specification()``.
    """

    @classmethod
    def _validate_spec(cls, spec: Any) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
