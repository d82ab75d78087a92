"""Discovery against a local DNS server and a local autoconfig web server, never the internet."""

from __future__ import annotations

import time

import pytest

from crmsync.mail.autoconfig import AutoconfigError, parse_autoconfig
from crmsync.mail.discovery import DiscoveryResult, MailDiscovery
from crmsync.mail.fetch import FetchPolicy
from crmsync_local.testservers.dns import LocalDnsServer, SilentDnsServer, loopback_resolver
from crmsync_local.testservers.http_files import CannedResponse, StaticHttpServer
from tests.fixtures.discovery import TEST_LIMITS

pytestmark = pytest.mark.integration

AUTOCONFIG_PATH = "/mail/config-v1.1.xml"
WELL_KNOWN_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"

CONFIG_XML = """<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>Example Hosting</displayName>
    <incomingServer type="pop3">
      <hostname>pop.{domain}</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname><port>143</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.{domain}</hostname><port>587</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<clientConfig><emailProvider><displayName>&lol5;</displayName></emailProvider></clientConfig>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE clientConfig [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<clientConfig><emailProvider><displayName>&x;</displayName></emailProvider></clientConfig>
"""


def _trail(result: DiscoveryResult) -> list[tuple[str, str]]:
    return [(step.method, step.outcome) for step in result.steps]


@pytest.mark.parametrize(
    ("mx_records", "provider_id", "imap_host"),
    [
        (["1 aspmx.l.google.com.", "5 alt1.aspmx.l.google.com."], "gmail", "imap.gmail.com"),
        (["0 {label}.mail.protection.outlook.com."], "microsoft365", "outlook.office365.com"),
        (["0 mailstore1.secureserver.net."], "godaddy", "imap.secureserver.net"),
        (["10 in1-smtp.messagingengine.com."], "fastmail", "imap.fastmail.com"),
        (["10 mx1.privateemail.com."], "namecheap", "mail.privateemail.com"),
        (["10 mx.yandex.net."], "yandex", "imap.yandex.com"),
        (["0 box5123.bluehost.com."], "bluehost", "mail.{domain}"),
    ],
)
def test_custom_domain_found_through_mx(
    dns_server: LocalDnsServer,
    local_discovery: MailDiscovery,
    mail_domain: str,
    mx_records: list[str],
    provider_id: str,
    imap_host: str,
) -> None:
    label = mail_domain.split(".")[0]
    dns_server.add(mail_domain, "MX", *(r.format(label=label) for r in mx_records))

    result = local_discovery.discover(f"Jane.Doe@{mail_domain.upper()}")

    assert result.found
    assert result.source == "mx"
    assert result.provider_id == provider_id
    assert result.domain == mail_domain
    assert result.imap is not None
    assert result.imap.host == imap_host.format(domain=mail_domain)
    assert result.smtp is not None
    assert _trail(result) == [("preset", "not_found"), ("mx", "found")]


def test_custom_domain_found_through_srv(
    dns_server: LocalDnsServer, local_discovery: MailDiscovery, mail_domain: str
) -> None:
    dns_server.add(mail_domain, "MX", f"10 mx.{mail_domain}.")
    dns_server.add(f"_imaps._tcp.{mail_domain}", "SRV", f"0 1 9993 imap.{mail_domain}.")
    dns_server.add(f"_submissions._tcp.{mail_domain}", "SRV", "0 0 0 .")
    dns_server.add(
        f"_submission._tcp.{mail_domain}",
        "SRV",
        f"10 1 2587 smtp-backup.{mail_domain}.",
        f"5 1 2588 smtp.{mail_domain}.",
    )

    result = local_discovery.discover(f"jane@{mail_domain}")

    assert result.found
    assert result.source == "srv"
    assert result.email == f"jane@{mail_domain}"
    assert result.imap is not None
    assert (result.imap.host, result.imap.port, result.imap.security) == (
        f"imap.{mail_domain}",
        9993,
        "ssl",
    )
    assert result.smtp is not None
    assert (result.smtp.host, result.smtp.port, result.smtp.security) == (
        f"smtp.{mail_domain}",
        2588,
        "starttls",
    )
    assert _trail(result) == [
        ("preset", "not_found"),
        ("mx", "unknown_provider"),
        ("srv", "found"),
        ("srv", "not_offered"),
        ("srv", "found"),
    ]


