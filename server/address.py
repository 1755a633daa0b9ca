"""Whether ``serve`` can listen where it is told to, asked before it prints or creates
anything: a busy port must not get a banner of keys and curl lines for someone else's server.
"""

from __future__ import annotations

import errno
import socket
from contextlib import ExitStack


class AddressUnavailable(OSError):
    """The server could not listen on its host and port; the message is one line."""


def shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_free(host: str, port: int) -> None:
    """Bind, then close, a socket on every address ``host`` resolves to, as uvicorn's
    ``loop.create_server`` will (``SO_REUSEADDR``, IPv6 sockets IPv6-only), so a port held
    in TIME_WAIT passes and one another server listens on does not. ``AddressUnavailable``
    says why not.

    The port is free when this returns; another process may still take it before uvicorn
    binds it, and uvicorn then says so itself."""
    where = shown(host, port)
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise AddressUnavailable(
            f"cannot listen on {where}: {exc.strerror}; check --host"
        ) from None
    with ExitStack() as sockets:
        for family, kind, proto, _, address in addresses:
            sock = sockets.enter_context(socket.socket(family, kind, proto))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise AddressUnavailable(_why(exc, where)) from None


def _why(exc: OSError, where: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use; choose another --port"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied; choose a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: this machine has no such address; check --host"
    return f"cannot listen on {where}: {exc.strerror or exc}"
