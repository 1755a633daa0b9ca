"""The pytest plugin, run by pytest itself (pytester): the session server in-process or named
by ``POLLABLE_URL``; the ``pollable`` fixture against a stand-in that has test clocks
(``tests/testing/fake.py``), and against pollable once pollable serves them; pytest-xdist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpcore  # noqa: F401
import pytest

import pollable.server.app  # noqa: F401
from pollable.testing.plugin import SandboxServer, tenant_name
from tests.testing.fake import ADMIN_TOKEN, FakeSandbox, serve_fake

pytest_plugins = ("pytester",)

# pytester's in-process runs forget every module first imported inside them. httpx imports
# httpcore lazily and keeps its exception classes: a second import of httpcore would raise
# errors httpx no longer recognises. Both, and the server, are imported here, once.


@pytest.fixture(autouse=True)
def no_server_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions start their own server unless a test names one."""
    monkeypatch.delenv("POLLABLE_URL", raising=False)
    monkeypatch.delenv("POLLABLE_ADMIN_TOKEN", raising=False)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSandbox]:
    """A stand-in with test clocks, named by POLLABLE_URL for inner sessions."""
    with serve_fake() as (state, url):
        monkeypatch.setenv("POLLABLE_URL", url)
        monkeypatch.setenv("POLLABLE_ADMIN_TOKEN", ADMIN_TOKEN)
        yield state


# -- the session's server -----------------------------------------------------------------------


