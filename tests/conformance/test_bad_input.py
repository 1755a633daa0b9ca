"""Bad input over HTTP, on each backend: answered 4xx, with a status the operation's contract
declares, in the contract's error shape, and nothing stored. Then a seeded loop of
malformed requests that must never get a 5xx. And credentials: never in the database file,
a log line or a reply."""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from pollable.handlers.captain.jobs import SECRET_FIELDS
from pollable.handlers.registry import APIS
from pollable.server import contract
from pollable.server.operation import MAX_BODY_DEPTH
from pollable.server.settings import Settings
from tests.conformance.bodies import (
    CAPTAIN_TARGETS,
    CROSMOS_CREATES,
    SPACE_ID,
    FakeCredentials,
    captain_body,
)
from tests.conformance.live import Servers, provision
from tests.conftest import BACKENDS, Api, Tenant, start, store_url

SOURCES = "/api/v1/sources"
CONVERSATIONS = "/api/v1/conversations"


# -- the contract's view ----------------------------------------------------------------------


def _declared() -> dict[tuple[str, str], set[int]]:
    found = {}
    for name in APIS:
        for path, item in contract.load(APIS[name]).document["paths"].items():
            for method, operation in item.items():
                if isinstance(operation, dict) and "responses" in operation:
                    found[(method.upper(), path)] = {int(s) for s in operation["responses"]}
    return found


DECLARED = _declared()
TEMPLATES = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), method, path)
    for (method, path) in DECLARED
]


def operation_of(method: str, path: str) -> tuple[str, str] | None:
    """The (method, template) of the operation a concrete request targets, if any."""
    for pattern, declared_method, template in TEMPLATES:
        if declared_method == method and pattern.match(path):
            return method, template
    return None


def assert_contract_error(response: httpx.Response, method: str, path: str) -> None:
    """A 4xx the operation declares, in FastAPI's shape."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    operation = operation_of(method, path.split("?")[0])
    assert operation is not None, f"{method} {path} is no operation"
    assert response.status_code in DECLARED[operation], (
        f"{method} {path} answered {response.status_code}, which the contract does not "
        f"declare ({sorted(DECLARED[operation])}): {response.text[:300]}"
    )
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}, body
    if response.status_code == 422:
        assert isinstance(body["detail"], list) and body["detail"], body
        for item in body["detail"]:
            assert {"loc", "msg", "type"} <= set(item), item
            assert isinstance(item["loc"], list) and item["loc"], item
            assert all(isinstance(part, str | int) for part in item["loc"]), item
            assert isinstance(item["msg"], str) and isinstance(item["type"], str), item
    else:
        assert isinstance(body["detail"], str) and body["detail"], body


def _created(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert isinstance(job_id, str)
    return job_id


# -- what the store holds -------------------------------------------------------------------


def stored(api: Api, *tenants: Tenant) -> dict[tuple[str, str], int]:
    store = api.services.store
    totals = {}
    for tenant in tenants:
        found = api.run(store.find_tenant, tenant.name)
        for name in ("crosmos", "captain"):
            page = api.run(store.list_jobs, found.id, api=name, now=api.clock(), limit=1)
            totals[(tenant.name, name)] = page.total
    return totals


@pytest.fixture
def nothing_stored(api: Api, acme: Tenant, globex: Tenant) -> Iterator[None]:
    before = stored(api, acme, globex)
    yield
    assert stored(api, acme, globex) == before, "a refused request stored a job"


# -- the bad requests ---------------------------------------------------------------------------

Send = Callable[[Api, Tenant], tuple[str, str, httpx.Response]]


def post_json(path: str, body: Any, **headers: str) -> Send:
    def send(api: Api, who: Tenant) -> tuple[str, str, httpx.Response]:
        auth = who.crosmos if path.startswith("/api/") else who.captain
        response = api.client.post(path, json=body, headers={**auth, **headers})
        return "POST", path, response

    return send


def post_raw(path: str, raw: bytes, content_type: str | None = "application/json") -> Send:
    def send(api: Api, who: Tenant) -> tuple[str, str, httpx.Response]:
        auth = who.crosmos if path.startswith("/api/") else who.captain
        headers = {**auth, **({"content-type": content_type} if content_type else {})}
        return "POST", path, api.client.post(path, content=raw, headers=headers)

    return send


def get(path: str, **params: Any) -> Send:
    def send(api: Api, who: Tenant) -> tuple[str, str, httpx.Response]:
        auth = who.crosmos if path.startswith("/api/") else who.captain
        return "GET", path, api.client.get(path, params=params, headers=auth)

    return send


def captain(target: str, collection: str = "docs", **changes: Any) -> Send:
    body = {**captain_body(target), **changes}
    body = {name: value for name, value in body.items() if value is not REMOVE}
    return post_json(f"/v2/collections/{collection}/index/{target}", body)


def deep_sources(depth: int) -> bytes:
    """An ingest body that the schema accepts, its source's ``meta`` nested ``depth`` deep."""
    meta = b'{"a": ' * (depth - 3) + b"1" + b"}" * (depth - 3)
    return b'{"space_id": "%s", "sources": [{"content": "x", "meta": %s}]}' % (
        SPACE_ID.encode(),
        meta,
    )


