"""A key revoked through one server process is refused at once by every other process on
the same store: keys are read from the store on every request, never cached."""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.conftest import ON_EVERY_STORE
from tests.conformance.live import Servers, Tenant

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ON_EVERY_STORE, indirect=True)]

JOB = "/api/v1/jobs/3c90c3cc-0d44-4b50-8888-8dd25736052a"


def test_a_revocation_through_one_process_is_seen_by_the_other_at_once(
    servers: Servers, db_url: str, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    first, second = servers.start_many(2, db_url)
    with httpx.Client(timeout=10.0) as http:
        keys = f"/sandbox/v1/tenants/{acme.tenant.id}/keys"
        made = http.post(first.url + keys, json={"api": "crosmos"}, headers=acme.crosmos)
        assert made.status_code == 201, made.text
        key = made.json()
        fresh = {"Authorization": f"Bearer {key['key']}"}
        # Both processes accept the new key (the second has now read it once).
        for server in (first, second):
            assert http.get(server.url + JOB, headers=fresh).status_code == 404
        revoked = http.delete(f"{second.url}{keys}/{key['id']}", headers=acme.crosmos)
        assert revoked.status_code == 200, revoked.text
        # The very next request to either process is refused.
        for server in (first, second):
            refused = http.get(server.url + JOB, headers=fresh)
            assert refused.status_code == 401, refused.text
        # The tenant's other key still works everywhere.
        for server in (first, second):
            assert http.get(server.url + JOB, headers=acme.crosmos).status_code == 404
