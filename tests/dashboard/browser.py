"""The system's Chromium, driven by Playwright, for the dashboard's browser tests.

Chromium comes from the distribution (``apt-get install chromium``: ``/usr/bin/chromium``,
or ``POLLABLE_CHROMIUM``), never from ``playwright install``. Outside CI a missing browser
skips the tests, saying why; in CI (``POLLABLE_REQUIRE_POSTGRES=1``, set by ``.ci/run``,
which also installs Chromium) it fails them, as ``tests/postgres.py`` does for PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import postgres

CHROMIUM = os.environ.get("POLLABLE_CHROMIUM") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def executable() -> str:
    """The Chromium to drive; skips (fails in CI) the calling test when there is none."""
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is not None:
        return found
    why = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if postgres.REQUIRED:
        pytest.fail(f"CI needs the browser tests but {why}", pytrace=False)
    pytest.skip(why)


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