REMOVE = object()
SOURCE = {"content": "Ada wrote programs."}
CROSMOS_BAD: dict[str, Send] = {
    "malformed json": post_raw(SOURCES, b'{"space_id": "' + SPACE_ID.encode() + b'", "sources": ['),
    "malformed json, conversation": post_raw(CONVERSATIONS, b'{"messages": [}'),
    "trailing garbage": post_raw(SOURCES, json.dumps(CROSMOS_CREATES[SOURCES]).encode() + b"}"),
    "NaN": post_raw(SOURCES, b'{"space_id": NaN, "sources": []}'),
    "not UTF-8": post_raw(SOURCES, b'{"space_id": "\xff\xfe", "sources": []}'),
    "nested 2000 deep": post_raw(SOURCES, b"[" * 2000 + b"]" * 2000),
    "nested 10,000 deep": post_raw(SOURCES, b"[" * 10_000 + b"]" * 10_000),
    "nested 300 deep": post_raw(SOURCES, b"[" * 300 + b"]" * 300),
    "meta nested 300 deep": post_raw(SOURCES, deep_sources(300)),
    "meta nested 1000 deep": post_raw(SOURCES, deep_sources(1000)),
    "text/plain": post_raw(SOURCES, json.dumps(CROSMOS_CREATES[SOURCES]).encode(), "text/plain"),
    "form": post_raw(SOURCES, b"space_id=x&sources=y", "application/x-www-form-urlencoded"),
    "no body": post_raw(SOURCES, b""),
    "a list": post_json(SOURCES, [CROSMOS_CREATES[SOURCES]]),
    "null": post_raw(SOURCES, b"null"),
    "101 sources": post_json(SOURCES, {"space_id": SPACE_ID, "sources": [SOURCE] * 101}),
    "0 sources": post_json(SOURCES, {"space_id": SPACE_ID, "sources": []}),
    "no sources": post_json(SOURCES, {"space_id": SPACE_ID}),
    "0 messages": post_json(CONVERSATIONS, {"space_id": SPACE_ID, "messages": []}),
    "501 messages": post_json(
        CONVERSATIONS,
        {"space_id": SPACE_ID, "messages": [{"role": "user", "content": "hi"}] * 501},
    ),
    "space_id not a UUID": post_json(SOURCES, {"space_id": "space-1", "sources": [SOURCE]}),
    "job_id not a UUID": get("/api/v1/jobs/not-a-uuid"),
    "unknown field": post_json(SOURCES, {**CROSMOS_CREATES[SOURCES], "priority": "high"}),
    "unknown field in a source": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "embedding": [0.1]}]}
    ),
    "unknown field in a message": post_json(
        CONVERSATIONS,
        {"space_id": SPACE_ID, "messages": [{"role": "user", "content": "x", "name": "ann"}]},
    ),
    "source content not a string": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{"content": 42}]}
    ),
    "unknown content_type": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "content_type": "docx"}]}
    ),
    "meta not an object": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "meta": [1]}]}
    ),
    "sequence not an integer": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "sequence": 1.5}]}
    ),
    "message without a role": post_json(
        CONVERSATIONS, {"space_id": SPACE_ID, "messages": [{"content": "x"}]}
    ),
    "257-character session_id (sandbox bound)": post_json(
        CONVERSATIONS, {**CROSMOS_CREATES[CONVERSATIONS], "session_id": "s" * 257}
    ),
    "65-character session_date (sandbox bound)": post_json(
        CONVERSATIONS, {**CROSMOS_CREATES[CONVERSATIONS], "session_date": "2" * 65}
    ),
    "unknown scenario": post_json(
        SOURCES, CROSMOS_CREATES[SOURCES], Prefer="scenario=does_not_exist"
    ),
    "257-character Prefer": post_json(
        SOURCES, CROSMOS_CREATES[SOURCES], Prefer="scenario=happy," + "x" * 242
    ),
}

