from __future__ import annotations

import pytest

from pollable.server.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.build({})
    assert settings.store == "sqlite:///pollable.db"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.validate_responses is True


def test_what_a_client_may_hold_is_bounded_by_default() -> None:
    settings = Settings.build({})
    assert settings.max_header_bytes == 32 * 1024
    assert (settings.header_timeout, settings.keep_alive_timeout) == (10.0, 5.0)
    environ = {"POLLABLE_MAX_HEADER_BYTES": "65536", "POLLABLE_HEADER_TIMEOUT": "2.5"}
    built = Settings.build(environ)
    assert (built.max_header_bytes, built.header_timeout) == (65536, 2.5)


def test_environment_then_flags() -> None:
    environ = {
        "POLLABLE_PORT": "9000",
        "POLLABLE_TIME_SCALE": "0.01",
        "POLLABLE_VALIDATE_RESPONSES": "no",
    }
    settings = Settings.build(environ, port=9100, time_scale=None)
    assert (settings.port, settings.time_scale, settings.validate_responses) == (9100, 0.01, False)


def test_round_trip_through_the_environment() -> None:
    settings = Settings(store="memory://", port=8123, time_scale=0.5, validate_responses=False)
    assert Settings.build(settings.to_environ()) == settings


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"POLLABLE_PORT": "eighty"}, "POLLABLE_PORT"),
        ({"POLLABLE_TIME_SCALE": "-1"}, "time_scale"),
        ({"POLLABLE_STORE": "pollable.db"}, "store"),
        ({"POLLABLE_MAX_BODY_BYTES": "0"}, "max_body_bytes"),
        ({"POLLABLE_JWT_SECRET": "short"}, "32 bytes"),
        ({"POLLABLE_MAX_HEADER_BYTES": "100"}, "max_header_bytes"),
        ({"POLLABLE_HEADER_TIMEOUT": "0"}, "header_timeout"),
        ({"POLLABLE_HEADER_TIMEOUT": "nan"}, "header_timeout"),
        ({"POLLABLE_HEADER_TIMEOUT": "inf"}, "header_timeout"),
        ({"POLLABLE_KEEP_ALIVE_TIMEOUT": "-1"}, "keep_alive_timeout"),
    ],
)
def test_bad_values_are_clear_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.build(environ)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN", "Infinity"])
@pytest.mark.parametrize("name", ["time_scale", "credit_rate", "tenant_credits"])
def test_numbers_must_be_finite(name: str, raw: str) -> None:
    """A plan scaled by nan or inf has no times: every poll of its jobs would fail."""
    with pytest.raises(SettingsError, match=f"^{name} must be a finite number"):
        Settings.build({f"POLLABLE_{name.upper()}": raw})
    with pytest.raises(SettingsError, match=f"^{name} must be a finite number"):
        Settings(**{name: float(raw)})


@pytest.mark.parametrize("name", ["time_scale", "credit_rate", "tenant_credits"])
def test_numbers_cannot_be_negative(name: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name} cannot be negative"):
        Settings(**{name: -0.5})
    assert getattr(Settings(**{name: 0.0}), name) == 0.0
