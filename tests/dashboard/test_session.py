"""``dashboard.session``: a session's cookie is the server's signature over a digest, never
the credential; anything else is no session."""

from __future__ import annotations

from pollable.dashboard.session import Session, token_for, token_matches

KEY = b"k" * 32
HELD = Session("crosmos", "ab" * 32, "nonce-1", 2_000.0)


def test_a_sealed_session_unseals_until_it_expires() -> None:
    value = HELD.seal(KEY)
    assert Session.unseal(KEY, value, 1_999.0) == HELD
    assert Session.unseal(KEY, value, 2_000.0) is None
    assert Session.unseal(b"another key" * 3, value, 0.0) is None


def test_anything_but_a_sealed_session_is_none() -> None:
    payload, mac = HELD.seal(KEY).split(".")
    for value in (
        None,
        "",
        "x",
        f"{payload}.",
        f".{mac}",
        f"{payload}.{mac}.x",
        f"{payload[1:]}.{mac}",
    ):
        assert Session.unseal(KEY, value, 0.0) is None, value


def test_the_csrf_token_is_the_nonces_and_the_keys() -> None:
    token = token_for(KEY, "nonce-1")
    assert token_matches(KEY, "nonce-1", token)
    assert not token_matches(KEY, "nonce-2", token)
    assert not token_matches(b"x" * 32, "nonce-1", token)
    assert not token_matches(KEY, "nonce-1", None)
