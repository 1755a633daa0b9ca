"""Any text a request can carry is stored and read back as it was, on every backend
(PostgreSQL's text cannot hold NUL; its store escapes it)."""

from __future__ import annotations

import pytest

from pollable.lifecycle.errors import NotFound
from pollable.store.base import LoggedMessage, RequestEntry, RequestFilter

pytestmark = pytest.mark.anyio

ODD = ["a\x00b", "\x00", "x\ue000y", "\ue0000", "\ue000m\x00\ue000"]


async def test_text_with_nul_and_private_use_characters_round_trips(store):
    for i, name in enumerate(ODD):
        tenant = await store.create_tenant(name, organization_id=name, credits=1.0)
        assert await store.find_tenant(name) == tenant
        assert (await store.get_tenant(tenant.id)).organization_id == name
        with pytest.raises(NotFound):
            await store.get_job(tenant.id, name)
        entry = RequestEntry(
            f"req_{i:024d}", tenant.id, 1.0, "GET", f"/v1/{name}", name, 200, 1.0,
            LoggedMessage({"x": name}, name, 3), LoggedMessage({}, name + "!", 4),
        )  # fmt: skip
        await store.append_requests([entry])
        assert await store.list_requests(tenant.id, RequestFilter(path=f"/v1/{name}"), limit=5) == [
            entry
        ]
    assert await store.find_tenant("a") is None