def test_custom_domain_found_through_autoconfig(
    dns_server: LocalDnsServer,
    autoconfig_http: StaticHttpServer,
    local_discovery: MailDiscovery,
    mail_domain: str,
) -> None:
    dns_server.add(f"autoconfig.{mail_domain}", "A", "127.0.0.1")
    body = CONFIG_XML.format(domain=mail_domain).encode()
    autoconfig_http.add(f"autoconfig.{mail_domain}", AUTOCONFIG_PATH, CannedResponse(body))

    result = local_discovery.discover(f"jane@{mail_domain}")

    assert result.found
    assert result.source == "autoconfig"
    assert result.provider_name == "Example Hosting"
    assert result.imap is not None
    assert (result.imap.host, result.imap.port, result.imap.security) == (
        f"imap.{mail_domain}",
        993,
        "ssl",
    )
    assert result.smtp is not None
    assert (result.smtp.port, result.smtp.security) == (587, "starttls")
    assert result.username_hint == "local_part"
    assert (
        f"autoconfig.{mail_domain}",
        f"{AUTOCONFIG_PATH}?emailaddress=jane@{mail_domain}",
    ) in autoconfig_http.requests
    assert _trail(result)[-1] == ("autoconfig", "found")


def test_autoconfig_from_the_well_known_path(
    dns_server: LocalDnsServer,
    autoconfig_http: StaticHttpServer,
    local_discovery: MailDiscovery,
    mail_domain: str,
) -> None:
    dns_server.add(mail_domain, "A", "127.0.0.1")
    body = CONFIG_XML.format(domain=mail_domain).encode()
    autoconfig_http.add(mail_domain, WELL_KNOWN_PATH, CannedResponse(body))

    result = local_discovery.discover(f"jane@{mail_domain}")

    assert result.source == "autoconfig"
    assert _trail(result)[-2:] == [("autoconfig", "nxdomain"), ("autoconfig", "found")]


def test_unknown_domain_lists_every_step(local_discovery: MailDiscovery, mail_domain: str) -> None:
    result = local_discovery.discover(f"jane@{mail_domain}")

    assert not result.found
    assert result.source == "none"
    assert result.imap is None
    assert result.smtp is None
    assert [(s.method, s.target, s.outcome) for s in result.steps] == [
        ("preset", mail_domain, "not_found"),
        ("mx", f"{mail_domain} MX", "nxdomain"),
        ("srv", f"_imaps._tcp.{mail_domain} SRV", "nxdomain"),
        ("srv", f"_imap._tcp.{mail_domain} SRV", "nxdomain"),
        ("srv", f"_submissions._tcp.{mail_domain} SRV", "nxdomain"),
        ("srv", f"_submission._tcp.{mail_domain} SRV", "nxdomain"),
        ("autoconfig", result.steps[6].target, "nxdomain"),
        ("autoconfig", result.steps[7].target, "nxdomain"),
        ("autodiscover", mail_domain, "not_tried"),
    ]
    assert result.steps[6].target.startswith(f"http://autoconfig.{mail_domain}:")
    assert any("manually" in note for note in result.notes)


def test_dns_server_that_does_not_answer(silent_discovery: MailDiscovery) -> None:
    started = time.monotonic()

    result = silent_discovery.discover("jane@silent.test")

    assert time.monotonic() - started < TEST_LIMITS.total_seconds
    assert not result.found
    outcomes = {s.method: s.outcome for s in result.steps if s.method in ("mx", "srv")}
    assert outcomes == {"mx": "timeout", "srv": "timeout"}
    assert all(s.outcome == "timeout" for s in result.steps if s.method == "autoconfig")


def test_time_budget_skips_what_is_left(silent_dns: SilentDnsServer) -> None:
    limits = TEST_LIMITS.model_copy(update={"total_seconds": 0.7})
    discovery = MailDiscovery(
        loopback_resolver(silent_dns.port, timeout=0.3),
        FetchPolicy.for_env("local", port=1),
        limits=limits,
    )

    result = discovery.discover("jane@slow.test")

    assert not result.found
    assert "skipped" in {step.outcome for step in result.steps}
    assert result.steps[-1].method == "autodiscover"


