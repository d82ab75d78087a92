"""A bounded HTTP GET for discovery: the name is resolved by our resolver and checked first.

Autoconfig URLs are built from a domain the user typed, so fetching them is a server-side
request to an address the user controls. The getter therefore resolves the host through the
injected resolver, refuses addresses by the rule users' mail servers obey (no private,
loopback or metadata address in production), connects to that exact address (no second
lookup that DNS rebinding could change), and bounds time and size. Redirects are followed a
few times, each one checked again.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from typing import Literal, Protocol
from urllib.parse import urljoin, urlsplit

import dns.exception
import dns.resolver
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmsync.mail.hostnames import normalise_hostname
from crmsync.security.network import Env, IPAddress, refusal_reason, verifying_tls_context

FetchOutcome = Literal["timeout", "nxdomain", "refused", "not_found", "too_large", "error"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 3
_CHUNK = 16 * 1024


class FetchError(Exception):
    """A GET that produced no usable body; `outcome` is what discovery records as the step."""

    def __init__(self, outcome: FetchOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome: FetchOutcome = outcome
        self.detail = detail


class HttpGet(Protocol):
    def __call__(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        """The body of a 200 answer; raise FetchError for anything else."""
        ...


class FetchPolicy(BaseModel):
    """Where discovery may fetch from; derived from `Settings.env`, never from the request.

    Production: https only, to public addresses only. Local (the local stack and tests):
    plain http is allowed, but then only to loopback, and `port` lets a test server on a
    random port stand in for port 80/443.
    """

    model_config = ConfigDict(frozen=True)

    env: Env = "production"
    scheme: Literal["https", "http"] = "https"
    port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _production_is_https(self) -> FetchPolicy:
        if self.env == "production" and (self.scheme != "https" or self.port is not None):
            raise ValueError("production fetches use https on the default port only")
        return self

    @classmethod
    def for_env(cls, env: Env, *, port: int | None = None) -> FetchPolicy:
        if env == "local":
            return cls(env="local", scheme="http", port=port)
        return cls()

    def url(self, host: str, path_and_query: str) -> str:
        netloc = host if self.port is None else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{path_and_query}"

    def refusal(self, scheme: str, address: IPAddress) -> str | None:
        """Why a GET over `scheme` to `address` is not allowed, or None when it is.

        Addresses are judged by the same rule as users' mail servers (`refusal_reason`);
        plain http is on top limited to loopback in local mode.
        """
        if scheme == "http" and self.env == "local":
            return None if address.is_loopback else "plain http to a non-loopback address"
        if scheme != "https":
            return f"{scheme!r} is not an allowed scheme"
        return refusal_reason(address, self.env)


class ResolvingHttpGetter:
    """The production `HttpGet`: stdlib http.client, pinned to the addresses it checked."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        policy: FetchPolicy,
        tls: ssl.SSLContext | None = None,
        dns_seconds: float = 2.0,
    ) -> None:
        self._resolver = resolver
        self._dns_seconds = dns_seconds
        self._policy = policy
        self._tls = tls or verifying_tls_context()

    def __call__(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        deadline = time.monotonic() + timeout
        for _ in range(_MAX_REDIRECTS + 1):
            location = self._get_once(url, deadline, max_bytes)
            if isinstance(location, bytes):
                return location
            url = urljoin(url, location)
        raise FetchError("error", f"more than {_MAX_REDIRECTS} redirects")

    def _get_once(self, url: str, deadline: float, max_bytes: int) -> bytes | str:
        """The body, or the Location of a redirect."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        addresses = self._addresses(host, deadline)
        for ip in addresses:
            reason = self._policy.refusal(parts.scheme, ip)
            if reason is not None:
                raise FetchError("refused", f"{parts.scheme}://{host} leads to {ip}: {reason}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        last_error: OSError | None = None
        for address in addresses:
            conn = self._connection(parts.scheme, host, port, str(address), _left(deadline))
            try:
                return self._exchange(conn, target, deadline, max_bytes)
            except TimeoutError as exc:
                raise FetchError("timeout", f"{host}: no answer in time") from exc
            except ConnectionRefusedError as exc:
                last_error = exc
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError("error", f"{host}: {type(exc).__name__}: {exc}") from exc
            finally:
                conn.close()
        raise FetchError("error", f"{host}: connection refused ({last_error})")

    def _addresses(self, host: str, deadline: float) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        if normalise_hostname(host) is None:
            raise FetchError("error", f"not a host name: {host!r}")
        found: list[IPAddress] = []
        for rdtype in ("A", "AAAA"):
            try:
                lifetime = min(self._dns_seconds, _left(deadline))
                answer = self._resolver.resolve(f"{host}.", rdtype, lifetime=lifetime, search=False)
            except dns.resolver.NXDOMAIN as exc:
                raise FetchError("nxdomain", f"{host} does not exist") from exc
            except dns.resolver.NoAnswer:
                continue
            except dns.exception.Timeout as exc:
                raise FetchError("timeout", f"resolving {host} timed out") from exc
            except dns.exception.DNSException as exc:
                raise FetchError("error", f"resolving {host}: {exc}") from exc
            found.extend(ipaddress.ip_address(rr.to_text()) for rr in answer)
            if found:
                break
        if not found:
            raise FetchError("nxdomain", f"{host} has no address")
        return found

    def _connection(
        self, scheme: str, host: str, port: int, address: str, timeout: float
    ) -> http.client.HTTPConnection:
        if scheme == "https":
            return _PinnedHttpsConnection(host, port, address, timeout, self._tls)
        return _PinnedHttpConnection(host, port, address, timeout)

    @staticmethod
    def _exchange(
        conn: http.client.HTTPConnection, target: str, deadline: float, max_bytes: int
    ) -> bytes | str:
        conn.request(
            "GET",
            target,
            headers={"Accept": "application/xml, text/xml", "User-Agent": "crmsync-discovery"},
        )
        response = conn.getresponse()
        if response.status in _REDIRECTS and response.getheader("Location"):
            return response.getheader("Location", "")
        if response.status == 404:
            raise FetchError("not_found", "HTTP 404")
        if response.status != 200:
            raise FetchError("error", f"HTTP {response.status}")
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError("too_large", f"{declared} bytes declared, limit {max_bytes}")
        body = bytearray()
        while True:
            if conn.sock is not None:
                conn.sock.settimeout(_left(deadline))
            chunk = response.read1(_CHUNK)
            if not chunk:
                return bytes(body)
            body.extend(chunk)
            if len(body) > max_bytes:
                raise FetchError("too_large", f"more than {max_bytes} bytes")


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timeout", "time budget spent")
    return left


class _PinnedHttpConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHttpsConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate verified for the host name."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, tls: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self._address = address
        self._tls = tls

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
