"""``server.address``: serve asks whether it can listen before it prints or creates anything."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pollable.server.address import AddressUnavailable, check_free


def listening(family: socket.AddressFamily, host: str) -> socket.socket:
    listener = socket.socket(family)
    listener.bind((host, 0))
    listener.listen()
    return listener


@pytest.fixture
def busy() -> Iterator[int]:
    with listening(socket.AF_INET, "127.0.0.1") as listener:
        yield int(listener.getsockname()[1])


def test_a_free_port_passes_and_stays_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    check_free("127.0.0.1", port)
    check_free("127.0.0.1", port)


def test_a_port_someone_listens_on(busy: int) -> None:
    with pytest.raises(AddressUnavailable, match=rf"^127\.0\.0\.1:{busy} is already in use; "):
        check_free("127.0.0.1", busy)
    with pytest.raises(AddressUnavailable, match=rf"^0\.0\.0\.0:{busy} is already in use; "):
        check_free("0.0.0.0", busy)


def test_ipv6_is_shown_in_brackets() -> None:
    try:
        listener = listening(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with listener:
        port = int(listener.getsockname()[1])
        with pytest.raises(AddressUnavailable, match=rf"^\[::1\]:{port} is already in use"):
            check_free("::1", port)


def test_an_address_this_machine_does_not_have() -> None:
    with pytest.raises(AddressUnavailable, match=r"^cannot listen on 192\.0\.2\.1:8000: .*--host$"):
        check_free("192.0.2.1", 8000)  # TEST-NET-1, RFC 5737


def test_a_host_that_does_not_resolve() -> None:
    with pytest.raises(AddressUnavailable, match=r"^cannot listen on nowhere\.invalid:8000: "):
        check_free("nowhere.invalid", 8000)