def test_redirect_is_followed_and_checked_again(
    dns_server: LocalDnsServer,
    autoconfig_http: StaticHttpServer,
    local_discovery: MailDiscovery,
    mail_domain: str,
) -> None:
    dns_server.add(f"autoconfig.{mail_domain}", "CNAME", f"web.{mail_domain}.")
    dns_server.add(f"web.{mail_domain}", "A", "127.0.0.1")
    dns_server.add(f"cfg.{mail_domain}", "A", "127.0.0.1")
    moved = f"http://cfg.{mail_domain}:{autoconfig_http.port}/shared/config.xml"
    autoconfig_http.add(
        f"autoconfig.{mail_domain}",
        AUTOCONFIG_PATH,
        CannedResponse(b"", status=302, headers={"Location": moved}),
    )
    body = CONFIG_XML.format(domain=mail_domain).encode()
    autoconfig_http.add(f"cfg.{mail_domain}", "/shared/config.xml", CannedResponse(body))

    result = local_discovery.discover(f"jane@{mail_domain}")

    assert result.source == "autoconfig"
    assert (f"cfg.{mail_domain}", "/shared/config.xml") in autoconfig_http.requests


def test_dns_server_answers_over_tcp_too(dns_server: LocalDnsServer, mail_domain: str) -> None:
    dns_server.add(mail_domain, "TXT", '"v=spf1 -all"')

    answer = dns_server.resolver().resolve(f"{mail_domain}.", "TXT", tcp=True)

    assert [rr.to_text() for rr in answer] == ['"v=spf1 -all"']


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (CannedResponse(BILLION_LAUGHS), "invalid"),
        (CannedResponse(XXE), "invalid"),
        (CannedResponse(b"<clientConfig>" + b" " * 200_000 + b"</clientConfig>"), "too_large"),
        (
            CannedResponse(b"<a>" * 100_000, declare_length=False),
            "too_large",
        ),
        (CannedResponse(b"not xml at all"), "invalid"),
        (CannedResponse(b"", status=500), "error"),
    ],
    ids=["billion-laughs", "xxe", "huge", "huge-undeclared", "garbage", "server-error"],
)
def test_hostile_autoconfig_is_refused(
    dns_server: LocalDnsServer,
    autoconfig_http: StaticHttpServer,
    local_discovery: MailDiscovery,
    mail_domain: str,
    response: CannedResponse,
    outcome: str,
) -> None:
    dns_server.add(f"autoconfig.{mail_domain}", "A", "127.0.0.1")
    autoconfig_http.add(f"autoconfig.{mail_domain}", AUTOCONFIG_PATH, response)

    result = local_discovery.discover(f"jane@{mail_domain}")

    assert not result.found
    step = next(s for s in result.steps if s.target.startswith(f"http://autoconfig.{mail_domain}"))
    assert step.outcome == outcome


def test_production_never_fetches_from_loopback(
    dns_server: LocalDnsServer, mail_domain: str
) -> None:
    """A domain whose autoconfig host points at 127.0.0.1 must not make us call ourselves."""
    dns_server.add(f"autoconfig.{mail_domain}", "A", "127.0.0.1")
    dns_server.add(mail_domain, "A", "169.254.169.254")
    discovery = MailDiscovery(dns_server.resolver(), FetchPolicy(), limits=TEST_LIMITS)

    result = discovery.discover(f"jane@{mail_domain}")

    autoconfig = [s for s in result.steps if s.method == "autoconfig"]
    assert [s.outcome for s in autoconfig] == ["refused", "refused"]
    assert all(s.target.startswith("https://") for s in autoconfig)
    assert "metadata" in autoconfig[1].detail


def test_production_policy_cannot_be_plain_http() -> None:
    with pytest.raises(ValueError, match="https"):
        FetchPolicy(env="production", scheme="http")


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, b"<clientConfig/>", b"<x/>"])
def test_parse_autoconfig_refuses_what_it_cannot_trust(payload: bytes) -> None:
    with pytest.raises(AutoconfigError):
        parse_autoconfig(payload, "example.test")
