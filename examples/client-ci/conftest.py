"""No test may sleep: time is moved with ``pollable.clock``, never waited for. A retrying
SDK would sleep too, so this also proves no call was retried."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) in a test: move pollable.clock instead")

    monkeypatch.setattr(time, "sleep", refuse)
