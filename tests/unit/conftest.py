"""Unit tests do no I/O: a socket that tries to connect or bind fails the test at once."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest

from crmsync_local.auth import LocalJwtKeys


class NetworkAccessError(RuntimeError):
    """Not an OSError, so no retry or fallback path can swallow it."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, *args: Any) -> NoReturn:
        raise NetworkAccessError(f"unit tests must not open sockets: {args!r}")

    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, refuse)


@pytest.fixture(scope="session")
def jwt_keys() -> LocalJwtKeys:
    """One RSA key for the session: generating one costs tens of milliseconds."""
    return LocalJwtKeys.generate()
