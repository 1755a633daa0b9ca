"""The dashboard over HTTP: sign-in, sessions and their cookie, CSRF and same-site checks,
escaping, tenant isolation, and that looking at the dashboard never fills the log."""

from __future__ import annotations

from typing import Any

import pytest
from markupsafe import escape

from pollable.dashboard import session as sessions
from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url
from tests.dashboard.pages import bearer, csrf_of, sign_in
from tests.handlers.sandbox.test_clocks import index, ingest

ADMIN_TOKEN = "an-admin-token-for-the-dashboard-tests"
MARKUP = '<script>alert("owned")</script><img src=x onerror=alert(1)>'


@pytest.fixture(params=["memory", "sqlite"])
def api(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    yield from start(Settings(store=store_url(request.param, tmp_path), admin_token=ADMIN_TOKEN))


def test_the_root_points_to_the_dashboard_and_the_documents(api: Api) -> None:
    root = api.client.get("/")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    for link in ("/dashboard/", "/docs/", "/v2/docs/", "/sandbox/docs/"):
        assert f'href="{link}"' in root.text
    assert api.client.get("/dashboard", follow_redirects=False).headers["location"] == "/dashboard/"
    away = api.client.get("/dashboard/", follow_redirects=False)
    assert (away.status_code, away.headers["location"]) == (303, "/dashboard/signin")


def test_signing_in_keeps_only_a_signed_digest_in_an_httponly_cookie(
    api: Api, acme: Tenant
) -> None:
    key = bearer(acme.crosmos)
    answer = sign_in(api.client, key)
    cookie = next(
        line
        for line in answer.headers.get_list("set-cookie")
        if line.startswith("pollable_session=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= attributes
    assert key not in cookie and key not in answer.headers.get("location", "")
    for page in ("jobs", "requests", "clocks", "faults", "report", "keys", "reset"):
        shown = api.client.get(f"/dashboard/{page}")
        assert shown.status_code == 200, (page, shown.text)
        assert key not in shown.text, page
        assert "default-src 'none'" in shown.headers["content-security-policy"]
        assert shown.headers["cache-control"] == "no-store"


def test_a_wrong_credential_is_refused_and_not_echoed(api: Api) -> None:
    form = api.client.get("/dashboard/signin")
    wrong = "csk_not-a-key-of-this-sandbox"
    answer = api.client.post(
        "/dashboard/signin", data={"csrf": csrf_of(form.text), "credential": wrong}
    )
    assert answer.status_code == 401 and wrong not in answer.text
    assert "pollable_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_needs_the_form_of_its_own_page(api: Api, acme: Tenant) -> None:
    key = bearer(acme.crosmos)
    form = api.client.get("/dashboard/signin")
    csrf = csrf_of(form.text)
    forged = api.client.post("/dashboard/signin", data={"csrf": "forged", "credential": key})
    assert forged.status_code == 403
    other_site = api.client.post(
        "/dashboard/signin", data={"csrf": csrf, "credential": key},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert other_site.status_code == 403
    api.client.cookies.clear()
    no_cookie = api.client.post("/dashboard/signin", data={"csrf": csrf, "credential": key})
    assert no_cookie.status_code == 403


def test_forms_need_the_sessions_token_and_this_site(api: Api, acme: Tenant) -> None:
    sign_in(api.client, bearer(acme.crosmos))
    csrf = csrf_of(api.client.get("/dashboard/clocks").text)
    for data, headers in (
        ({"name": "x"}, {}),
        ({"name": "x", "csrf": "forged"}, {}),
        ({"name": "x", "csrf": csrf}, {"Origin": "https://evil.example"}),
        ({"name": "x", "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        refused = api.client.post("/dashboard/clocks", data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
    assert api.client.get("/sandbox/v1/clocks", headers=acme.crosmos).json()["data"] == []
    made = api.client.post("/dashboard/clocks", data={"name": "x", "csrf": csrf})
    assert made.status_code == 200 and "<code>clk_" in made.text
    # Not a form, or too big to be one: refused unread.
    as_json = api.client.post("/dashboard/clocks", json={"name": "x", "csrf": csrf})
    assert as_json.status_code == 403
    huge = api.client.post("/dashboard/clocks", data={"csrf": csrf, "name": "x" * 20_000})
    assert huge.status_code == 403


def test_a_tampered_or_expired_session_signs_out(api: Api, acme: Tenant) -> None:
    sign_in(api.client, bearer(acme.crosmos))
    value = api.client.cookies["pollable_session"]
    payload, mac = value.split(".")
    api.client.cookies.set("pollable_session", payload + "." + mac[::-1], path="/dashboard")
    away = api.client.get("/dashboard/jobs", follow_redirects=False)
    assert away.headers["location"] == "/dashboard/signin"
    key = api.services.authenticator.derived_key("pollable dashboard session")
    held = sessions.Session.unseal(key, value, 0.0)
    assert held is not None
    expired = sessions.Session(held.issuer, held.digest, held.nonce, 1.0).seal(key)
    api.client.cookies.set("pollable_session", expired, path="/dashboard")
    assert api.client.get("/dashboard/jobs", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_sessions(api: Api, acme: Tenant) -> None:
    sign_in(api.client, bearer(acme.captain))
    assert api.client.get("/dashboard/jobs").status_code == 200
    keys = api.client.get(f"/sandbox/v1/tenants/{acme.tenant.id}/keys", headers=acme.crosmos)
    (captain,) = [k for k in keys.json()["data"] if k["api"] == "captain"]
    revoked = api.client.delete(
        f"/sandbox/v1/tenants/{acme.tenant.id}/keys/{captain['id']}", headers=acme.crosmos
    )
    assert revoked.status_code == 200, revoked.text
    away = api.client.get("/dashboard/jobs", follow_redirects=False)
    assert away.headers["location"] == "/dashboard/signin"


def test_another_tenants_job_is_not_found(api: Api, acme: Tenant, globex: Tenant) -> None:
    theirs = ingest(api, globex.crosmos)
    sign_in(api.client, bearer(acme.crosmos))
    page = api.client.get(f"/dashboard/jobs/{theirs}")
    assert page.status_code == 404 and "Job not found" in page.text
    assert theirs not in api.client.get("/dashboard/jobs").text


def test_the_admin_sees_every_tenant(api: Api, acme: Tenant, globex: Tenant) -> None:
    job_id = ingest(api, globex.crosmos)
    sign_in(api.client, ADMIN_TOKEN)
    assert api.client.get("/dashboard/", follow_redirects=False).headers["location"] == (
        "/dashboard/tenants"
    )
    tenants = api.client.get("/dashboard/tenants").text
    assert "acme" in tenants and "globex" in tenants
    page = api.client.get(f"/dashboard/jobs/{job_id}", params={"tenant": globex.tenant.id})
    assert page.status_code == 200 and job_id in page.text
    assert ADMIN_TOKEN not in page.text


def test_markup_from_requests_is_escaped(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, {**acme.crosmos, "User-Agent": MARKUP, "X-Stainless-Lang": MARKUP})
    api.client.post("/sandbox/v1/clocks", json={"name": MARKUP[:64]}, headers=acme.crosmos)
    api.client.get(f"/api/v1/jobs/{MARKUP}", params={"q": MARKUP}, headers=acme.crosmos)
    index(api, acme.captain)
    sign_in(api.client, bearer(acme.crosmos))
    entries = api.client.get("/sandbox/v1/requests", headers=acme.crosmos).json()["data"]
    pages = ["requests", "clocks", "report", "jobs", f"jobs/{job_id}"]
    pages += [f"requests/{entry['id']}" for entry in entries]
    for page in pages:
        shown = api.client.get(f"/dashboard/{page}")
        assert shown.status_code == 200, (page, shown.text)
        assert "<script>alert" not in shown.text and "<img src=x" not in shown.text, page
    detail = api.client.get(f"/dashboard/requests/{entries[-1]['id']}").text
    # The User-Agent the ingest sent, shown as text.
    assert str(escape(MARKUP)) in detail


def test_looking_at_the_dashboard_logs_nothing(api: Api, acme: Tenant) -> None:
    ingest(api, acme.crosmos)
    before = api.client.get("/sandbox/v1/requests/count", headers=acme.crosmos).json()["count"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    unowned = api.client.get("/sandbox/v1/requests/count", headers=admin).json()["count"]
    sign_in(api.client, bearer(acme.crosmos))
    for page in ("jobs", "requests", "clocks", "keys"):
        api.client.get(f"/dashboard/{page}")
    csrf = csrf_of(api.client.get("/dashboard/clocks").text)
    api.client.post("/dashboard/clocks", data={"csrf": csrf, "name": "seen"})
    assert api.client.get("/sandbox/v1/requests/count", headers=acme.crosmos).json() == {
        "count": before
    }
    assert api.client.get("/sandbox/v1/requests/count", headers=admin).json() == {"count": unowned}


def test_a_finished_jobs_page_shows_its_kept_reply(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme.crosmos)
    api.clock.advance(100_000)
    read = api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos)
    assert read.status_code == 200 and read.json()["status"] == "completed"
    assert len(api.services.final_replies) == 1  # the page's own read reuses this reply
    sign_in(api.client, bearer(acme.crosmos))
    for _ in range(2):
        page = api.client.get(f"/dashboard/jobs/{job_id}")
        assert page.status_code == 200 and job_id in page.text and "completed" in page.text