CAPTAIN_BAD: dict[str, Send] = {
    "malformed json": post_raw("/v2/collections/docs/index/url", b'{"url": "https://'),
    "text/plain": post_raw(
        "/v2/collections/docs/index/url", json.dumps(captain_body("url")).encode(), "text/plain"
    ),
    "no aws secret": captain("s3", aws_secret_access_key=REMOVE),
    "aws secret not a string": captain("s3/file", aws_secret_access_key=40),
    "no azure key": captain("azure", account_key=REMOVE),
    "r2 secret null": captain("r2/directory", secret_access_key=None),
    "url and urls": captain("url", url="https://example.com/one.pdf"),
    "neither url nor urls": captain("url", urls=REMOVE),
    "empty urls": captain("url", urls=[]),
    "1001 urls": captain("url", urls=["https://example.com/a.pdf"] * 1001),
    "url not a string": captain("url", urls=REMOVE, url=42),
    "unknown field": captain("s3", region="us-east-1"),
    "unknown processing type": captain("s3", processing_type="turbo"),
    "max_files 0": captain("s3", max_files=0),
    "max_files 100001": captain("s3/directory", max_files=100_001),
    "max_files a string": captain("gcs", max_files="5"),
    "max_files true": captain("azure", max_files=True),
    "bucket name not a string": captain("s3", bucket_name=["acme-docs"]),
    "nested metadata": captain("url", custom_metadata={"k": {"nested": True}}),
    "metadata nested 300 deep": post_raw(
        "/v2/collections/docs/index/url",
        b'{"url": "https://example.com/a.pdf", "custom_metadata": {"k": %s}}'
        % (b"[" * 300 + b"]" * 300),
    ),
    "metadata list of numbers": captain("url", custom_metadata={"k": [1, 2]}),
    "text: not a string": captain("text", content=None),
    # The sandbox bounds (x-sandbox-bound): each protects the server, and each is listed
    # in docs/differences.md.
    "collection: 1025 characters": captain("url", collection="c" * 1025),
    "bucket name: 256 characters": captain("r2", bucket_name="b" * 256),
    "container name: 256 characters": captain("azure", container_name="c" * 256),
    "azure account: 256 characters": captain("azure/file", account_name="a" * 256),
    "file_uri: 2049 characters": captain("gcs/file", file_uri="f" * 2049),
    "directory_path: 1025 characters": captain("s3/directory", directory_path="d" * 1025),
    "url: 8193 characters": captain("url", urls=["https://example.com/" + "u" * 8173]),
    "text: 256-character filename": captain("text", filename="n" * 256),
    "256-character Idempotency-Key": post_json(
        "/v2/collections/docs/index/url", captain_body("url"), **{"Idempotency-Key": "k" * 256}
    ),
    "unknown scenario": post_json(
        "/v2/collections/docs/index/s3", captain_body("s3"), Prefer="scenario=explode"
    ),
    "list: limit 0": get("/v2/jobs", limit=0),
    "list: limit 201": get("/v2/jobs", limit=201),
    "list: limit not a number": get("/v2/jobs", limit="ten"),
    "list: limit in Arabic-Indic digits": get("/v2/jobs", limit="\u0661\u0662"),
    "list: limit in fullwidth digits": get("/v2/jobs", limit="\uff11\uff12"),
    "list: limit of 23 digits": get("/v2/jobs", limit="9" * 23),
    "list: offset of 5,000 digits": get("/v2/jobs", offset="9" * 5000),
    "list: offset of -5,000 digits": get("/v2/jobs", offset="-" + "9" * 5000),
    "list: offset -1": get("/v2/jobs", offset=-1),
    "list: offset 1000001": get("/v2/jobs", offset=1_000_001),
    "list: unknown status": get("/v2/jobs", status="done"),
    "list: empty collection": get("/v2/jobs", collection=""),
}


#: Requests the upstream accepts (its fields are plain strings, objects and integers) and
#: whose job its cloud scan fails: so does the sandbox's, with the error code.
REFUSED_BY_THE_CLOUD: dict[str, tuple[str, dict[str, Any], str]] = {
    "aws key id: wrong prefix": (
        "s3",
        {"aws_access_key_id": "AKIB" + "A" * 16},
        "invalid_credentials",
    ),
    "aws key id: lower case": (
        "s3",
        {"aws_access_key_id": "AKIA" + "a" * 16},
        "invalid_credentials",
    ),
    "aws key id: 15 characters": (
        "s3",
        {"aws_access_key_id": "AKIA" + "A" * 15},
        "invalid_credentials",
    ),
    "aws secret: 39 characters": ("s3", {"aws_secret_access_key": "a" * 39}, "invalid_credentials"),
    "aws secret: a space": (
        "s3/file",
        {"aws_secret_access_key": "a" * 39 + " "},
        "invalid_credentials",
    ),
    "aws secret: empty": ("s3/directory", {"aws_secret_access_key": ""}, "invalid_credentials"),
    "azure key: no padding": ("azure", {"account_key": "A" * 88}, "invalid_credentials"),
    "azure account: upper case": (
        "azure/file",
        {"account_name": "AcmeStore"},
        "invalid_credentials",
    ),
    "r2 account id: not hex": ("r2", {"account_id": "z" * 32}, "invalid_credentials"),
    "r2 secret: 63 characters": (
        "r2/directory",
        {"secret_access_key": "0" * 63},
        "invalid_credentials",
    ),
    "gcs key: not JSON": (
        "gcs",
        {"service_account_json": "not json at all"},
        "invalid_credentials",
    ),
    "gcs key: JSON, not an object": (
        "gcs",
        {"service_account_json": '["service_account"]'},
        "invalid_credentials",
    ),
    "gcs key: no private key": (
        "gcs/file",
        {"service_account_json": json.dumps({"type": "service_account", "client_email": "a@b.c"})},
        "invalid_credentials",
    ),
    "gcs key: wrong type": (
        "gcs/directory",
        {
            "service_account_json": json.dumps(
                {"type": "authorized_user", "client_email": "a@b.c", "private_key": "k"}
            )
        },
        "invalid_credentials",
    ),
    "gcs key: empty": ("gcs", {"service_account_json": ""}, "invalid_credentials"),
    "bucket name: upper case": ("s3", {"bucket_name": "Acme-Docs"}, "invalid_bucket_name"),
    "bucket name: 2 characters": ("r2", {"bucket_name": "ab"}, "invalid_bucket_name"),
    "bucket name: empty": ("gcs", {"bucket_name": ""}, "invalid_bucket_name"),
    "bucket name: 64 characters": ("s3/file", {"bucket_name": "b" * 64}, "invalid_bucket_name"),
    "container name: double hyphen": (
        "azure/directory",
        {"container_name": "my--docs"},
        "invalid_bucket_name",
    ),
}

