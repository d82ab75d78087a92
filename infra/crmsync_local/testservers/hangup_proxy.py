"""A loopback TCP proxy that can hang up on the client in the middle of a server answer.

Tests put it in front of a real server (Dovecot's plain IMAP port) to see what a client does
when "the server hangs up mid-FETCH": `arm(trigger=b"FETCH", server_bytes=2000)` lets the
next client command containing b"FETCH" through, forwards the first 2000 bytes of what the
server sends after it, then resets both connections (SO_LINGER 0, so the client gets an RST,
not a polite FIN). Only that one connection is cut; the proxy stays up, disarmed, so a
second session through it works normally.

With TLS passing through, commands cannot be seen: `arm(client_writes=k, server_bytes=n)`
counts the client's chunks (one per command on loopback) instead of matching a trigger.

One thread per connection multiplexes both directions with a selector, so a cut never has
to interrupt a thread blocked in recv() (closing a socket another thread reads from does
not wake that thread on Linux, and the RST would only go out once it returned).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Self

from crmsync_local.processes import Lifecycle
from crmsync_local.testservers.net import LOOPBACK

_POLL = 0.05
_CHUNK = 65536


@dataclass
class _Plan:
    """What the next matching connection will suffer."""

    trigger: bytes | None
    client_writes: int
    server_bytes: int
    reset: bool


class HangupProxy(Lifecycle):
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until armed to cut."""

    host = LOOPBACK

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        """Client connections accepted so far."""
        self.cuts = 0
        """Connections cut by an armed plan so far."""
        self.cut_done = threading.Event()
        self._plan: _Plan | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    # -- control -----------------------------------------------------------------------
    def arm(
        self,
        *,
        trigger: bytes | None = None,
        client_writes: int = 1,
        server_bytes: int = 0,
        reset: bool = True,
    ) -> None:
        """Cut the next connection that sends `trigger` (or, without one, its
        `client_writes`-th chunk from now on) once the server has sent `server_bytes` more
        bytes after that; 0 cuts right after the command went to the server. `reset=False`
        closes with a FIN instead (a server process that exits rather than crashes)."""
        if trigger is not None and not trigger:
            raise ValueError("trigger must not be empty")
        if client_writes < 1 or server_bytes < 0:
            raise ValueError("client_writes must be >= 1 and server_bytes >= 0")
        with self._lock:
            self._plan = _Plan(trigger, client_writes, server_bytes, reset)
            self.cut_done.clear()

    def disarm(self) -> None:
        with self._lock:
            self._plan = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Self:
        if self._listener is not None:
            raise RuntimeError("HangupProxy already started")
        self._stopping.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(16)
        listener.settimeout(_POLL)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._spawn(self._accept_loop, "hangup-proxy-accept")
        return self

    def stop(self) -> None:
        """Close the listener and every open connection; returns once all threads ended."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- the proxying ------------------------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed by stop()
                return
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), 5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self.connections += 1
                self._sockets.update((client, upstream))
            self._spawn(self._pump, f"hangup-proxy-{self.connections}", client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions of one connection, until either side closes or the plan cuts."""
        for sock in (client, upstream):
            sock.settimeout(10)  # sendall only; recv runs after the selector said readable
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, "client")
        selector.register(upstream, selectors.EVENT_READ, "server")
        tail = b""  # the last bytes of the client stream: a trigger may span two chunks
        writes = 0  # client chunks since this connection first saw the current plan
        seen_plan: _Plan | None = None
        budget: int | None = None  # server bytes still to forward before the cut
        reset = True
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(_POLL):
                    from_server = key.data == "server"
                    data = (upstream if from_server else client).recv(_CHUNK)
                    if not data:
                        return
                    if from_server:
                        if budget is not None:
                            client.sendall(data[:budget])
                            budget -= min(budget, len(data))
                            if budget == 0:
                                self._cut(client, upstream, reset)
                                return
                        else:
                            client.sendall(data)
                        continue
                    upstream.sendall(data)
                    if budget is not None:
                        continue
                    with self._lock:
                        plan = self._plan
                        if plan is not seen_plan:
                            seen_plan, writes = plan, 0
                        if plan is None:
                            continue
                        writes += 1
                        window = tail + data
                        if plan.trigger is None:
                            hit = writes >= plan.client_writes
                        else:
                            hit = plan.trigger in window
                            tail = window[len(window) - len(plan.trigger) + 1 :]
                        if not hit:
                            continue
                        self._plan = None  # one cut per arm(); other connections go on
                    budget, reset = plan.server_bytes, plan.reset
                    if budget == 0:
                        self._cut(client, upstream, reset)
                        return
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                self._sockets.difference_update((client, upstream))
            client.close()
            upstream.close()

    def _cut(self, client: socket.socket, upstream: socket.socket, reset: bool) -> None:
        # Counted first: a client that sees the cut may look at `cuts` straight away.
        with self._lock:
            self.cuts += 1
        self.cut_done.set()
        for sock in (client, upstream):
            if reset:
                _reset(sock)
            else:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: what a crashed or killed server looks like."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
