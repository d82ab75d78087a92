"""The unit suite's guard against accidental network I/O (tests/unit/conftest.py)."""

from __future__ import annotations

import socket

import pytest


def test_connecting_a_socket_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="must not open sockets"):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)


def test_binding_a_socket_fails_loudly() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="must not open sockets"):
        sock.bind(("127.0.0.1", 0))