#: Requests the upstream accepts that older sandbox bounds refused: accepted, and the job
#: runs like any other.
UPSTREAM_ACCEPTS: dict[str, Send] = {
    "collection: starts with '-'": captain("url", collection="-docs"),
    "collection: a space": captain("url", collection="my%20docs"),
    "collection: a newline": captain("url", collection="a%0Ab"),
    "collection: 1024 characters": captain("s3", collection="c" * 1024),
    "collection: unicode": captain("text", collection="%C3%A9t%C3%A9"),
    "empty Idempotency-Key": post_json(
        "/v2/collections/docs/index/url", captain_body("url"), **{"Idempotency-Key": ""}
    ),
    "65 metadata keys": captain("url", custom_metadata={f"k{i}": i for i in range(65)}),
    "metadata: empty key, long value": captain("s3/file", custom_metadata={"": "v" * 5000}),
    "text: empty": captain("text", content=""),
    "url: empty": captain("url", urls=[""]),
    "url: empty, alone": captain("url", urls=REMOVE, url=""),
    "url: 8192 characters": captain("url", urls=["https://example.com/" + "u" * 8172]),
    "bucket region: long": captain("s3", bucket_region="r" * 100),
    "directory_path: empty": captain("gcs/directory", directory_path=""),
    "source: empty": post_json(SOURCES, {"space_id": SPACE_ID, "sources": [{"content": ""}]}),
    "source: 65 meta keys": post_json(
        SOURCES,
        {"space_id": SPACE_ID, "sources": [{**SOURCE, "meta": {str(i): i for i in range(65)}}]},
    ),
    "source: negative sequence": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "sequence": -1}]}
    ),
    "source: huge sequence": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "sequence": 2**40}]}
    ),
    "source: 65-character role": post_json(
        SOURCES, {"space_id": SPACE_ID, "sources": [{**SOURCE, "role": "r" * 65}]}
    ),
    "message: empty role": post_json(
        CONVERSATIONS, {"space_id": SPACE_ID, "messages": [{"role": "", "content": "x"}]}
    ),
    "message: 100,001 characters": post_json(
        CONVERSATIONS,
        {"space_id": SPACE_ID, "messages": [{"role": "user", "content": "x" * 100_001}]},
    ),
}


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, Tenant, Tenant]]:
    """One app per backend for the table of bad requests: each is checked to store
    nothing, so they can share it (building an app per case would triple the run)."""
    directory = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    for api in start(Settings(store=store_url(request.param, directory))):
        yield api, api.tenant("acme"), api.tenant("globex")


def _refused_and_nothing_stored(shared: tuple[Api, Tenant, Tenant], send: Send) -> None:
    api, acme, globex = shared
    before = stored(api, acme, globex)
    method, path, response = send(api, acme)
    assert_contract_error(response, method, path)
    assert stored(api, acme, globex) == before, "a refused request stored a job"


@pytest.mark.parametrize("case", sorted(CROSMOS_BAD))
def test_bad_crosmos_input(shared: tuple[Api, Tenant, Tenant], case: str) -> None:
    _refused_and_nothing_stored(shared, CROSMOS_BAD[case])


@pytest.mark.parametrize("case", sorted(CAPTAIN_BAD))
def test_bad_captain_input(shared: tuple[Api, Tenant, Tenant], case: str) -> None:
    _refused_and_nothing_stored(shared, CAPTAIN_BAD[case])


