"""Bearer keys (stored hashed), JWT access tokens, organizations, and security first."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from pollable.handlers.captain import DESCRIPTOR as CAPTAIN
from pollable.handlers.crosmos import DESCRIPTOR as CROSMOS
from pollable.handlers.descriptor import hash_key
from pollable.server.auth import new_jwt
from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

JOB = "/api/v1/jobs/3c90c3cc-0d44-4b50-8888-8dd25736052a"
SECRET = "a-configured-secret-of-at-least-32-bytes"


def test_keys_look_like_the_upstream_ones() -> None:
    assert CROSMOS.keys.new().startswith("csk_")
    assert CAPTAIN.keys.new().startswith("cap_dev_")
    assert CAPTAIN.keys.new("prod").startswith("cap_prod_")
    key = CAPTAIN.keys.new()
    assert CAPTAIN.keys.label(key) == key[:12] and len(key) > 40
    assert CROSMOS.keys.label(CROSMOS.keys.new()).startswith("csk_")
    assert hash_key(key) != key and len(hash_key(key)) == 64


def test_missing_or_malformed_credentials_are_401(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "x"},
    ):
        response = api.client.get(JOB, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"detail": "Not authenticated"}
        assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_keys_are_401(api: Api) -> None:
    response = api.client.get(JOB, headers={"Authorization": f"Bearer {CROSMOS.keys.new()}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid authentication credentials"}


def test_security_runs_before_validation(api: Api) -> None:
    assert api.client.get("/api/v1/jobs/not-a-uuid").status_code == 401
    assert api.client.post("/api/v1/sources", content=b"{not json").status_code == 401


def test_keys_work_only_on_their_own_api(api: Api, acme: Tenant) -> None:
    assert api.client.get(JOB, headers=acme.crosmos).status_code == 404
    cross = {"Authorization": f"Bearer {acme.captain_key}"}
    assert api.client.get(JOB, headers=cross).status_code == 401
    wrong = {**acme.captain, "Authorization": f"Bearer {acme.crosmos_key}"}
    assert api.client.get("/v2/jobs", headers=wrong).status_code == 401


def test_organization_must_match_the_key(api: Api, acme: Tenant, globex: Tenant) -> None:
    assert api.client.get("/v2/jobs", headers=acme.captain).status_code == 200
    mismatch = {**acme.captain, "X-Organization-ID": globex.organization_id}
    response = api.client.get("/v2/jobs", headers=mismatch)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "X-Organization-ID does not match the API key's organization"
    }
    upper = {**acme.captain, "X-Organization-ID": acme.organization_id.upper()}
    assert api.client.get("/v2/jobs", headers=upper).status_code == 200


def test_jwt_access_tokens_work_for_crosmos(api: Api, acme: Tenant) -> None:
    secret = api.run(api.services.store.meta, "jwt_secret", "unused")
    token = new_jwt(secret, "acme")
    assert api.client.get(JOB, headers={"Authorization": f"Bearer {token}"}).status_code == 404
    forged = new_jwt("not-the-secret-but-just-as-long-as-one", "acme")
    assert api.client.get(JOB, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    expired = jwt.encode({"sub": "acme", "exp": 1}, secret, "HS256")
    assert api.client.get(JOB, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    stranger = new_jwt(secret, "nobody")
    assert api.client.get(JOB, headers={"Authorization": f"Bearer {stranger}"}).status_code == 401
    on_captain = {"Authorization": f"Bearer {token}", "X-Organization-ID": acme.organization_id}
    assert api.client.get("/v2/jobs", headers=on_captain).status_code == 401


def test_a_configured_jwt_secret_is_used(tmp_path: Path) -> None:
    for api in start(Settings(store=store_url("sqlite", tmp_path), jwt_secret=SECRET)):
        api.tenant("acme")
        token = new_jwt(SECRET, "acme")
        assert api.client.get(JOB, headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_keys_are_stored_hashed(tmp_path: Path) -> None:
    for api in start(Settings(store=store_url("sqlite", tmp_path))):
        tenant = api.tenant("acme")
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("pollable.db*"))
    assert tenant.crosmos_key.encode() not in raw and tenant.captain_key.encode() not in raw
    assert hash_key(tenant.crosmos_key).encode() in raw


@pytest.mark.parametrize("header", ["Bearer  spaced", "bearer lower"])
def test_scheme_is_case_insensitive_and_tolerant(api: Api, header: str) -> None:
    assert api.client.get(JOB, headers={"Authorization": header}).status_code == 401


def test_whitespace_around_header_values_is_not_part_of_them(api: Api, acme: Tenant) -> None:
    """RFC 9110 section 5.5: leading and trailing SP and HTAB are not part of a field value
    (h11 strips them; a test client or another HTTP server may not)."""
    for padding in (" ", "\t", " \t "):
        crosmos = {"Authorization": f"{padding}Bearer {acme.crosmos_key}{padding}"}
        assert api.client.get(JOB, headers=crosmos).status_code == 404, repr(padding)
        captain = {
            "Authorization": f"Bearer {acme.captain_key}{padding}",
            "X-Organization-ID": f"{padding}{acme.organization_id}{padding}",
        }
        assert api.client.get("/v2/jobs", headers=captain).status_code == 200, repr(padding)
    # Whitespace inside a value is part of it.
    inner = {"Authorization": f"Bearer {acme.crosmos_key[:6]} {acme.crosmos_key[6:]}"}
    assert api.client.get(JOB, headers=inner).status_code == 401


def test_a_repeated_organization_header_is_read_as_its_first_line(
    api: Api, acme: Tenant, globex: Tenant
) -> None:
    """X-Organization-ID is no list (RFC 9110 section 5.3): a repeated one is read as its
    first field line, by authentication and by validation alike, as FastAPI reads it."""
    key = ("Authorization", f"Bearer {acme.captain_key}")
    own, other = acme.organization_id, globex.organization_id

    def status(*organizations: str) -> int:
        headers = [key, *(("X-Organization-ID", org) for org in organizations)]
        return api.client.get("/v2/jobs", headers=headers).status_code

    assert status(own, other) == 200
    assert status(own, "not-a-uuid") == 200
    assert status(own, "") == 200
    assert status(other, own) == 403
    assert status("not-a-uuid", own) == 403
