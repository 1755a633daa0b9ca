"""Helpers of the dashboard's HTTP tests: sign a TestClient in, read a page's CSRF token."""

from __future__ import annotations

import re
from typing import Any

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html[:2000]
    return found.group(1)


def sign_in(client: Any, credential: str) -> Any:
    """Sign ``client`` in (its cookie jar keeps the session); the sign-in's answer."""
    form = client.get("/dashboard/signin")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/dashboard/signin",
        data={"csrf": csrf_of(form.text), "credential": credential},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return answer


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]
