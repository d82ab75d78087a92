"""HTTP for CalDAV: every connection goes to an address HostGuard admitted, every request
is counted, redirects are followed by hand, and every failure is a MailServerError.

The server URL is typed by the user and the worker runs inside AWS, so the host of the URL
and of every redirect is resolved and judged by HostGuard when a connection opens, and the
socket connects to exactly those addresses (DNS rebinding gains nothing); TLS is verified
against the host name. Proxies and `.netrc` from the environment are ignored (`trust_env`
off), and urllib3 retries nothing behind our back, so `requests_sent` is the truth.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from crmsync.calendar import problems
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.security.network import HostGuard, connect_checked, verifying_tls_context

CaFile = str | None
MAX_ANSWER_BYTES = 64 * 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class DavReply:
    """A complete HTTP answer; `url` is where it came from after redirects."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes
    url: str


def where(url: str) -> str:
    """host[:port] of a URL, for messages (never the user info)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


class DavTransport:
    """One user's HTTP session with a CalDAV server (Basic auth, Digest when only it is
    offered). Not thread-safe: one sync uses one transport."""

    def __init__(
        self,
        guard: HostGuard,
        username: str,
        password: str,
        timeout: float,
        cafile: CaFile = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.requests_sent = 0
        self._guard = guard
        self._username = username
        self._password = password
        self._timeout = timeout
        self._max_bytes = max_answer_bytes
        self._auth: AuthBase = HTTPBasicAuth(username.encode(), password.encode())
        self._session = requests.Session()
        self._session.trust_env = False
        adapter = _GuardedAdapter(guard, verifying_tls_context(cafile), self._count)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def _count(self) -> None:
        self.requests_sent += 1

    def close(self) -> None:
        self._session.close()

    def check_url(self, url: str) -> None:
        """Refuse URLs we must not send the password to (before anything is sent)."""
        parts = urlsplit(url)
        if parts.scheme == "http" and not self._guard.plaintext_allowed:
            raise MailServerError(problems.insecure_not_allowed())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MailServerError(problems.not_caldav(url[:200]))

    def request(
        self,
        method: str,
        url: str,
        *,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> DavReply:
        """Send, following up to five redirects (same method and body, as WebDAV clients
        do; the password only goes on to https or to the same origin)."""
        send_headers = dict(headers or {})
        data = body.encode("utf-8") if isinstance(body, str) else body
        auth: AuthBase | None = self._auth
        for _ in range(_MAX_REDIRECTS + 1):
            self.check_url(url)
            reply = self._once(method, url, data, send_headers, auth)
            if reply.status == 401 and isinstance(auth, HTTPBasicAuth) and _digest_only(reply):
                self._auth = auth = HTTPDigestAuth(self._username, self._password)
                reply = self._once(method, url, data, send_headers, auth)
            location = reply.headers.get("Location")
            if reply.status not in _REDIRECTS or not location:
                return reply
            target = urljoin(url, location)
            if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                raise MailServerError(problems.insecure_not_allowed())
            if (
                urlsplit(target).scheme != "https"
                and urlsplit(target).netloc != urlsplit(url).netloc
            ):
                auth = None
            url = target
        raise MailServerError(problems.server_error(where(url), "redirects in a loop"))

    def _once(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
        auth: AuthBase | None,
    ) -> DavReply:
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                auth=auth,
                timeout=(self._timeout, self._timeout),
                allow_redirects=False,
                stream=True,
            )
            try:
                body = self._read(response, url)
            finally:
                response.close()
        except requests.RequestException as exc:
            raise MailServerError(self._network_problem(exc, url)) from exc
        return DavReply(response.status_code, response.headers, body, url)

    def _read(self, response: requests.Response, url: str) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise MailServerError(_too_large(url, self._max_bytes))
        body = bytearray()
        for chunk in response.iter_content(_CHUNK):
            body.extend(chunk)
            if len(body) > self._max_bytes:
                raise MailServerError(_too_large(url, self._max_bytes))
        return bytes(body)

    def _network_problem(self, exc: requests.RequestException, url: str) -> ConnectionProblem:
        causes = list(_causes(exc))
        place = where(url)
        tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        if tls is not None or isinstance(exc, requests.exceptions.SSLError):
            return problems.tls_failed(place, tls)
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return problems.connection_refused(place, refused=True)
        # urllib3's NewConnectionError is a ConnectTimeoutError: look at what it wraps.
        if any(_is_timeout(c) for c in causes):
            return problems.timeout(place, self._timeout)
        if any(isinstance(c, urllib3.exceptions.NewConnectionError) for c in causes):
            return problems.connection_refused(place, refused=False)
        return problems.hung_up(place)


def _too_large(url: str, limit: int) -> ConnectionProblem:
    return problems.server_error(where(url), f"sent an answer larger than {limit // 2**20} MB")


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(
        exc, TimeoutError | urllib3.exceptions.TimeoutError | requests.exceptions.Timeout
    )


def _digest_only(reply: DavReply) -> bool:
    offered = reply.headers.get("WWW-Authenticate", "").lower()
    return "digest" in offered and "basic" not in offered


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (urllib3 and requests nest them in args)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        stack.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))


# -- connections pinned to admitted addresses ------------------------------------------------


def _pinned_socket(conn: HTTPConnection, guard: HostGuard) -> socket.socket:
    """What urllib3's `_new_conn` does, but only to addresses HostGuard admitted."""
    addresses = guard.resolve(conn.host, conn.port)  # MailServerError when refused
    timeout = conn.timeout if isinstance(conn.timeout, int | float) else None
    try:
        sock = connect_checked(addresses, timeout or 15.0)
    except TimeoutError as exc:
        raise urllib3.exceptions.ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out"
        ) from exc
    except OSError as exc:
        raise urllib3.exceptions.NewConnectionError(
            conn, f"Failed to establish a new connection: {exc}"
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _pool_classes(guard: HostGuard) -> dict[str, type[HTTPConnectionPool]]:
    class _Http(HTTPConnection):
        _guard: ClassVar[HostGuard] = guard

        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, self._guard)

    class _Https(HTTPSConnection):
        _guard: ClassVar[HostGuard] = guard

        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, self._guard)

    class _HttpPool(HTTPConnectionPool):
        ConnectionCls = _Http

    class _HttpsPool(HTTPSConnectionPool):
        ConnectionCls = _Https

    return {"http": _HttpPool, "https": _HttpsPool}


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: HostGuard, tls: ssl.SSLContext, on_send: Callable[[], None]) -> None:
        self._pool_classes = _pool_classes(guard)
        self._tls = tls
        self._on_send = on_send
        super().__init__(max_retries=0)

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = DEFAULT_POOLBLOCK,
        **pool_kwargs: Any,
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, ssl_context=self._tls, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self._on_send()
        return super().send(request, *args, **kwargs)
