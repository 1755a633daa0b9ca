"""The official Crosmos SDK (``crosmos==0.2.0``, strict response validation) against a live
server on a real socket: ingest, poll to the end, errors, API keys and JWT access tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import crosmos
import pytest

from pollable.server.auth import new_jwt
from pollable.store.base import Store
from tests.conformance.live import (
    LiveServer,
    Servers,
    Tenant,
    on_store,
    poll,
    provision,
)

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"
TERMINAL = {"completed", "partial", "failed", "cancelled"}
SOURCES = [
    {"content": "Ada Lovelace wrote the first published computer program.", "content_type": "text"},
    {
        "content": "# Notes\n\nCharles Babbage designed the Analytical Engine.",
        "content_type": "markdown",
    },
    {"content": "Grace Hopper popularised machine-independent programming languages."},
    {"content": "Alan Turing described the universal machine in 1936."},
]
MESSAGES = [
    {"role": "user", "content": "I moved to Lisbon last spring."},
    {"role": "assistant", "content": "Noted: you live in Lisbon since last spring."},
    {"role": "user", "content": "My sister Ana visits every August."},
]


@dataclass(frozen=True)
class Live:
    server: LiveServer
    acme: Tenant
    db_url: str

    def client(self, api_key: str | None = None) -> crosmos.Crosmos:
        return crosmos.Crosmos(
            api_key=api_key or self.acme.crosmos_key,
            base_url=self.server.url,
            max_retries=0,
            timeout=10.0,
            _strict_response_validation=True,
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("crosmos-sdk")
    db_url = f"sqlite:///{directory}/live.db"
    acme = provision(db_url, "acme")["acme"]
    servers = Servers(directory)
    try:
        yield Live(servers.start(db_url), acme, db_url)
    finally:
        servers.stop_all()


def prefer(scenario: str) -> dict[str, str]:
    return {"Prefer": f"scenario={scenario}"}


def wait_for_end(client: crosmos.Crosmos, job_id: str) -> Any:
    """Poll ``jobs.get_status`` until the job is terminal; every reply parses strictly."""
    seen: list[str] = []

    def read() -> Any:
        job = client.jobs.get_status(job_id)
        seen.append(job.status)
        return job

    job = poll(read, lambda j: j.status in TERMINAL, timeout=20.0)
    # Statuses only move forward: pending -> processing -> one terminal status.
    ranks = [{"pending": 0, "processing": 1}.get(status, 2) for status in seen]
    assert ranks == sorted(ranks), seen
    assert set(seen) & TERMINAL == {job.status}, seen
    return job


def check_result(job: Any, scenario: str) -> None:
    assert job.result is not None
    result = job.result
    done, failed = set(result.source_ids), set(result.failed_source_ids)
    assert done.isdisjoint(failed)
    assert job.completed_at is not None and job.started_at is not None
    assert job.created_at <= job.started_at <= job.completed_at
    if scenario == "happy":
        assert job.status == "completed"
        assert sorted(result.source_ids) == sorted(job.source_ids)
        assert result.failed_source_ids == []
        assert result.error_message is None and job.error_message is None
        assert result.memory_count > 0 and result.tokens_used > 0
    elif scenario == "partial":
        assert job.status == "partial"
        assert failed, "a partial job has failed sources"
        assert done | failed == set(job.source_ids)
        assert result.source_errors is not None
        assert set(result.source_errors) == {str(i) for i in failed}
        assert all(result.source_errors.values())
    else:
        assert job.status == "failed"
        assert job.error_message
        assert result.error_message
        assert done | failed <= set(job.source_ids)


@pytest.mark.parametrize("scenario", ["happy", "partial", "failed"])
def test_ingest_sources(live: Live, scenario: str) -> None:
    client = live.client()
    raw = client.sources.with_raw_response.ingest(
        space_id=SPACE_ID, sources=SOURCES, extra_headers=prefer(scenario)
    )
    assert raw.status_code == 202
    assert raw.headers["Preference-Applied"] == f"scenario={scenario}"
    accepted = raw.parse()
    assert accepted.status == "pending"
    assert len(accepted.source_ids) == len(SOURCES)
    assert [job.job_id for job in accepted.jobs] == [accepted.job_id]
    assert accepted.jobs[0].source_ids == accepted.source_ids

    job = wait_for_end(client, accepted.job_id)
    assert job.job_id == accepted.job_id
    assert len(job.source_ids) == len(SOURCES)
    check_result(job, scenario)


@pytest.mark.parametrize("scenario", ["happy", "partial", "failed"])
def test_ingest_conversation(live: Live, scenario: str) -> None:
    client = live.client()
    raw = client.conversations.with_raw_response.ingest(
        space_id=SPACE_ID,
        messages=MESSAGES,
        session_id=f"session-{scenario}",
        session_date="2024-05-01",
        extra_headers=prefer(scenario),
    )
    assert raw.status_code == 202
    assert raw.headers["Preference-Applied"] == f"scenario={scenario}"
    accepted = raw.parse()
    assert accepted.status == "pending"
    uuid.UUID(accepted.source_id)

    job = wait_for_end(client, accepted.job_id)
    assert len(job.source_ids) == 1, "a conversation is stored as a single source"
    # One source cannot be partial: in that scenario it fails, and the job with it.
    check_result(job, "failed" if scenario == "partial" else scenario)


def test_without_prefer_nothing_is_applied(live: Live) -> None:
    raw = live.client().sources.with_raw_response.ingest(space_id=SPACE_ID, sources=SOURCES[:1])
    assert raw.status_code == 202
    assert "Preference-Applied" not in raw.headers
    assert wait_for_end(live.client(), raw.parse().job_id).status == "completed"


def test_unknown_job_is_not_found(live: Live) -> None:
    with pytest.raises(crosmos.NotFoundError) as caught:
        live.client().jobs.get_status(str(uuid.uuid4()))
    assert caught.value.status_code == 404
    assert caught.value.body == {"detail": "Job not found"}


def test_bad_key_is_refused(live: Live) -> None:
    client = live.client(api_key="csk_" + "x" * 43)
    with pytest.raises(crosmos.AuthenticationError) as caught:
        client.jobs.get_status(str(uuid.uuid4()))
    assert caught.value.response.headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(crosmos.AuthenticationError):
        client.sources.ingest(space_id=SPACE_ID, sources=SOURCES[:1])


def test_captain_key_is_refused(live: Live) -> None:
    with pytest.raises(crosmos.AuthenticationError):
        live.client(api_key=live.acme.captain_key).jobs.get_status(str(uuid.uuid4()))


def test_jwt_access_token(live: Live) -> None:
    async def stored_secret(store: Store) -> str:
        # The server generated it at start-up; asking with another default returns it.
        return await store.meta("jwt_secret", "not-the-server-secret")

    secret = on_store(live.db_url, stored_secret)
    assert secret != "not-the-server-secret", "the server keeps no JWT secret in its store"
    client = live.client(api_key=new_jwt(secret, "acme"))
    accepted = client.sources.ingest(
        space_id=SPACE_ID, sources=SOURCES[:2], extra_headers=prefer("instant")
    )
    job = wait_for_end(client, accepted.job_id)
    assert job.status == "completed"

    # The same tenant's key reads the job the token created: one tenant, two credentials.
    assert live.client().jobs.get_status(accepted.job_id).job_id == accepted.job_id

    forged = live.client(api_key=new_jwt("another-secret-that-is-not-the-servers", "acme"))
    with pytest.raises(crosmos.AuthenticationError):
        forged.jobs.get_status(accepted.job_id)
    expired = live.client(api_key=new_jwt(secret, "acme", ttl_seconds=-60))
    with pytest.raises(crosmos.AuthenticationError):
        expired.jobs.get_status(accepted.job_id)
    stranger = live.client(api_key=new_jwt(secret, "nobody"))
    with pytest.raises(crosmos.AuthenticationError):
        stranger.jobs.get_status(accepted.job_id)


def test_jwt_secret_from_the_environment(servers: Servers, db_url: str) -> None:
    """POLLABLE_JWT_SECRET wins over the secret a store keeps."""
    acme = provision(db_url, "acme")["acme"]
    stored, configured = ("pollable-test-secret-" + uuid.uuid4().hex for _ in range(2))

    async def keep(store: Store) -> str:
        return await store.meta("jwt_secret", stored)

    assert on_store(db_url, keep) == stored
    server = servers.start(db_url, env={"POLLABLE_JWT_SECRET": configured})

    def client(secret: str) -> crosmos.Crosmos:
        return crosmos.Crosmos(
            api_key=new_jwt(secret, acme.name),
            base_url=server.url,
            max_retries=0,
            _strict_response_validation=True,
        )

    accepted = client(configured).sources.ingest(space_id=SPACE_ID, sources=SOURCES[:1])
    assert wait_for_end(client(configured), accepted.job_id).status == "completed"
    with pytest.raises(crosmos.AuthenticationError):
        client(stored).jobs.get_status(accepted.job_id)
