from __future__ import annotations

import pytest

from pollable.handlers.common import fingerprint, iso, preferred_scenario


@pytest.mark.parametrize(
    ("header", "scenario"),
    [
        (None, None),
        ("", None),
        ("scenario=partial", "partial"),
        ("respond-async, scenario=failed", "failed"),
        ('Scenario="slow"; note=x', "slow"),
        ("wait=10", None),
        ("scenario=", None),
    ],
)
def test_the_scenario_preference_of_a_prefer_header(
    header: str | None, scenario: str | None
) -> None:
    assert preferred_scenario(header) == scenario


def test_fingerprints_ignore_key_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_timestamps_are_rfc3339_utc() -> None:
    assert iso(0.0) == "1970-01-01T00:00:00Z"
    assert iso(1.5) == "1970-01-01T00:00:01.500000Z"
    assert iso(None) is None
