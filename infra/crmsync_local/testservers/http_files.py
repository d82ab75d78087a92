"""A loopback HTTP server that serves canned documents per (Host, path), for autoconfig tests.

One server stands in for many web hosts: the Host header picks the site, so
`autoconfig.a.test` and `b.test` can both resolve (through the local DNS server) to 127.0.0.1
and still get their own config-v1.1.xml.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from crmsync_local.testservers.net import LOOPBACK


@dataclass(frozen=True)
class CannedResponse:
    body: bytes
    status: int = 200
    content_type: str = "text/xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    declare_length: bool = True
    """False sends no Content-Length: the body simply runs until the connection closes."""


class StaticHttpServer:
    """`add("autoconfig.a.test", "/mail/config-v1.1.xml", CannedResponse(xml))`; 404 otherwise."""

    host = LOOPBACK

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[tuple[str, str]] = []
        """(Host without port, path with query) of every request, in order."""
        self._routes: dict[tuple[str, str], CannedResponse] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def add(self, host: str, path: str, response: CannedResponse) -> None:
        with self._lock:
            self._routes[(host.lower(), path)] = response

    def route(self, host: str, path: str) -> CannedResponse | None:
        with self._lock:
            self.requests.append((host, path))
            return self._routes.get((host, urlsplit(path).path))

    def __enter__(self) -> Self:
        self._server = _Server((self.host, 0), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="static-http", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], site: StaticHttpServer) -> None:
        self.site = site
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        canned = self.server.site.route(host, self.path)
        if canned is None:
            self.send_error(404)
            return
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        if canned.declare_length:
            self.send_header("Content-Length", str(len(canned.body)))
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):  # client hit its size limit
            self.wfile.write(canned.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows failures, not access logs."""
