"""What ``serve`` prints before it serves: where the docs are, and how to make a first call on
this store."""

from __future__ import annotations

import json
import shlex

from pollable.handlers.registry import REGISTRY
from pollable.lifecycle import scenarios

from .provision import TenantKeys as Demo
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