@pytest.mark.parametrize("case", sorted(REFUSED_BY_THE_CLOUD))
def test_what_the_cloud_refuses_fails_the_scan(
    shared: tuple[Api, Tenant, Tenant], case: str
) -> None:
    api, acme, _ = shared
    target, change, code = REFUSED_BY_THE_CLOUD[case]
    body = {**captain_body(target), **change}
    accepted = api.client.post(
        f"/v2/collections/docs/index/{target}", json=body, headers=acme.captain
    )
    job_id = _created(accepted)
    api.clock.advance(3600)
    job = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain).json()
    assert (job["status"], job["error_code"]) == ("failed", code)
    assert job["progress"]["current_stage"] == "scanning"
    for name, value in change.items():
        if name in SECRET_FIELDS and len(value) > 3:
            assert value not in accepted.text + json.dumps(job), "a credential is echoed"


@pytest.mark.parametrize("case", sorted(UPSTREAM_ACCEPTS))
def test_what_the_upstream_accepts_is_accepted(
    shared: tuple[Api, Tenant, Tenant], case: str
) -> None:
    api, acme, _ = shared
    _, path, response = UPSTREAM_ACCEPTS[case](api, acme)
    job_id = _created(response)
    api.clock.advance(3600)
    read = f"/api/v1/jobs/{job_id}" if path.startswith("/api/") else f"/v2/jobs/{job_id}"
    auth = acme.crosmos if path.startswith("/api/") else acme.captain
    job = api.client.get(read, headers=auth)
    assert job.status_code == 200, job.text
    assert job.json()["status"] in ("completed", "partial", "completed_with_failures"), job.text
    if "/v2/collections/" in path:
        collection = unquote(path.split("/")[3])
        assert job.json()["collection_name"] == collection
        listed = api.client.get("/v2/jobs", headers=auth, params={"collection": collection})
        assert job_id in {j["job_id"] for j in listed.json()["jobs"]}


def test_bad_files_paging(api: Api, acme: Tenant) -> None:
    def index(target: str) -> str:
        url = f"/v2/collections/docs/index/{target}"
        return _created(api.client.post(url, json=captain_body(target), headers=acme.captain))

    job_id, other = index("s3"), index("s3/directory")
    page = api.client.get(f"/v2/jobs/{other}", headers=acme.captain, params={"files_limit": 1})
    foreign_cursor = page.json()["files_page"]["next_cursor"]
    assert foreign_cursor
    before = stored(api, acme)
    for params in (
        {"files_cursor": "garbage"},
        {"files_cursor": foreign_cursor},
        {"files_cursor": ""},
        {"files_cursor": "c" * 129},
        {"files_cursor": "W10"},
        {"files_limit": 0},
        {"files_limit": 501},
        {"files_limit": -1},
        {"files_limit": "1.5"},
        {"files_limit": "ten"},
        {"files_limit": "\u0661\u0662"},
        {"files_limit": "\uff15"},
        {"files_limit": "99999999999999999999999"},
        {"files_limit": "9" * 5000},
    ):
        path = f"/v2/jobs/{job_id}"
        response = api.client.get(path, headers=acme.captain, params=params)
        assert response.status_code == 422, (params, response.text)
        assert_contract_error(response, "GET", path)
        assert response.json()["detail"][0]["loc"][0] == "query"
    assert stored(api, acme) == before


def _cursor(value: Any, *, padded: bool = False, alphabet: bytes = b"-_") -> str:
    raw = base64.b64encode(json.dumps(value, separators=(",", ":")).encode(), alphabet)
    return (raw if padded else raw.rstrip(b"=")).decode()


def test_forged_files_cursors_are_422(api: Api, acme: Tenant) -> None:
    """Only a cursor the job could have issued reads a page: its exact encoding, pointing
    after an item that has a next one. Anything else (bools are ints in Python, ordinals
    past the end or past SQLite's integers, other JSON) is the same 422, never a page."""
    body = {**captain_body("s3"), "max_files": 20}
    url = "/v2/collections/docs/index/s3"
    job_id = _created(api.client.post(url, json=body, headers=acme.captain))
    path = f"/v2/jobs/{job_id}"

    def page(cursor: str) -> httpx.Response:
        params = {"files_cursor": cursor, "files_limit": 2}
        return api.client.get(path, headers=acme.captain, params=params)

    issued = api.client.get(path, headers=acme.captain, params={"files_limit": 1}).json()
    assert issued["files_page"]["next_cursor"] == _cursor([job_id, 0])
    last_but_one = page(_cursor([job_id, 18]))
    assert last_but_one.status_code == 200, last_but_one.text
    assert len(last_but_one.json()["files"]) == 1
    assert last_but_one.json()["files_page"]["next_cursor"] is None
    canonical = _cursor([job_id, 12])  # 43 bytes: base64 would pad it with "=="
    forged = [
        _cursor([job_id, True]), _cursor([job_id, False]), _cursor([job_id, 1.0]),
        _cursor([job_id, 19]), _cursor([job_id, 20]), _cursor([job_id, 10**6]),
        _cursor([job_id, 2**63 - 1]), _cursor([job_id, 2**63]), _cursor([job_id, 2**64 - 1]),
        _cursor([job_id, 10**30]), _cursor([job_id, -1]), _cursor([job_id, None]),
        _cursor([job_id, "1"]), _cursor([job_id]), _cursor([job_id, 1, 2]), _cursor([1, job_id]),
        _cursor({job_id: 1}), _cursor({"job_id": job_id, "ordinal": 1}), _cursor(job_id),
        _cursor(1), _cursor(None), _cursor([job_id.upper(), 1]), _cursor([job_id, 12.0]),
        _cursor([job_id, 12], padded=True), canonical + "=", canonical + "===", canonical[:-1],
        " " + canonical, canonical.replace("", " ").strip(), "\u00e9" * 8, "!" * 8, "====",
        base64.urlsafe_b64encode(f'[ "{job_id}", 12 ]'.encode()).decode().rstrip("="),
    ]  # fmt: skip
    assert _cursor([job_id, 12], padded=True) == canonical + "=="
    before = stored(api, acme)
    for cursor in forged:
        response = page(cursor)
        assert response.status_code == 422, (cursor, response.text[:200])
        assert_contract_error(response, "GET", path)
        assert [item["loc"] for item in response.json()["detail"]] == [["query", "files_cursor"]]
    assert page(canonical).status_code == 200
    assert stored(api, acme) == before


