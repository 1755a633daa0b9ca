"""The served contracts: vendored verbatim, additions only add, every document is 3.1."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from pollable.handlers.registry import APIS, REGISTRY
from pollable.server import contract
from pollable.server.contract import ContractError, merge_additions

OPENAPI = resources.files("pollable.openapi")
#: The seed pages the contracts come from, kept verbatim beside them.
SEED = Path(__file__).parents[2] / "openapi" / "sources" / "000_03601a74ef680118.txt"


def seed_document() -> dict[str, Any]:
    text = SEED.read_text(encoding="utf-8")
    match = re.search(r"````yaml [^\n]*\n(.*?)````", text, re.S)
    assert match is not None
    document: dict[str, Any] = yaml.safe_load(match.group(1))
    return document


def test_vendored_file_is_the_seed_converted_to_json() -> None:
    assert contract.read_document(OPENAPI / "crosmos.vendored.json") == seed_document()


def test_vendored_operations_and_schemas_reach_the_served_contract_unchanged() -> None:
    vendored = contract.read_document(OPENAPI / "crosmos.vendored.json")
    served = contract.load(APIS["crosmos"]).document
    for path, item in vendored["paths"].items():
        for method, operation in item.items():
            served_operation = served["paths"][path][method]
            for key, value in operation.items():
                if key == "responses":
                    for status, response in value.items():
                        # What is added to a vendored response: the Request-Id header, and
                        # the polling headers on a job read (openapi/crosmos.polling.json).
                        served_response = dict(served_operation["responses"][status])
                        headers = dict(served_response.pop("headers"))
                        assert headers.pop("Request-Id") == {
                            "$ref": "#/components/headers/RequestId"
                        }
                        if (path, status) == ("/api/v1/jobs/{job_id}", "200"):
                            assert headers.pop("ETag") == {"$ref": "#/components/headers/ETag"}
                            assert headers.pop("Retry-After") == {
                                "$ref": "#/components/headers/PollRetryAfter"
                            }
                        if headers:
                            served_response["headers"] = headers
                        assert served_response == response
                else:
                    assert served_operation[key] == value, (path, method, key)
    for kind, components in vendored["components"].items():
        for name, component in components.items():
            assert served["components"][kind][name] == component, (kind, name)
    for key in ("openapi", "info", "servers", "security"):
        assert served[key] == vendored[key]


def test_additions_only_add_responses_to_vendored_operations() -> None:
    vendored = contract.read_document(OPENAPI / "crosmos.vendored.json")
    served = contract.load(APIS["crosmos"]).document
    operation = served["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert set(operation) == set(vendored["paths"]["/api/v1/jobs/{job_id}"]["get"])
    # 429 and 503: the sandbox's faults and rate limit (crosmos.faults.json).
    # 304: the polling headers (crosmos.polling.json).
    assert {"200", "304", "422", "401", "404", "429", "500", "503"} == set(operation["responses"])


@pytest.mark.parametrize("filename", ["crosmos.vendored.json", "captain.json"])
def test_openapi_spec_validator_accepts_each_document_as_31(filename: str) -> None:
    document = contract.read_document(OPENAPI / filename)
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


@pytest.mark.parametrize("name", sorted(APIS))
def test_every_response_declares_its_request_id(name: str) -> None:
    """Every response of every operation (and every shared response) says it carries the
    ``Request-Id`` that finds its entry in the request log."""
    document = contract.load(APIS[name]).document

    def resolved(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    missing = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                headers = resolved(response).get("headers", {})
                header = {name.lower(): h for name, h in headers.items()}.get("request-id")
                if resolved(header) != document["components"]["headers"]["RequestId"]:
                    missing.append(f"{method.upper()} {path} {status}")
    assert not missing, (
        'add "headers": {"Request-Id": {"$ref": "#/components/headers/RequestId"}} to: '
        + ", ".join(missing)
    )
    declared = document["components"]["headers"]["RequestId"]
    assert declared["required"] is True
    assert declared["schema"]["pattern"] == "^req_[0-9a-f]{24}$"


@pytest.mark.parametrize("name", sorted(APIS))
def test_each_served_contract_is_valid_31(name: str) -> None:
    served = contract.load(APIS[name])
    validate(dict(served.document), cls=OpenAPIV31SpecValidator)
    assert json.loads(served.served) == served.document


def test_merge_adds_keys_and_never_changes_a_value() -> None:
    base = {"a": {"b": 1}, "list": [1]}
    assert merge_additions(base, {"a": {"c": 2}, "d": 3}) == {
        "a": {"b": 1, "c": 2},
        "list": [1],
        "d": 3,
    }
    assert merge_additions(base, {"a": {"b": 1}}) == base
    with pytest.raises(ContractError, match="#/a/b"):
        merge_additions(base, {"a": {"b": 2}})
    with pytest.raises(ContractError):
        merge_additions(base, {"list": [1, 2]})


def test_merge_adds_parameters_by_name_and_location_and_never_changes_one() -> None:
    prefer = {"name": "Prefer", "in": "header", "schema": {"type": "string"}}
    base = {"parameters": [prefer]}
    match = {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
    assert merge_additions(base, {"parameters": [match]}) == {"parameters": [prefer, match]}
    # The same parameter again is no change; the same name in another place is another one.
    assert merge_additions(base, {"parameters": [prefer]}) == base
    in_query = {**prefer, "in": "query"}
    assert merge_additions(base, {"parameters": [in_query]})["parameters"] == [prefer, in_query]
    with pytest.raises(ContractError, match="prefer"):
        merge_additions(base, {"parameters": [{**prefer, "required": True}]})
    ref = {"$ref": "#/components/parameters/X"}
    assert merge_additions(base, {"parameters": [ref]})["parameters"] == [prefer, ref]
    with pytest.raises(ContractError, match="not a parameter"):
        merge_additions(base, {"parameters": ["Prefer"]})


def test_merge_does_not_mutate_its_inputs() -> None:
    base: dict[str, Any] = {"a": {}}
    additions = {"a": {"x": {"y": 1}}}
    merged = merge_additions(base, additions)
    merged["a"]["x"]["y"] = 2
    assert base == {"a": {}} and additions == {"a": {"x": {"y": 1}}}


def test_a_30_document_is_refused() -> None:
    with pytest.raises(ContractError, match=r"3\.1"):
        contract.check_openapi_31({"openapi": "3.0.3", "info": {}, "paths": {}}, "old")


def test_an_invalid_31_document_is_refused() -> None:
    bad = {"openapi": "3.1.0", "info": {"title": "x"}, "paths": {"/a": {"get": {"responses": 5}}}}
    with pytest.raises(ContractError, match=r"not a valid OpenAPI 3\.1"):
        contract.check_openapi_31(bad, "bad")


def test_connexion_parses_the_31_documents() -> None:
    for name in ("crosmos", "captain"):
        specification = contract.load(APIS[name]).specification()
        assert specification.version[:2] == (3, 1)
        assert specification.security_schemes["HTTPBearer"]["scheme"] == "bearer"


def test_the_served_documents_are_the_add_only_merge_of_their_files() -> None:
    for api in REGISTRY:
        documents = [contract.read_document(source) for source in api.documents]
        assert contract.merged_document(api) == functools.reduce(merge_additions, documents)


def test_checked_json_records_exactly_what_the_validator_accepts_now() -> None:
    """``openapi/checked.json`` lets start-up skip the validator for these exact bytes: it
    must hold the digest of every served document, each accepted by the installed validator
    in this very test, and nothing else. After changing a document (or the validator), run
    ``python -m pollable.server.contract --record``."""
    recorded = json.loads(contract.CHECKED.read_text(encoding="utf-8"))
    assert contract.record_checked(REGISTRY) == recorded, (
        "openapi/checked.json is stale: run python -m pollable.server.contract --record"
    )
    assert recorded["documents"] == {
        api.name: contract.digest(contract.load(api).served) for api in REGISTRY
    }


def _with_documents(api_name: str, *documents: Any, tmp_path: Path) -> Any:
    sources = []
    for i, document in enumerate(documents):
        source = tmp_path / f"{i}.json"
        source.write_text(json.dumps(document))
        sources.append(source)
    return dataclasses.replace(APIS[api_name], documents=tuple(sources))


def test_a_document_not_recorded_is_checked_when_it_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendored = contract.read_document(OPENAPI / "crosmos.vendored.json")
    checked: list[str] = []
    check = contract.check_openapi_31

    def counted(document: Any, name: str) -> None:
        checked.append(name)
        check(document, name)

    monkeypatch.setattr(contract, "check_openapi_31", counted)
    # Valid, but not the served bytes of any API: checked.
    contract.load(_with_documents("crosmos", vendored, tmp_path=tmp_path))
    assert checked == ["crosmos"]
    # An addition that breaks the document: refused.
    broken = {"paths": {"/broken": {"get": {"responses": 5}}}}
    with pytest.raises(ContractError, match=r"not a valid OpenAPI 3\.1"):
        contract.load(_with_documents("crosmos", vendored, broken, tmp_path=tmp_path))
    # The served documents, byte for byte: not checked again.
    for api in REGISTRY:
        contract.load(dataclasses.replace(api))
    assert checked == ["crosmos", "crosmos"]


def test_a_record_from_another_validator_proves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = json.loads(contract.CHECKED.read_text(encoding="utf-8"))
    other = tmp_path / "checked.json"
    other.write_text(json.dumps({**recorded, "validator": "openapi-spec-validator 0.0.1"}))
    monkeypatch.setattr(contract, "CHECKED", other)
    contract._checked.cache_clear()
    try:
        assert contract._checked() == frozenset()
    finally:
        monkeypatch.undo()
        contract._checked.cache_clear()
    assert contract._checked() == frozenset(recorded["documents"].values())


def test_record_checked_records_nothing_for_an_invalid_document(tmp_path: Path) -> None:
    vendored = contract.read_document(OPENAPI / "crosmos.vendored.json")
    bad = {**vendored, "paths": {"/a": {"get": {"responses": 5}}}}
    with pytest.raises(ContractError):
        contract.record_checked([_with_documents("crosmos", bad, tmp_path=tmp_path)])


def test_serving_the_recorded_contracts_never_imports_the_validator() -> None:
    """Start-up's footprint: the validator (and pydantic, which it brings) are imported only
    to check a document that is not recorded as checked."""
    program = (
        "import sys\n"
        "import pollable.server.cli\n"
        "from pollable.server.app import create_app\n"
        "from pollable.server.settings import Settings\n"
        "create_app(Settings.build({}, store='memory://'))\n"
        "print(sorted(m for m in ('openapi_spec_validator', 'pydantic') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", program],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stderr