def test_one_in_process_server_per_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings meant for `pollable serve` never reach the plugin's server.
    monkeypatch.setenv("POLLABLE_STORE", "sqlite:///no/such/folder/pollable.db")
    monkeypatch.setenv("POLLABLE_TENANT_CREDITS", "-1")
    pytester.makepyfile(
        """
        SEEN = []

        def test_first(pollable_server, pollable_admin):
            assert pollable_server.in_process
            assert pollable_server.url.startswith("http://127.0.0.1:")
            assert pollable_admin.health()["status"] == "ok"
            created = pollable_admin.create_tenant("acme")
            assert created["tenant"]["credits"] == 1_000_000
            SEEN.append(pollable_server.url)

        def test_second(pollable_server, pollable_admin):
            assert SEEN == [pollable_server.url]
            assert [t["name"] for t in pollable_admin.iter_tenants()] == ["acme"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_the_settings_are_a_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pollable.server.settings import Settings

        @pytest.fixture(scope="session")
        def pollable_settings():
            return Settings(store="memory://", tenant_credits=42)
        """
    )
    pytester.makepyfile(
        """
        def test_credits(pollable_server, pollable_admin):
            assert len(pollable_server.admin_token) >= 32
            assert pollable_admin.create_tenant("acme")["tenant"]["credits"] == 42
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_server_named_by_the_environment(
    pytester: pytest.Pytester, pollable_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLABLE_URL", pollable_server.url + "/")
    monkeypatch.setenv("POLLABLE_ADMIN_TOKEN", pollable_server.admin_token)
    pytester.makepyfile(
        f"""
        def test_it(pollable_server, pollable_admin):
            assert not pollable_server.in_process
            assert pollable_server.url == {pollable_server.url!r}
            assert pollable_admin.health()["store"] == "reachable"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"POLLABLE_URL": "http://127.0.0.1:9"},
            "POLLABLE_URL is set but POLLABLE_ADMIN_TOKEN is not",
        ),
        (
            {"POLLABLE_URL": "http://127.0.0.1:9", "POLLABLE_ADMIN_TOKEN": "x" * 20},
            "POLLABLE_URL=http://127.0.0.1:9: no answer from http://127.0.0.1:9: ",
        ),
    ],
)
def test_a_server_named_wrongly_fails_in_one_line(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    message: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_it(pollable):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert message in result.stdout.str()
    result.stdout.no_fnmatch_line("*Traceback*")


def test_tenant_names() -> None:
    first, second = tenant_name("test_it[crosmos 1/2]"), tenant_name("test_it[crosmos 1/2]")
    assert first != second and first.startswith("t-test_it-crosmos-1-2-")
    assert tenant_name("[]").startswith("t-") and len(tenant_name("x" * 500)) <= 64


# -- the pollable fixture, against the stand-in -------------------------------------------------

FIXTURE_TESTS = """
import datetime
import crosmos
import runcaptain

NAMES = []


def test_keys_are_bound_to_the_clock(pollable):
    keys = {k["api"]: k for k in pollable.client.list_keys(pollable.tenant_id)}
    bound = [k for k in keys.values() if k["clock_id"] == pollable.clock.id]
    assert sorted(k["api"] for k in bound) == ["captain", "crosmos"]
    assert set(pollable.keys) == {"crosmos", "captain"}
    assert pollable.key("crosmos") == pollable.crosmos_key
    assert pollable.organization_id == pollable.tenant["organization_id"]
    assert pollable.base_url.startswith("http://127.0.0.1:")
    NAMES.append(pollable.tenant["name"])


def test_the_clock(pollable):
    start = pollable.clock.now
    assert isinstance(start, datetime.datetime) and start.tzinfo is not None
    assert pollable.clock.advance(seconds=90) == start + datetime.timedelta(seconds=90)
    later = start + datetime.timedelta(days=1)
    assert pollable.clock.advance(to=later) == later
    pollable.clock.advance(until=("job-1", "processing"))
    pollable.clock.advance(until=("job-2", "embedding"))
    assert pollable.clock.now == later + datetime.timedelta(seconds=2)
    NAMES.append(pollable.tenant["name"])


def test_sdk_clients(pollable):
    client = pollable.crosmos()
    assert isinstance(client, crosmos.Crosmos)
    assert client.api_key == pollable.crosmos_key
    assert str(client.base_url).rstrip("/") == pollable.base_url
    assert client.max_retries == 0 and client._strict_response_validation
    assert pollable.crosmos(max_retries=3).max_retries == 3
    captain = pollable.captain(timeout=5.0)
    assert isinstance(captain, runcaptain.Captain)
    wrapper = captain._client_wrapper
    assert wrapper.get_base_url() == pollable.base_url
    headers = wrapper.get_headers()
    assert headers["Authorization"] == "Bearer " + pollable.captain_key
    assert headers["X-Organization-ID"] == pollable.organization_id
    NAMES.append(pollable.tenant["name"])


def test_requests_and_reset(pollable):
    assert pollable.requests(path="/sandbox/v1/clocks", method="POST")
    clock, keys = pollable.clock, dict(pollable.keys)
    old_clock = clock.id
    pollable.reset()
    assert pollable.clock is clock and clock.id != old_clock
    assert set(pollable.keys) == set(keys) and not set(pollable.keys.values()) & set(keys.values())
    listed = pollable.client.list_keys(pollable.tenant_id)
    revoked = [k for k in listed if k["revoked_at"]]
    assert sorted(k["api"] for k in revoked) == ["captain", "crosmos"]
    assert all(k["clock_id"] == clock.id for k in listed if k["clock_id"] and not k["revoked_at"])
    assert pollable.requests(path="/sandbox/v1/clocks", method="POST")
    NAMES.append(pollable.tenant["name"])


def test_each_test_had_its_own_tenant():
    assert len(NAMES) == len(set(NAMES)) == 4
"""


def test_the_pollable_fixture(pytester: pytest.Pytester, fake: FakeSandbox) -> None:
    pytester.makepyfile(FIXTURE_TESTS)
    pytester.runpytest().assert_outcomes(passed=5)
    assert fake.tenants == {}, "every tenant is deleted after its test"
    stages = [body["until"] for _, body in fake.advanced if "until" in body]
    assert stages == [
        {"job_id": "job-1", "status": "processing"},
        {"job_id": "job-2", "stage": "embedding"},
    ]
    assert len(fake.resets) == 1


def test_a_tenant_is_deleted_when_its_test_fails(
    pytester: pytest.Pytester, fake: FakeSandbox
) -> None:
    pytester.makepyfile("def test_it(pollable):\n    assert False\n")
    pytester.runpytest().assert_outcomes(failed=1)
    assert fake.tenants == {}


def test_a_test_may_delete_its_own_tenant(pytester: pytest.Pytester, fake: FakeSandbox) -> None:
    pytester.makepyfile(
        """
        def test_it(pollable, pollable_admin):
            pollable_admin.delete_tenant(pollable.tenant_id)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_pollable_fixture_against_pollable(
    pytester: pytest.Pytester, pollable_server: SandboxServer
) -> None:
    pytester.makepyfile(
        """
        def test_keys_are_bound_to_the_clock(pollable):
            keys = pollable.client.list_keys(pollable.tenant_id)
            bound = {k["api"] for k in keys if k["clock_id"] == pollable.clock.id}
            assert bound == set(pollable.keys) == {"crosmos", "captain"}

        def test_the_clock(pollable):
            start = pollable.clock.now
            assert (pollable.clock.advance(seconds=60) - start).total_seconds() == 60
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


# -- pytest-xdist ---------------------------------------------------------------------------------

XDIST_TESTS = """
import json, os, pathlib, pytest

OUT = pathlib.Path({out!r})


@pytest.mark.parametrize("n", range(4))
def test_it(n, pollable_server, pollable_admin, {fixture}):
    created = pollable_admin.create_tenant(f"w-{{os.getpid()}}-{{n}}")
    record = {{"pid": os.getpid(), "url": pollable_server.url, "tenant": created["tenant"]["id"]}}
    if {fixture!r} == "pollable":
        record["sandbox"] = pollable.tenant_id
    (OUT / f"{{n}}.json").write_text(json.dumps(record))
"""


def xdist_run(pytester: pytest.Pytester, tmp_path: Path, fixture: str) -> list[dict[str, str]]:
    out = tmp_path / "out"
    out.mkdir()
    pytester.makepyfile(XDIST_TESTS.format(out=str(out), fixture=fixture))
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    return [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]


@pytest.mark.slow
def test_xdist_workers_each_have_their_server(pytester: pytest.Pytester, tmp_path: Path) -> None:
    records = xdist_run(pytester, tmp_path, "pollable_settings")
    by_worker = {record["pid"]: record["url"] for record in records}
    assert len(by_worker) == 2 and len(set(by_worker.values())) == 2


@pytest.mark.slow
def test_xdist_workers_share_a_named_server(
    pytester: pytest.Pytester, tmp_path: Path, fake: FakeSandbox
) -> None:
    records = xdist_run(pytester, tmp_path, "pollable")
    assert len({record["pid"] for record in records}) == 2
    assert len({record["url"] for record in records}) == 1
    assert len({record["sandbox"] for record in records}) == 4
    assert set(fake.tenants) == {record["tenant"] for record in records}


def test_a_fault_rule_for_the_tests_tenant(pytester: pytest.Pytester) -> None:
    """``pollable.fault`` against pollable in-process: the SDK meets the rule's 429s, and a
    closed connection is a disconnect (the plugin serves with pollable's protocol)."""
    pytester.makepyfile(
        """
        import crosmos
        import httpx
        import pytest

        GET = "get_job_status_api_v1_jobs__job_id__get"

        def test_it(pollable):
            client = pollable.crosmos()
            space = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
            job = client.sources.ingest(space_id=space, sources=[{"content": "x"}]).jobs[0]
            rule = pollable.fault(status=429, operation=GET, times=1, retry_after=0)
            assert rule["trigger"] == {"next": 1} and rule["action"]["retry_after"] == 0
            with pytest.raises(crosmos.RateLimitError):
                client.jobs.get_status(job.job_id)
            assert client.jobs.get_status(job.job_id).job_id == job.job_id
            assert pollable.client.get_fault(rule["id"])["matched"] == 2
            pollable.fault(close=True, api="captain")
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(pollable.base_url + "/v2/jobs", headers={
                    "Authorization": "Bearer " + pollable.captain_key,
                    "X-Organization-ID": pollable.organization_id,
                })
            assert [f["action"] for f in pollable.client.list_faults()][1] == {"close": True}
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_readme_fault_example_passes(pytester: pytest.Pytester) -> None:
    """The Python block of the README's "Faults and rate limits", as a user's test."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Faults and rate limits", 1)[1]
    pytester.makepyfile(section.split("```python\n", 1)[1].split("```", 1)[0])
    pytester.runpytest().assert_outcomes(passed=1)
