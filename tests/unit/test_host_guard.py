"""HostGuard: user-supplied mail hosts may not lead into our own network (SSRF)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from ipaddress import ip_address

import pytest

from crmsync.models.servers import MailServerError
from crmsync.security.network import HostGuard, Resolver, refusal_reason

ANY_V4 = "0.0.0.0"  # noqa: S104 - an address to refuse, nothing binds to it

REFUSED_IN_PRODUCTION = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.10.10",
    "100.64.0.1",
    "100.127.255.254",
    ANY_V4,
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.10",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fd00:ec2::254",
    "fd12:3456::1",
    "fc00::1",
    "ff02::1",
    "2001:db8::1",
    "::2",  # deprecated IPv4-compatible, IETF reserved
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::1",  # 6to4 around 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"]


def resolving_to(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"an IP literal must not be looked up: {host}")


def unresolvable(host: str, port: int) -> Sequence[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("address", REFUSED_IN_PRODUCTION)
def test_production_refuses_internal_literal(address: str) -> None:
    with pytest.raises(MailServerError) as caught:
        HostGuard("production", resolver=no_dns).resolve(address, 993)
    problem = caught.value.problem
    assert problem.code == "host_not_allowed"
    assert address in problem.message
    assert "does not connect to" in problem.message
    assert problem.action


@pytest.mark.parametrize("address", REFUSED_IN_PRODUCTION)
def test_production_refuses_name_resolving_to_internal(address: str) -> None:
    guard = HostGuard("production", resolver=resolving_to("93.184.216.34", address))
    with pytest.raises(MailServerError) as caught:
        guard.resolve("mail.attacker.example", 993)
    assert caught.value.problem.code == "host_not_allowed"
    assert "mail.attacker.example" in caught.value.problem.message


@pytest.mark.parametrize(
    ("address", "phrase"),
    [
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link-local"),
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        (ANY_V4, "unspecified"),
    ],
)
def test_refusal_names_the_kind_of_address(address: str, phrase: str) -> None:
    assert phrase in (refusal_reason(ip_address(address)) or "")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_address_allowed(address: str) -> None:
    [resolved] = HostGuard("production", resolver=no_dns).resolve(address, 993)
    assert resolved.ip == ip_address(address)
    assert resolved.sockaddr == (str(ip_address(address)), 993)


def test_name_resolving_to_public_addresses_is_pinned_to_them() -> None:
    guard = HostGuard("production", resolver=resolving_to("93.184.216.34", "93.184.216.34", "::2"))
    with pytest.raises(MailServerError):
        guard.resolve("imap.example.com", 993)  # ::2 is reserved: one bad address refuses all

    guard = HostGuard("production", resolver=resolving_to("93.184.216.34", "93.184.216.34"))
    resolved = guard.resolve("imap.example.com", 993)
    assert [(r.host, str(r.ip), r.port) for r in resolved] == [
        ("imap.example.com", "93.184.216.34", 993)
    ]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_local_mode_allows_loopback(address: str) -> None:
    assert HostGuard("local", resolver=no_dns).resolve(address, 143)[0].ip == ip_address(address)
    guard = HostGuard("local", resolver=resolving_to(address))
    assert guard.resolve("localhost", 143)[0].ip == ip_address(address)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "fe80::1", "10.0.0.1", ANY_V4]
)
def test_local_mode_still_refuses_metadata_link_local_and_private(address: str) -> None:
    with pytest.raises(MailServerError) as caught:
        HostGuard("local", resolver=no_dns).resolve(address, 143)
    assert caught.value.problem.code == "host_not_allowed"


def test_plaintext_allowed_only_locally() -> None:
    assert HostGuard("local").plaintext_allowed
    assert not HostGuard("production").plaintext_allowed


@pytest.mark.parametrize("env", ["production", "local"])
def test_unresolvable_host_hints_at_vpn(env: str) -> None:
    guard = HostGuard("local" if env == "local" else "production", resolver=unresolvable)
    with pytest.raises(MailServerError) as caught:
        guard.resolve("mail.corp.internal", 993)
    problem = caught.value.problem
    assert problem.code == "host_not_found"
    assert "mail.corp.internal does not resolve publicly" in problem.message
    assert "VPN" in problem.message
    assert "VPN" in problem.action


def test_resolver_with_no_answer_is_not_found() -> None:
    with pytest.raises(MailServerError) as caught:
        HostGuard("production", resolver=resolving_to()).resolve("empty.example.com", 993)
    assert caught.value.problem.code == "host_not_found"


def test_invalid_idna_name_is_not_found() -> None:
    def idna_error(host: str, port: int) -> Sequence[str]:
        raise UnicodeError("label empty or too long")

    with pytest.raises(MailServerError) as caught:
        HostGuard("production", resolver=idna_error).resolve("a..b.example", 993)
    assert caught.value.problem.code == "host_not_found"
