"""``lifecycle.scenarios``: the catalogue and how a request picks a scenario."""

from __future__ import annotations

import math

import pytest

from pollable.lifecycle.model import STAGES, Stage
from pollable.lifecycle.scenarios import (
    CATALOGUE,
    DEFAULT_SCENARIO,
    UnknownScenario,
    choose,
    find_marker,
    get,
    stage_error,
)


def test_catalogue_has_the_documented_recipes():
    expected = {"happy", "instant", "slow", "partial", "failed", "cancelled", "stuck_pending"}
    expected |= {f"fails_at_{stage.value}" for stage in STAGES}
    assert expected <= set(CATALOGUE)
    assert DEFAULT_SCENARIO == "happy"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_entries_are_named_by_their_key(name):
    scenario = CATALOGUE[name]
    assert scenario.name == name
    assert scenario.description
    assert get(name) is scenario


@pytest.mark.parametrize("stage", STAGES)
def test_fails_at_stage_fails_in_that_stage_with_its_error(stage):
    failure = CATALOGUE[f"fails_at_{stage.value}"].failure
    assert failure is not None
    assert failure.stage is stage
    assert (failure.code, failure.message) == stage_error(stage)


def test_stage_errors_are_distinct_codes_with_messages():
    errors = [stage_error(stage) for stage in Stage]
    assert len({code for code, _ in errors}) == len(Stage)
    assert all(code and message for code, message in errors)


def test_special_scenarios():
    assert CATALOGUE["failed"].failure is not None
    assert CATALOGUE["failed"].failure.stage is Stage.EXTRACTING
    assert CATALOGUE["cancelled"].cancel_at == 0.5
    assert math.isinf(CATALOGUE["stuck_pending"].timing.queue)
    assert CATALOGUE["partial"].item_failure_rate == pytest.approx(1 / 3)
    instant = CATALOGUE["instant"].timing
    assert (instant.queue, instant.scan, instant.item_gap, instant.item_duration) == (0, 0, 0, 0)
    assert instant.finalize == 0 and CATALOGUE["instant"].jitter == 0
    assert CATALOGUE["slow"].timing.queue > CATALOGUE["happy"].timing.queue
    for name in ("happy", "instant", "slow", "partial", "stuck_pending"):
        assert CATALOGUE[name].failure is None and CATALOGUE[name].cancel_at is None


def test_unknown_scenario_is_a_value_error_naming_the_known_ones():
    with pytest.raises(UnknownScenario) as caught:
        get("nope")
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == "nope"
    assert "'nope'" in str(caught.value)
    assert "happy" in str(caught.value) and "stuck_pending" in str(caught.value)


@pytest.mark.parametrize(
    ("preferred", "marker", "tenant_default", "expected"),
    [
        ("slow", "partial", "failed", "slow"),
        (None, "partial", "failed", "partial"),
        (None, None, "failed", "failed"),
        (None, None, None, "happy"),
        ("slow", None, None, "slow"),
        ("slow", None, "failed", "slow"),
        (None, "instant", None, "instant"),
    ],
)
def test_choose_precedence(preferred, marker, tenant_default, expected):
    scenario = choose(preferred=preferred, marker=marker, tenant_default=tenant_default)
    assert scenario is CATALOGUE[expected]


def test_choose_does_not_fall_back_past_an_unknown_preference():
    with pytest.raises(UnknownScenario):
        choose(preferred="nope", marker="partial", tenant_default="failed")
    with pytest.raises(UnknownScenario):
        choose(preferred=None, marker="nope", tenant_default="failed")


def test_find_marker_returns_the_first_marker():
    texts = [
        "no marker here",
        "Quarterly report. pollable:scenario=fails_at_tagging and more",
        "pollable:scenario=slow",
    ]
    assert find_marker(texts) == "fails_at_tagging"
    assert find_marker(["a pollable:scenario=slow b pollable:scenario=partial"]) == "slow"


def test_find_marker_without_a_marker():
    assert find_marker([]) is None
    assert find_marker(["plain", "pollable:scenario=", "scenario=slow"]) is None


def test_find_marker_reads_lazily_from_any_iterable():
    assert find_marker(text for text in ("x", "pollable:scenario=instant")) == "instant"


def test_find_marker_does_not_validate_the_name():
    assert find_marker(["pollable:scenario=made_up"]) == "made_up"
