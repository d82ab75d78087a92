"""Which addresses a user-supplied mail server may lead to, and TLS that always verifies.

Users type any host name into the account form, and the worker connects from inside AWS.
Without a check, "mail server = 169.254.169.254" would make us a proxy into the cloud
metadata service or the VPC. The check runs on the resolved addresses at connect time,
and the caller then connects to exactly those addresses, so a name that re-resolves to
something else between check and connect (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal

from crmsync.models.servers import ConnectionProblem, MailServerError

Env = Literal["production", "local"]
IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""Turns (host, port) into IP address strings; raises socket.gaierror when it cannot."""

_METADATA = "the cloud metadata service"
_LINK_LOCAL = "a link-local address"
_LOOPBACK = "a loopback address (this machine)"
_UNSPECIFIED = "an unspecified address"
_PRIVATE = "a private network address"
_CGNAT = "a carrier-grade NAT (shared) address"
_MULTICAST = "a multicast address"
_RESERVED = "a reserved address"

# First match names the reason, so the specific ranges come before the ranges holding them.
_REFUSED: tuple[tuple[IPv4Network | IPv6Network, str], ...] = tuple(
    (ip_network(net), reason)
    for net, reason in (
        ("169.254.169.254/32", _METADATA),
        ("fd00:ec2::254/128", _METADATA),
        ("169.254.0.0/16", _LINK_LOCAL),
        ("fe80::/10", _LINK_LOCAL),
        ("127.0.0.0/8", _LOOPBACK),
        ("::1/128", _LOOPBACK),
        ("0.0.0.0/8", _UNSPECIFIED),
        ("::/128", _UNSPECIFIED),
        ("10.0.0.0/8", _PRIVATE),
        ("172.16.0.0/12", _PRIVATE),
        ("192.168.0.0/16", _PRIVATE),
        ("fc00::/7", _PRIVATE),
        ("fec0::/10", _PRIVATE),
        ("100.64.0.0/10", _CGNAT),
        ("224.0.0.0/4", _MULTICAST),
        ("ff00::/8", _MULTICAST),
        ("240.0.0.0/4", _RESERVED),
        ("192.0.0.0/24", _RESERVED),
        ("192.0.2.0/24", _RESERVED),
        ("198.18.0.0/15", _RESERVED),
        ("198.51.100.0/24", _RESERVED),
        ("203.0.113.0/24", _RESERVED),
        ("100::/64", _RESERVED),
        ("2001::/23", _RESERVED),
        ("2001:db8::/32", _RESERVED),
    )
)
_NAT64 = ip_network("64:ff9b::/96")
_LOCAL_MODE_ALLOWED = frozenset({_LOOPBACK})


@dataclass(frozen=True)
class ResolvedAddress:
    """An address HostGuard admitted for `host`; connect to `ip`, verify TLS against `host`."""

    host: str
    ip: IPAddress
    port: int

    @property
    def sockaddr(self) -> tuple[str, int]:
        return (str(self.ip), self.port)


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver, TCP addresses only."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def refusal_reason(ip: IPAddress, env: Env = "production") -> str | None:
    """Why `ip` must not be connected to (a phrase for the user), or None when it may."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return refusal_reason(embedded, env)
    reason = next((why for net, why in _REFUSED if ip.version == net.version and ip in net), None)
    if reason is None and (ip.is_reserved or not ip.is_global):
        reason = _RESERVED
    if env == "local" and reason in _LOCAL_MODE_ALLOWED:
        return None
    return reason


def _embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), judged on its own."""
    if not isinstance(ip, IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class HostGuard:
    """Resolves a user-supplied host and admits only addresses we may connect to.

    Production refuses every non-public address. Local mode (the dev stack and tests)
    also allows loopback; link-local and metadata addresses stay refused everywhere.
    """

    def __init__(self, env: Env, resolver: Resolver = system_resolver) -> None:
        self.env: Env = env
        self._resolver = resolver

    @property
    def plaintext_allowed(self) -> bool:
        """Only the local stack may send a password without TLS (its servers are on loopback)."""
        return self.env == "local"

    def resolve(self, host: str, port: int) -> list[ResolvedAddress]:
        """Every address of `host`, all of them admitted, or MailServerError.

        One refused address refuses the host: a name that mixes public and internal
        addresses is not one we want to pick from.
        """
        ips = self._lookup(host, port)
        for ip in ips:
            reason = refusal_reason(ip, self.env)
            if reason is not None:
                raise MailServerError(
                    ConnectionProblem(
                        code="host_not_allowed",
                        message=(
                            f"The server name {host} leads to {reason}, "
                            "which crmsync does not connect to."
                        ),
                        action=(
                            "Enter the public host name of your mail server, "
                            "as your provider documents it."
                        ),
                    )
                )
        return [ResolvedAddress(host=host, ip=ip, port=port) for ip in ips]

    def _lookup(self, host: str, port: int) -> list[IPAddress]:
        literal = _parse_ip(host)
        if literal is not None:
            return [literal]
        try:
            found = self._resolver(host, port)
        except (socket.gaierror, ValueError) as exc:  # ValueError: not a valid IDNA name
            raise MailServerError(_not_found(host)) from exc
        ips = list(dict.fromkeys(ip_address(address) for address in found))
        if not ips:
            raise MailServerError(_not_found(host))
        return ips


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _not_found(host: str) -> ConnectionProblem:
    return ConnectionProblem(
        code="host_not_found",
        message=(
            f"The server name {host} does not resolve publicly. It may be misspelt, or it "
            "may only exist inside a company network or VPN."
        ),
        action=(
            "Check the server name. If the server is only reachable through your company "
            "network or VPN, ask your IT team for an address that is reachable from the internet."
        ),
    )


def connect_checked(addresses: Sequence[ResolvedAddress], timeout: float) -> socket.socket:
    """A TCP connection to the first admitted address that answers (never the name again)."""
    if not addresses:
        raise ValueError("no admitted address to connect to")
    last_error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection(address.sockaddr, timeout=timeout)
        except OSError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


def verifying_tls_context(cafile: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A client context whose certificate and host name checks are always on.

    `cafile` only changes whom we trust (the tests' throw-away CA instead of the system
    store); no parameter can switch verification off.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=os.fspath(cafile) if cafile is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