def test_a_body_at_the_nesting_bound_is_accepted_and_replayed(api: Api, acme: Tenant) -> None:
    """Whatever the nesting bound lets through, the idempotency fingerprint and the plan's
    seed can encode (the same body twice plans the same job: the fingerprint ran)."""
    body = deep_sources(MAX_BODY_DEPTH)
    headers = {**acme.crosmos, "content-type": "application/json"}
    first = api.client.post(SOURCES, content=body, headers=headers)
    again = api.client.post(SOURCES, content=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202), first.text
    refused = api.client.post(SOURCES, content=deep_sources(MAX_BODY_DEPTH + 1), headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body"]
    assert str(MAX_BODY_DEPTH) in refused.json()["detail"][0]["ctx"]["error"]


def test_captain_job_ids_that_are_no_uuid_are_404(api: Api, acme: Tenant) -> None:
    for job_id in ("not-a-uuid", "job_s3_abc123", "x" * 64):
        for method, path in (("GET", f"/v2/jobs/{job_id}"), ("POST", f"/v2/jobs/{job_id}/cancel")):
            response = api.client.request(method, path, headers=acme.captain)
            assert response.status_code == 404
            assert_contract_error(response, method, path)


def test_organization_header(api: Api, acme: Tenant) -> None:
    key_only = {"Authorization": f"Bearer {acme.captain_key}"}
    missing = api.client.get("/v2/jobs", headers=key_only)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["header", "x-organization-id"]
    for organization in ("not-a-uuid", "", str(uuid.uuid4())):
        response = api.client.get(
            "/v2/jobs", headers={**key_only, "X-Organization-ID": organization}
        )
        assert_contract_error(response, "GET", "/v2/jobs")
    upper = {**key_only, "X-Organization-ID": acme.organization_id.upper()}
    assert api.client.get("/v2/jobs", headers=upper).status_code == 200


def test_an_integral_float_is_an_integer(api: Api, acme: Tenant) -> None:
    """JSON has one number type: 3.0 is the integer 3 (JSON Schema 2020-12 says so too, and
    the contract's validator accepts it). The job must be made, not a 500."""
    for target in ("s3", "gcs/directory", "azure", "r2"):
        response = api.client.post(
            f"/v2/collections/docs/index/{target}",
            json={**captain_body(target), "max_files": 3.0},
            headers=acme.captain,
        )
        assert response.status_code == 202, (target, response.status_code, response.text)
        job = api.client.get(f"/v2/jobs/{_created(response)}", headers=acme.captain).json()
        assert job["progress"]["files_total"] == 3


@pytest.mark.slow
def test_the_listing_bound_is_accepted(api: Api, acme: Tenant) -> None:
    """100,000 files, the contract's bound: accepted, and the job reads back in one page."""
    response = api.client.post(
        "/v2/collections/docs/index/s3",
        json={**captain_body("s3"), "max_files": 100_000},
        headers=acme.captain,
    )
    job_id = _created(response)
    page = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain, params={"files_limit": 500})
    assert page.status_code == 200
    assert page.json()["progress"]["files_total"] == 100_000
    assert len(page.json()["files"]) == 500


# -- bodies over the limit -----------------------------------------------------------------------


@pytest.fixture
def small_api(backend: str, tmp_path: Path) -> Iterator[Api]:
    yield from start(Settings(store=store_url(backend, tmp_path), max_body_bytes=4096))


