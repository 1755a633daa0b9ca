"""Polling headers on the job reads of both job APIs, over HTTP with response validation
on: ``Retry-After`` until the job next changes (on its own clock), ``ETag``, and
``If-None-Match`` answered 304."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pollable.server.settings import Settings
from tests.conftest import Api, Tenant, start, store_url

SPACE = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
SOURCES = {"space_id": SPACE, "sources": [{"content": "Ada met Alan."}, {"content": "Grace."}]}
BUCKET = {
    "bucket_name": "acme-docs",
    "processing_type": "basic",
    "max_files": 6,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
#: What a Captain read shows that moves with every second of the clock, not with the job.
TICKING = ("elapsed_seconds", "estimated_time_remaining_seconds")


def crosmos_job(api: Api, tenant: Tenant, scenario: str = "happy", **headers: str) -> str:
    made = api.client.post(
        "/api/v1/sources",
        json=SOURCES,
        headers={**tenant.crosmos, "Prefer": f"scenario={scenario}", **headers},
    )
    assert made.status_code == 202, made.text
    return f"/api/v1/jobs/{made.json()['job_id']}"


def captain_job(api: Api, tenant: Tenant, scenario: str = "happy", **headers: str) -> str:
    made = api.client.post(
        "/v2/collections/docs/index/s3",
        json=BUCKET,
        headers={**tenant.captain, "Prefer": f"scenario={scenario}", **headers},
    )
    assert made.status_code == 202, made.text
    return f"/v2/jobs/{made.json()['job_id']}"


def read(api: Api, tenant: Tenant, path: str, **headers: str) -> httpx.Response:
    keys = tenant.captain if path.startswith("/v2/") else tenant.crosmos
    response = api.client.get(path, headers={**keys, **headers})
    assert response.status_code in (200, 304), response.text
    return response


def shown(response: httpx.Response) -> Any:
    """What the job is, without the counters that tick with the clock."""
    body = response.json()
    for name in TICKING:
        body.get("progress", {}).pop(name, None)
        body.pop(name, None)
    return body


def terminal(response: httpx.Response) -> bool:
    return response.json()["status"] not in ("pending", "processing", "running")


@pytest.mark.parametrize("make", [crosmos_job, captain_job], ids=["crosmos", "captain"])
def test_waiting_retry_after_always_shows_a_change_and_less_never_does(
    api: Api, acme: Tenant, make: Any
) -> None:
    path = make(api, acme)
    response = read(api, acme, path)
    polls = 0
    while not terminal(response):
        wait = int(response.headers["Retry-After"])
        assert 1 <= wait <= 60
        if wait > 1:
            api.clock.advance(wait - 1)  # ceil(x) - 1 < x: too soon, nothing new
            sooner = read(api, acme, path)
            assert shown(sooner) == shown(response)
            api.clock.advance(1)
        else:
            api.clock.advance(wait)
        following = read(api, acme, path)
        assert shown(following) != shown(response)
        response = following
        polls += 1
        assert polls < 100
    assert "Retry-After" not in response.headers
    assert response.headers["ETag"]
    assert polls >= 2  # it went through pending and running to its end


def test_a_read_without_progress_waits_for_its_status(api: Api, acme: Tenant) -> None:
    """A Crosmos read shows no per-source progress: Retry-After is the time until its
    status changes, not until the next source is done."""
    sources = {"space_id": SPACE, "sources": [{"content": f"Source {i}."} for i in range(8)]}
    made = api.client.post(
        "/api/v1/sources", json=sources, headers={**acme.crosmos, "Prefer": "scenario=slow"}
    )
    path = f"/api/v1/jobs/{made.json()['job_id']}"  # about 10 s queued, then 95 s running
    files = captain_job(api, acme, "slow")  # the same, in 20 s of scanning, then by file
    api.clock.advance(12)
    running = read(api, acme, path)
    assert running.json()["status"] == "processing"
    assert int(running.headers["Retry-After"]) == 60  # the job ends later than that
    scanning = read(api, acme, files)
    assert scanning.json()["progress"]["current_stage"] == "scanning"
    assert int(scanning.headers["Retry-After"]) <= 20  # the first file starts


def test_retry_after_follows_the_time_scale(tmp_path: Any) -> None:
    for scale, expected in ((1.0, range(8, 13)), (0.1, range(1, 3))):
        for api in start(Settings(store=store_url("memory", tmp_path), time_scale=scale)):
            acme = api.tenant("acme")
            pending = read(api, acme, crosmos_job(api, acme, "slow"))
            assert pending.json()["status"] == "pending"
            assert int(pending.headers["Retry-After"]) in expected, scale


def test_retry_after_is_in_the_seconds_of_the_jobs_test_clock(api: Api, acme: Tenant) -> None:
    made = api.client.post(
        "/sandbox/v1/clocks", json={"now": "2030-01-01T00:00:00Z"}, headers=acme.crosmos
    )
    assert made.status_code == 201, made.text
    clock = made.json()["id"]
    path = captain_job(api, acme, "slow", **{"Pollable-Clock": clock})
    response = read(api, acme, path)
    api.clock.advance(86400)  # real time: the job does not move, nor does its Retry-After
    assert read(api, acme, path).headers["Retry-After"] == response.headers["Retry-After"]
    assert read(api, acme, path).headers["ETag"] == response.headers["ETag"]
    for _ in range(5):
        wait = int(response.headers["Retry-After"])
        moved = api.client.post(
            f"/sandbox/v1/clocks/{clock}/advance", json={"seconds": wait}, headers=acme.crosmos
        )
        assert moved.status_code == 200, moved.text
        following = read(api, acme, path)
        assert shown(following) != shown(response)
        response = following


@pytest.mark.parametrize("make", [crosmos_job, captain_job], ids=["crosmos", "captain"])
def test_if_none_match_is_answered_304_while_nothing_changed(
    api: Api, acme: Tenant, make: Any
) -> None:
    path = make(api, acme)
    first = read(api, acme, path)
    tag = first.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    for field in (tag, f"W/{tag}", f'"other", {tag}', f'W/"x,y", W/{tag}', "*"):
        same = read(api, acme, path, **{"If-None-Match": field})
        assert same.status_code == 304, field
        assert same.content == b"" and "content-type" not in same.headers
        assert same.headers["ETag"] == tag
        assert same.headers["Retry-After"] == first.headers["Retry-After"]
        assert same.headers["Request-Id"].startswith("req_")
    for field in ('"other"', tag.strip('"'), f'"{tag}"', ""):
        assert read(api, acme, path, **{"If-None-Match": field}).status_code == 200, field
    api.clock.advance(int(first.headers["Retry-After"]))
    changed = read(api, acme, path, **{"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    api.clock.advance(3600)
    done = read(api, acme, path)
    assert terminal(done) and "Retry-After" not in done.headers
    api.clock.advance(3600)
    again = read(api, acme, path, **{"If-None-Match": done.headers["ETag"]})
    assert again.status_code == 304 and "Retry-After" not in again.headers


def test_each_page_of_files_has_its_own_tag(api: Api, acme: Tenant) -> None:
    path = captain_job(api, acme, "instant")
    pages = {}
    for params in ({}, {"files_limit": 1}, {"files_limit": 2}):
        response = api.client.get(path, params=params, headers=acme.captain)
        pages[response.headers["ETag"]] = response.content
        cursor = response.json()["files_page"]["next_cursor"]
        if cursor:
            after = api.client.get(
                path, params={**params, "files_cursor": cursor}, headers=acme.captain
            )
            pages[after.headers["ETag"]] = after.content
    assert len(pages) == len(set(pages.values())) == 5
    assert read(api, acme, path).headers["ETag"] in pages


def test_tags_are_the_same_for_the_same_body_only(api: Api, acme: Tenant) -> None:
    path = crosmos_job(api, acme, "instant")
    one, two = read(api, acme, path), read(api, acme, path)
    assert one.content == two.content and one.headers["ETag"] == two.headers["ETag"]
    other = read(api, acme, crosmos_job(api, acme, "instant"))
    assert other.content != one.content and other.headers["ETag"] != one.headers["ETag"]
