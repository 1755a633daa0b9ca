"""What ``serve`` prints before it serves: where the docs are, and how to make a first call on
this store: the demo tenant's keys and curl lines, what a fixture seeded, or, on a store
that has tenants already, how to get a key."""

from __future__ import annotations

import json
import shlex

from pollable.handlers.registry import JOB_APIS, REGISTRY, by_name
from pollable.lifecycle import scenarios
from pollable.store.base import Store

from .provision import TenantKeys as Demo
from .seed import Seeded
from .settings import Settings


def base_url(settings: Settings) -> str:
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def docs_banner(settings: Settings) -> str:
    url = base_url(settings)
    lines = [f"  {api.title:<8} {url}{api.docs_url}" for api in REGISTRY]
    return "API docs (Swagger UI):\n" + "\n".join(lines)


def admin_banner(token: str) -> str:
    """The admin token a fresh store was given: shown this once."""
    return (
        f"Admin token of the control plane (/sandbox/docs): {token}\n"
        "It is stored hashed: this is the only time it is shown. Set your own with "
        "--admin-token or $POLLABLE_ADMIN_TOKEN."
    )


def demo_banner(demo: Demo, settings: Settings) -> str:
    """What a newcomer needs to make a first call: the keys and curl lines that work."""
    url, q = base_url(settings), shlex.quote
    lines = [
        f"Created the demo tenant {demo.tenant.name!r} on an empty store.",
        f"  organization id  {demo.tenant.organization_id}",
        *(f"  {demo.apis[name].title + ' key':<16} {key}" for name, key in demo.keys.items()),
        "Keys are stored hashed: this is the only time they are shown.",
    ]
    for name in demo.keys:
        call = demo.apis[name].demo
        if call is None:
            continue
        auth = " ".join(f"-H {q(f'{k}: {v}')}" for k, v in demo.headers(name).items())
        lines += [
            "",
            f"{demo.apis[name].title}: {call.summary} (use the job id of the first reply):",
            f"  curl -s -X POST {url}{call.create_path} \\",
            f"    {auth} -H {q('Content-Type: application/json')} \\",
            f"    -d {q(json.dumps(call.body))}",
            f"  curl -s {url}{call.poll_path} {auth}",
        ]
    lines += [
        "",
        "Pick what a job will do with -H 'Prefer: scenario=partial' "
        f"(scenarios: {', '.join(scenarios.CATALOGUE)}).",
    ]
    return "\n".join(lines)


#: The jobs of a fixture listed by name; the others are counted.
SHOWN_JOBS = 10


def keys_hint(settings: Settings) -> str:
    """How to get a key on a store whose keys cannot be shown again."""
    store = "" if settings.store == Settings().store else f" --store {shlex.quote(settings.store)}"
    apis = " or ".join(api.name for api in JOB_APIS)
    return f"Create one with: pollable keys create --tenant NAME --api API{store} (API: {apis})"


def store_banner(tenants: int, settings: Settings) -> str:
    """On a store that has tenants already: there is no demo, and no key to show."""
    counted = f"{tenants} tenant{'' if tenants == 1 else 's'}"
    return (
        f"Store {settings.store} has {counted}; keys are stored hashed and cannot be shown "
        f"again.\n{keys_hint(settings)}"
    )


async def fixture_banner(store: Store, seeded: Seeded | None, settings: Settings) -> str:
    """What ``--fixtures`` seeded (``seeded``, read from ``store``), or that this store had
    it already (None)."""
    path = settings.fixtures
    if seeded is None:
        return (
            f"{path} was seeded into {settings.store} before; keys are stored hashed and "
            f"cannot be shown again.\n{keys_hint(settings)}"
        )
    apis = by_name(REGISTRY)
    lines = [f"Seeded {path} into {settings.store}:"]
    for name, tenant in seeded.tenants.items():
        lines.append(f"  tenant {name}  organization id {tenant.organization_id}")
        lines += [
            f"    {apis[api].title + ' key':<16} {key}"
            for owner, api, key in seeded.keys
            if owner == name
        ]
    shown = list(seeded.jobs.items())[:SHOWN_JOBS]
    width = max((len(name) for name, _ in shown), default=0)
    for name, job_id in shown:
        owner = seeded.job_tenants[name]
        record = await store.get_job(seeded.tenants[owner].id, job_id)
        lines.append(
            f"  job {name:<{width}}  tenant {owner}  {job_id}  scenario {record.plan.scenario}"
        )
    if len(seeded.jobs) > len(shown):
        lines.append(f"  ... and {len(seeded.jobs) - len(shown)} more jobs")
    if seeded.keys:
        lines.append("Keys are stored hashed: the generated ones are shown only this time.")
    return "\n".join(lines)