def test_bodies_over_the_limit_are_413(small_api: Api) -> None:
    api = small_api
    acme = api.tenant("acme")
    before = stored(api, acme)
    big_source = {"space_id": SPACE_ID, "sources": [{"content": "x" * 5000}]}
    big_url = {**captain_body("url"), "custom_metadata": {"note": "x" * 5000}}

    def chunks(body: Any) -> Iterator[bytes]:
        raw = json.dumps(body).encode()
        for start_at in range(0, len(raw), 1000):
            yield raw[start_at : start_at + 1000]

    for path, body, auth in (
        (SOURCES, big_source, acme.crosmos),
        (
            CONVERSATIONS,
            {**CROSMOS_CREATES[CONVERSATIONS], "session_date": "x" * 5000},
            acme.crosmos,
        ),
        ("/v2/collections/docs/index/url", big_url, acme.captain),
    ):
        declared = api.client.post(path, json=body, headers=auth)
        # No Content-Length: the body arrives in chunks and is counted as it comes.
        streamed = api.client.post(
            path, content=chunks(body), headers={**auth, "content-type": "application/json"}
        )
        for response in (declared, streamed):
            assert response.status_code == 413, response.text
            assert response.json() == {"detail": "Request body too large"}
            assert_contract_error(response, "POST", path)
    # Just under the limit is read (and refused for what it says, not for its size).
    small = api.client.post(
        SOURCES, json={"space_id": SPACE_ID, "sources": [{"content": 1}]}, headers=acme.crosmos
    )
    assert small.status_code == 422
    assert stored(api, acme) == before


# -- a seeded loop of malformed requests --------------------------------------------------------


def _malformed_bodies(rng: random.Random, valid: Any) -> list[tuple[bytes, str | None]]:
    raw = json.dumps(valid).encode()
    cut = rng.randrange(1, len(raw))
    garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return [
        (raw[:cut], "application/json"),
        (b"\xff" + garbage, "application/json"),
        (json.dumps(rng.choice([[], 0, "x", None, True, [valid]])).encode(), "application/json"),
        (json.dumps({"\u0000": valid}).encode(), "application/json"),
        (raw, rng.choice(["text/plain", "application/xml", "multipart/form-data", "x/y"])),
        (raw.replace(b'"', b"'"), rng.choice([None, "application/json"])),
        (b"{" * rng.randrange(1, 3000), "application/json"),
    ]


def test_malformed_requests_never_get_a_5xx(
    api: Api, acme: Tenant, globex: Tenant, nothing_stored: None
) -> None:
    rng = random.Random(20240501)
    creates: list[tuple[str, Any, str]] = [(p, b, "crosmos") for p, b in CROSMOS_CREATES.items()]
    creates += [
        (f"/v2/collections/docs/index/{target}", captain_body(target), "captain")
        for target in CAPTAIN_TARGETS
    ]
    headers_for: dict[str, list[dict[str, Any]]] = {
        "crosmos": [
            acme.crosmos,
            {"Authorization": "Bearer"},
            {"Authorization": b"Bearer csk_\xff\x7f"},
            {"Authorization": "Basic YWNtZTpzZWNyZXQ="},
            {"Authorization": "Bearer a.b.c"},
            {},
        ],
        "captain": [
            acme.captain,
            {**acme.captain, "X-Organization-ID": b"\xe9t\xe9"},
            {**acme.captain, "X-Organization-ID": globex.organization_id},
            {**acme.captain, "Prefer": "scenario=" + "x" * 300},
            {"Authorization": f"Bearer {acme.captain_key}"},
            {},
        ],
    }
    answered: list[int] = []
    problems: list[str] = []

    def check(method: str, target: str, response: httpx.Response) -> None:
        answered.append(response.status_code)
        if response.status_code < 300:
            problems.append(f"{method} {target} -> {response.status_code}: accepted")
        json_reply = response.headers.get("content-type", "").startswith("application/json")
        if response.status_code >= 500 or not json_reply:
            problems.append(f"{method} {target} -> {response.status_code} {response.text[:80]}")

    for _ in range(6):
        for path, valid, name in creates:
            for raw, content_type in _malformed_bodies(rng, valid):
                headers = dict(rng.choice(headers_for[name]))
                if content_type is not None:
                    headers["content-type"] = content_type
                method = rng.choice(["POST", "POST", "POST", "PUT", "PATCH", "DELETE"])
                target = rng.choice([path, path + "/", path.upper(), path + "?x=%ff"])
                response = api.client.request(
                    method, target, content=raw, headers=headers, follow_redirects=False
                )
                check(method, target, response)
    for path in ("/v2/jobs/{}", "/v2/jobs/{}/cancel", "/api/v1/jobs/{}", "/v2/jobs{}"):
        for job_id in ("", "%00", "..", "%2F", "\u00e9", "1" * 500, "%0A", "a%0Ab", "a b", "-1"):
            for method in ("GET", "POST", "DELETE"):
                target = path.format(job_id)
                if (method, target) == ("GET", "/v2/jobs"):
                    continue  # the one well-formed request of the lot: the job list
                auth = acme.crosmos if target.startswith("/api/") else acme.captain
                response = api.client.request(method, target, headers=auth, follow_redirects=False)
                check(method, target, response)
    assert not problems, f"{len(problems)} bad answers, e.g.:\n" + "\n".join(problems[:25])
    # Only 4xx: a trailing slash is no operation (404), never a redirect built from the
    # Host header.
    assert len(answered) > 500 and set(answered) <= set(range(400, 500))


