"""The dashboard in a real browser (headless Chromium from the system, driven by Playwright),
against the pytest plugin's in-process server, with jobs made by the official SDKs.

Each test saves screenshots of the pages it sees under ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from typing import Any

import crosmos
import pytest
from playwright.sync_api import expect

from pollable.testing.sandbox import Sandbox
from tests.dashboard.browser import screenshot_path
from tests.dashboard.conftest import sign_in

SPACE_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MARKUP = '<script>window.__owned = 1</script><img src=x onerror="window.__owned = 2">'


def captain_job(sandbox: Sandbox, files: int = 120, collection: str = "docs") -> str:
    accepted = sandbox.captain().indexing.index_s3bucket_v2(
        collection,
        bucket_name="acme-docs",
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        processing_type="basic",
        max_files=files,
    )
    return str(accepted.job_id)


def crosmos_job(sandbox: Sandbox, content: str = "Ada met Alan in London.") -> str:
    accepted = sandbox.crosmos().sources.ingest(space_id=SPACE_ID, sources=[{"content": content}])
    return str(accepted.job_id)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(screenshot_path(name)), full_page=True)


def test_sign_in_follow_a_job_as_its_clock_moves(page: Any, pollable: Sandbox) -> None:
    captain = captain_job(pollable)
    words = crosmos_job(pollable)
    sign_in(page, pollable.base_url, pollable.crosmos_key)
    shot(page, "jobs")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(words)  # newest first
    expect(rows.nth(1)).to_contain_text(captain)
    page.get_by_label("API").select_option("crosmos")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text(words)

    page.goto(f"{pollable.base_url}/dashboard/jobs/{captain}")
    expect(page.locator("#job-status")).to_have_text("pending")
    expect(page.locator("#timeline .now")).to_have_count(1)
    expect(page.locator("#timeline rect.phase")).to_have_count(4)
    shot(page, "job-pending")
    field = page.get_by_label("Advance until the job is")
    field.fill("running")
    field.press("Enter")
    expect(page.locator("#job-status")).to_have_text("running")
    before = page.locator("#timeline .now").get_attribute("x1")
    page.get_by_label("Advance by seconds").fill("30")
    page.get_by_role("button", name="Advance", exact=True).click()
    expect(page.locator("#timeline .now")).not_to_have_attribute("x1", before or "")
    expect(page.locator("#job-settled")).not_to_have_text(re.compile(r"^0 of"))
    shot(page, "job-running")
    # The first screen of it, as the README shows it (docs/dashboard-job.png).
    page.screenshot(path=str(screenshot_path("job-running-top")))
    page.get_by_role("link", name="Next items").click()
    expect(page.locator("#items tr")).to_have_count(50)
    expect(page.locator("#items tr").first).to_contain_text("50")
    page.goto(f"{pollable.base_url}/dashboard/jobs/{captain}")
    page.get_by_label("Advance until the job is").fill("completed")
    page.get_by_role("button", name="Advance until").click()
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator("#job-settled")).to_have_text("120 of 120")
    shot(page, "job")
    # What touched it, from the SDK: its create, with the SDK named.
    expect(page.get_by_text("/v2/collections/docs/index/s3").first).to_be_visible()
    # The credential never reaches the page, and the cookie is out of a script's reach.
    assert pollable.crosmos_key not in page.content()
    assert page.evaluate("document.cookie") == ""
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "pollable_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert pollable.crosmos_key not in cookie["value"]


def test_find_a_request_by_its_request_id(page: Any, pollable: Sandbox) -> None:
    job_id = crosmos_job(pollable)
    raw = pollable.crosmos().jobs.with_raw_response.get_status(job_id)
    request_id = raw.headers["Request-Id"]
    sign_in(page, pollable.base_url, pollable.captain_key)
    page.get_by_role("link", name="Requests").click()
    expect(page.locator("#log-rows tr").first).to_contain_text(request_id)
    shot(page, "requests")
    page.get_by_label("Request-Id").fill(request_id)
    page.get_by_label("Request-Id").press("Enter")
    expect(page.locator("#request-id")).to_have_text(request_id)
    expect(page.locator("dl.facts")).to_contain_text("stainless: Crosmos 0.2.0")
    expect(page.locator("dl.facts")).to_contain_text(re.compile(r"Retry attempt\s*0"))
    # The key it was sent with is redacted in the log, so on the page too.
    expect(page.get_by_text("[redacted]").first).to_be_visible()
    assert pollable.crosmos_key not in page.content()
    shot(page, "request")


def test_the_log_follows_live(page: Any, pollable: Sandbox) -> None:
    sign_in(page, pollable.base_url, pollable.captain_key)
    page.goto(f"{pollable.base_url}/dashboard/requests?follow=1")
    job_id = crosmos_job(pollable)
    # No reload: the page's script fetches the newest entries.
    expect(page.locator("#log-rows")).to_contain_text(job_id, timeout=8_000)


def test_revoke_a_key_and_the_sdk_gets_401(page: Any, pollable: Sandbox) -> None:
    client = pollable.crosmos()
    job_id = crosmos_job(pollable)
    sign_in(page, pollable.base_url, pollable.captain_key)
    page.get_by_role("link", name="Keys").click()
    shot(page, "keys")
    label = pollable.crosmos_key[: len("csk_") + 4]
    page.get_by_role("button", name=re.compile(f"Revoke key {re.escape(label)}")).click()
    expect(page.locator("tbody tr", has_text=label).get_by_role("button")).to_have_count(0)
    with pytest.raises(crosmos.AuthenticationError):
        client.jobs.get_status(job_id)
    # Creating a key shows it once, on that answer.
    page.get_by_label("API", exact=True).select_option("crosmos")
    page.get_by_role("button", name="Create key").click()
    fresh = page.locator("#new-key").inner_text()
    assert fresh.startswith("csk_")
    assert pollable.crosmos(api_key=fresh).jobs.get_status(job_id).job_id == job_id
    page.reload()
    assert fresh not in page.content()


def test_revoking_the_signed_in_key_ends_the_session(page: Any, pollable: Sandbox) -> None:
    sign_in(page, pollable.base_url, pollable.captain_key)
    page.get_by_role("link", name="Keys").click()
    label = pollable.captain_key[: len("cap_dev_") + 4]
    page.get_by_role("button", name=re.compile(f"Revoke key {re.escape(label)}")).click()
    # The control plane refuses to revoke the key a request is made with, and says so.
    expect(page.get_by_role("alert")).to_contain_text("revoke it with another key")
    (key,) = [k for k in pollable.client.list_keys(pollable.tenant_id) if k["label"] == label]
    pollable.client.revoke_key(pollable.tenant_id, key["id"])
    page.goto(f"{pollable.base_url}/dashboard/jobs")
    page.wait_for_url("**/dashboard/signin")
    expect(page.get_by_label("API key or admin token")).to_be_visible()


def test_markup_from_requests_renders_as_text(page: Any, pollable: Sandbox) -> None:
    client = pollable.crosmos(default_headers={"X-Stainless-Package-Version": MARKUP})
    job_id = str(
        client.sources.ingest(
            space_id=SPACE_ID, sources=[{"content": MARKUP}], extra_headers={"User-Agent": MARKUP}
        ).job_id
    )
    pollable.client.create_clock(name=MARKUP[:64])
    pollable.fault(status=503, job_id=MARKUP[:64])
    with pytest.raises(crosmos.APIStatusError):
        client.jobs.get_status(MARKUP)
    sign_in(page, pollable.base_url, pollable.captain_key)
    pages = ["requests", "clocks", "faults", "report", f"jobs/{job_id}", "jobs"]
    entries = pollable.requests(job_id=job_id) + pollable.requests(status=422)
    pages += [f"requests/{entry['id']}" for entry in entries]
    for name in pages:
        page.goto(f"{pollable.base_url}/dashboard/{name}")
        assert page.evaluate("window.__owned") is None, name
        assert page.locator("main script, main img").count() == 0, name
    page.goto(f"{pollable.base_url}/dashboard/requests/{entries[0]['id']}")
    expect(page.get_by_text(MARKUP).first).to_be_attached()
    shot(page, "markup-as-text")


def test_admin_picks_a_tenant_and_resets_it(
    page: Any, pollable: Sandbox, pollable_server: Any
) -> None:
    job_id = crosmos_job(pollable)
    page.goto(f"{pollable.base_url}/dashboard/")
    page.get_by_label("API key or admin token").fill(pollable_server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/tenants")
    shot(page, "tenants")
    page.get_by_role("link", name=pollable.tenant["name"]).click()
    expect(page.locator("tbody")).to_contain_text(job_id)
    page.get_by_role("link", name="Reset").click()
    page.get_by_label("I want to delete this tenant's data").check()
    page.get_by_role("button", name="Reset").click()
    expect(page.get_by_role("status")).to_contain_text("Reset")
    shot(page, "reset")
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator("tbody")).to_contain_text("No jobs match")


def test_clocks_faults_and_the_report(page: Any, pollable: Sandbox) -> None:
    job_id = captain_job(pollable, files=5)
    sign_in(page, pollable.base_url, pollable.crosmos_key)
    page.get_by_role("link", name="Clocks").click()
    page.get_by_label("Name", exact=True).fill("ci-clock-7")
    page.get_by_label("Frozen at (RFC 3339; empty: now)").fill("2031-01-01T00:00:00Z")
    page.get_by_role("button", name="Create clock").click()
    row = page.locator("tbody tr", has_text="ci-clock-7")
    expect(row).to_contain_text("2031-01-01T00:00:00Z")
    row.get_by_label("Seconds").fill("3600")
    row.get_by_role("button", name="Advance", exact=True).click()
    expect(page.locator("tbody tr", has_text="ci-clock-7")).to_contain_text("2031-01-01T01:00:00Z")
    own = page.locator("tbody tr", has_text=pollable.clock.id)
    own.get_by_label("Until job").fill(job_id)
    own.get_by_label("named").fill("completed")
    own.get_by_role("button", name="Advance until").click()
    page.wait_for_url("**/dashboard/clocks")
    shot(page, "clocks")
    assert pollable.captain().jobs.get_job_status_v2(job_id).status == "completed"

    page.get_by_role("link", name="Faults").click()
    page.get_by_label("API", exact=True).select_option("captain")
    page.get_by_label("Answer").select_option("503")
    page.get_by_label("When").select_option("next")
    page.get_by_label("N", exact=True).fill("1")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text("503")
    shot(page, "faults")
    page.get_by_role("button", name=re.compile("Delete rule")).click()
    expect(page.locator("tbody")).to_contain_text("No fault rules")

    pollable.captain().jobs.get_job_status_v2(job_id)  # a poll after the end: a finding
    page.get_by_role("link", name="Polling report").click()
    expect(page.locator("tbody tr", has_text="poll_after_terminal").first).to_be_visible()
    shot(page, "report")


PAGES = ["jobs", "requests", "clocks", "faults", "report", "keys", "reset"]


def test_every_control_is_labelled_and_reachable_by_keyboard(page: Any, pollable: Sandbox) -> None:
    job_id = captain_job(pollable, files=3)
    sign_in(page, pollable.base_url, pollable.crosmos_key)
    for name in [*PAGES, f"jobs/{job_id}", "signin"]:
        page.goto(f"{pollable.base_url}/dashboard/{name}")
        controls = page.locator("input:not([type=hidden]), select, textarea")
        for i in range(controls.count()):
            control = controls.nth(i)
            name_of = control.evaluate(
                "e => (e.labels && e.labels.length ? e.labels[0].innerText : '')"
                " || e.getAttribute('aria-label') || ''"
            )
            assert name_of.strip(), (
                f"{name}: an unlabelled control {control.evaluate('e => e.outerHTML')}"
            )
            # And Playwright finds it by that label, as a screen reader would name it.
            assert page.get_by_label(name_of.strip(), exact=True).count() >= 1, (name, name_of)
        for form in page.locator("main form").all():
            assert form.locator("button[type=submit]").count() == 1, name
    shot(page, "signin")
    page.goto(f"{pollable.base_url}/")
    expect(page.get_by_role("link", name="The dashboard")).to_be_visible()
    shot(page, "root")
    # Tab order: the skip link first, then the navigation, each reached by the keyboard.
    page.goto(f"{pollable.base_url}/dashboard/jobs")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    seen = []
    for _ in range(9):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert seen[:8] == [
        "Jobs",
        "Requests",
        "Clocks",
        "Faults",
        "Polling report",
        "Keys",
        "Reset",
        "Sign out",
    ]
    # Back to "Reset", and Enter on a focused link follows it.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Reset"
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/reset")
