"""A finished job's reply is kept once checked and reused while the job is as it was."""

from __future__ import annotations

import dataclasses

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pollable.handlers.api import Reply
from pollable.handlers.replies import FinalRead, FinalReplies
from pollable.lifecycle.model import Event, EventKind
from pollable.lifecycle.planner import plan_job
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.store.base import JobRecord
from tests.conftest import Api, Tenant
from tests.handlers.captain.test_jobs import index
from tests.handlers.crosmos.test_jobs import ingest


def record(job_id: str = "j", events: tuple[Event, ...] = ()) -> JobRecord:
    plan, _ = plan_job(
        job_id=job_id, created_at=0.0, scenario=CATALOGUE["happy"], work=[], seed="s"
    )
    return JobRecord("t", "captain", "index", None, {}, plan, events, 0, 0.0)


def kept_reply(of: JobRecord, payload: bytes, key: object = "k") -> Reply:
    final = FinalRead(key, of.plan, of.events, 10.0)
    return Reply(200, orjson.loads(payload), {"ETag": '"x"'}, payload=payload, final=final)


def test_a_kept_reply_is_the_checked_bytes_of_the_same_job() -> None:
    replies, job = FinalReplies(), record()
    replies.keep(kept_reply(job, b'{"a":1}'))
    again = replies.get("k", job, 10.0)
    assert again is not None and again.checked and again.final is None
    assert again.payload == b'{"a":1}' and orjson.dumps(again.body) == b'{"a":1}'
    assert again.data == {"a": 1}  # as data, for whoever reads it so (the dashboard)
    # The same job read again from a store is another, equal record.
    assert replies.get("k", dataclasses.replace(job), 11.0) is again


def test_a_reply_is_not_reused_for_a_job_that_is_not_as_it_was() -> None:
    replies, job = FinalReplies(), record()
    replies.keep(kept_reply(job, b"{}"))
    cancelled = (Event(EventKind.CANCEL, 5.0, "user"),)
    assert replies.get("k", record(events=cancelled), 10.0) is None
    assert replies.get("k", record(job_id="other"), 10.0) is None
    assert replies.get("other key", job, 10.0) is None
    # Before the job was over (a clock that went back), it was not over.
    assert replies.get("k", job, 9.5) is None


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60))
def test_the_kept_bytes_stay_within_the_bound_newest_first(sizes: list[int]) -> None:
    replies, job = FinalReplies(max_bytes=100), record()
    for n, size in enumerate(sizes):
        replies.keep(kept_reply(job, b'"' + b"x" * size + b'"', key=n))
        assert replies.size <= 100
        assert replies.size == sum(
            len(replies.get(k, job, 10.0).payload) for k in list(replies._kept)
        )
    assert replies.get(len(sizes) - 1, job, 10.0) is not None  # the newest is always kept


def test_a_reply_larger_than_the_bound_is_not_kept() -> None:
    replies, job = FinalReplies(max_bytes=10), record()
    replies.keep(kept_reply(job, b'"' + b"x" * 20 + b'"'))
    assert len(replies) == 0 and replies.size == 0


def test_a_finished_captain_job_is_answered_from_what_was_kept(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, scenario="partial", max_files=7)["job_id"]
    api.clock.advance(100_000)
    kept = api.services.final_replies
    first = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain, params={"files_limit": 3})
    assert first.status_code == 200 and len(kept) == 1
    again = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain, params={"files_limit": 3})
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    # Another page is another reply.
    cursor = first.json()["files_page"]["next_cursor"]
    page = api.client.get(
        f"/v2/jobs/{job_id}",
        headers=acme.captain,
        params={"files_limit": 3, "files_cursor": cursor},
    )
    assert page.status_code == 200 and page.content != first.content and len(kept) == 2
    # Once over, a job's reply is the same at every later time: made afresh, it is the same.
    api.clock.advance(1_000_000)
    kept._kept.clear()
    late = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain, params={"files_limit": 3})
    assert late.content == first.content
    tagged = api.client.get(
        f"/v2/jobs/{job_id}", headers={**acme.captain, "If-None-Match": first.headers["etag"]}
    )
    assert tagged.status_code == 200  # the default page is another reply, with another tag
    matched = api.client.get(
        f"/v2/jobs/{job_id}",
        headers={**acme.captain, "If-None-Match": first.headers["etag"]},
        params={"files_limit": 3},
    )
    assert matched.status_code == 304 and matched.content == b""


def test_a_kept_reply_is_never_answered_for_a_job_that_is_gone(api: Api, acme: Tenant) -> None:
    job_id = ingest(api, acme, scenario="instant")["job_id"]
    first = api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos)
    assert first.status_code == 200 and first.json()["status"] == "completed"
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos).content == first.content
    assert len(api.services.final_replies) == 1
    assert api.client.post("/sandbox/v1/reset", json={}, headers=acme.crosmos).status_code == 200
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=acme.crosmos).status_code == 404


def test_a_job_still_running_is_never_kept(api: Api, acme: Tenant) -> None:
    job_id = index(api, acme, scenario="slow", max_files=5)["job_id"]
    for _ in range(2):
        api.clock.advance(1)
        reply = api.client.get(f"/v2/jobs/{job_id}", headers=acme.captain)
        assert reply.status_code == 200 and reply.json()["status"] in ("pending", "running")
    assert len(api.services.final_replies) == 0