# -- credentials: never stored, logged or echoed ------------------------------------------------


INDEX_WITH_CREDENTIALS = [
    t for t in CAPTAIN_TARGETS if t.split("/")[0] in ("s3", "gcs", "azure", "r2")
]


def _index_everything(
    client: Any, base: str, who_headers: dict[str, str], fake: FakeCredentials
) -> list[Any]:
    """Every credentialed index operation: accepted, replayed with an idempotency key,
    refused for a broken field beside the credentials, and accepted with credentials the
    cloud would refuse. Returns every response."""
    responses = []
    for target in INDEX_WITH_CREDENTIALS:
        path = f"{base}/v2/collections/secrets/index/{target}"
        body = captain_body(target, fake)
        key = {"Idempotency-Key": f"secret-test-{target}"}
        for headers in (who_headers, {**who_headers, **key}, {**who_headers, **key}):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 202, response.text
            responses.append(response)
            job_id = response.json()["job_id"]
            responses.append(client.get(f"{base}/v2/jobs/{job_id}", headers=who_headers))
            responses.append(client.post(f"{base}/v2/jobs/{job_id}/cancel", headers=who_headers))
        for broken in ({"processing_type": "turbo"}, {"unknown": 1}, {"max_files": -1}):
            response = client.post(path, json={**body, **broken}, headers=who_headers)
            assert response.status_code == 422, response.text
            responses.append(response)
        # Reused key, other body: refused, and the refusal quotes nothing back.
        refused = client.post(
            path, json={**body, "custom_metadata": {"a": 1}}, headers={**who_headers, **key}
        )
        assert refused.status_code == 409
        responses.append(refused)
        # Credentials the cloud would refuse are accepted, and the job that fails its scan
        # does not quote them back either.
        secret = set(fake.for_provider(target.split("/")[0])) - {"account_name", "account_id"}
        bent = {k: v + "!" if k in secret else v for k, v in body.items()}
        accepted = client.post(path, json=bent, headers=who_headers)
        assert accepted.status_code == 202, accepted.text
        responses.append(accepted)
        failed = client.get(f"{base}/v2/jobs/{accepted.json()['job_id']}", headers=who_headers)
        assert failed.json()["error_code"] in (None, "invalid_credentials"), failed.text
        responses.append(failed)
    responses.append(client.get(f"{base}/v2/jobs", headers=who_headers, params={"limit": 200}))
    return responses


def _leaks(fake: FakeCredentials, text: str) -> list[str]:
    return [needle for needle in fake.needles if needle in text]


def _files_text(directory: Path) -> dict[str, str]:
    return {
        path.name: path.read_bytes().decode("latin-1")
        for path in directory.iterdir()
        if path.is_file() and ".db" in path.name
    }


def test_credentials_are_never_stored_logged_or_echoed(
    api: Api, acme: Tenant, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeCredentials.new()
    responses = _index_everything(api.client, "", acme.captain, fake)
    for response in responses:
        shown = response.text + json.dumps(dict(response.headers))
        assert not _leaks(fake, shown), (response.request.url, response.text[:300])
    assert not _leaks(fake, caplog.text)
    assert not _leaks(fake, repr([record.__dict__ for record in caplog.records]))
    if backend == "sqlite":
        files = _files_text(tmp_path)
        assert "pollable.db" in files
        for name, content in files.items():
            assert not _leaks(fake, content), f"a credential is in {name}"


def test_credentials_are_never_in_a_live_servers_files_or_logs(
    servers: Servers, db_url: str, tmp_path: Path
) -> None:
    acme = provision(db_url, "acme")["acme"]
    fake = FakeCredentials.new()
    server = servers.start(db_url, "--log-level", "trace")
    with httpx.Client(timeout=10.0) as client:
        responses = _index_everything(client, server.url, acme.captain, fake)
    for response in responses:
        assert not _leaks(fake, response.text + json.dumps(dict(response.headers)))
    # SIGKILL keeps the write-ahead log as it was: no checkpoint folds it away.
    server.kill()
    files = _files_text(tmp_path)
    assert {"live.db", "live.db-wal"} <= set(files), sorted(files)
    for name, content in files.items():
        assert not _leaks(fake, content), f"a credential is in {name}"
    log = server.output()
    assert "POST /v2/collections/secrets/index/s3" in log, "the server logged no requests"
    assert not _leaks(fake, log), "a credential is in the server's log"
