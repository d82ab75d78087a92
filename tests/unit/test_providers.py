"""The provider table covers every provider SPEC E2 names, and the lookups pick the right one."""

from __future__ import annotations

import dns.resolver
import pytest

from crmsync.mail.discovery import MailDiscovery
from crmsync.mail.fetch import FetchPolicy
from crmsync.mail.providers import (
    all_presets,
    domain_of,
    preset_by_id,
    preset_for_email,
    preset_for_mx,
)

# SPEC E2, in its order: provider name → preset id, and address domains that provider owns.
SPEC_E2: dict[str, tuple[str, tuple[str, ...]]] = {
    "Gmail/Google Workspace": ("gmail", ("gmail.com", "googlemail.com")),
    "Yahoo": ("yahoo", ("yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com")),
    "Outlook.com/Hotmail": ("outlook", ("outlook.com", "hotmail.com", "live.com", "msn.com")),
    "iCloud": ("icloud", ("icloud.com", "me.com", "mac.com")),
    "AOL": ("aol", ("aol.com", "aim.com")),
    "FastMail": ("fastmail", ("fastmail.com", "fastmail.fm")),
    "GandiMail": ("gandi", ()),
    "GMX": ("gmx", ("gmx.net", "gmx.de", "gmx.at")),
    "Mail.ru": ("mailru", ("mail.ru", "inbox.ru", "list.ru", "bk.ru")),
    "Yandex": ("yandex", ("yandex.ru", "yandex.com", "ya.ru")),
    "GoDaddy": ("godaddy", ()),
    "Hover": ("hover", ()),
    "Namecheap": ("namecheap", ()),
    "Bluehost": ("bluehost", ()),
    "Soverin": ("soverin", ("soverin.net",)),
    "Zimbra": ("zimbra", ()),
    "123-reg": ("123-reg", ()),
    "126": ("netease126", ("126.com",)),
    "QQ Mail": ("qq", ("qq.com", "foxmail.com")),
    "Aliyun": ("aliyun", ("aliyun.com",)),
    "Netease 163": ("netease163", ("163.com",)),
    "Yeah.net": ("yeah", ("yeah.net",)),
    "139.com": ("china_mobile139", ("139.com",)),
}
SPEC_DOMAINS = [
    (provider_id, domain) for provider_id, domains in SPEC_E2.values() for domain in domains
]


@pytest.mark.parametrize(("name", "provider_id"), [(n, v[0]) for n, v in SPEC_E2.items()])
def test_every_spec_provider_has_imap_and_smtp(name: str, provider_id: str) -> None:
    preset = preset_by_id(provider_id)
    assert preset is not None, name
    imap, smtp = preset.imap_for("example.com"), preset.smtp_for("example.com")
    assert imap.host
    assert imap.security in ("ssl", "starttls")
    assert smtp.host
    assert smtp.security in ("ssl", "starttls")
    assert (imap.port, imap.security) in ((993, "ssl"), (143, "starttls"))
    assert (smtp.port, smtp.security) in ((465, "ssl"), (587, "starttls"))


@pytest.mark.parametrize(("provider_id", "domain"), SPEC_DOMAINS)
def test_preset_for_email_finds_the_owner_of_the_domain(provider_id: str, domain: str) -> None:
    preset = preset_for_email(f"Someone.Else@{domain.upper()}")
    assert preset is not None
    assert preset.id == provider_id


def test_documented_hosts() -> None:
    gmail = preset_by_id("gmail")
    assert gmail is not None
    assert (gmail.imap.host, gmail.imap.port, gmail.imap.security) == ("imap.gmail.com", 993, "ssl")
    assert (gmail.smtp.host, gmail.smtp.port, gmail.smtp.security) == ("smtp.gmail.com", 465, "ssl")
    outlook = preset_by_id("outlook")
    assert outlook is not None
    assert outlook.imap.host == "outlook.office365.com"
    assert (outlook.smtp.host, outlook.smtp.port, outlook.smtp.security) == (
        "smtp-mail.outlook.com",
        587,
        "starttls",
    )
    icloud = preset_by_id("icloud")
    assert icloud is not None
    assert (icloud.smtp.host, icloud.smtp.port) == ("smtp.mail.me.com", 587)


def test_gmail_quirks() -> None:
    gmail = preset_by_id("gmail")
    assert gmail is not None
    assert gmail.saves_sent_copy
    assert gmail.uses_labels
    assert gmail.requires_app_password_with_2fa


def test_sent_copy_is_left_to_servers_that_file_it_themselves() -> None:
    savers = {preset.id for preset in all_presets() if preset.saves_sent_copy}
    assert {"gmail", "outlook", "microsoft365"} <= savers
    assert "fastmail" not in savers


def test_microsoft365_is_a_provider_that_wants_oauth() -> None:
    m365 = preset_by_id("microsoft365")
    assert m365 is not None
    assert m365.oauth_recommended
    assert "OAuth" in m365.notes


@pytest.mark.parametrize(
    ("mx_hosts", "provider_id"),
    [
        (["aspmx.l.google.com.", "alt1.aspmx.l.google.com."], "gmail"),
        (["ASPMX2.GOOGLEMAIL.COM"], "gmail"),
        (["contoso-com.mail.protection.outlook.com"], "microsoft365"),
        (["hotmail-com.olc.protection.outlook.com"], "outlook"),
        (["mailstore1.secureserver.net", "smtp.secureserver.net"], "godaddy"),
        (["in1-smtp.messagingengine.com", "in2-smtp.messagingengine.com"], "fastmail"),
        (["mx1.privateemail.com"], "namecheap"),
        (["eforward1.registrar-servers.com"], "namecheap"),
        (["mx.yandex.net"], "yandex"),
        (["mx.hover.com.cust.hostedemail.com"], "hover"),
        (["spool.mail.gandi.net"], "gandi"),
        (["mxbiz1.qq.com"], "tencent_exmail"),
        (["mx1.qq.com"], "qq"),
        (["mx.example.org", "aspmx.l.google.com"], "gmail"),
    ],
)
def test_preset_for_mx(mx_hosts: list[str], provider_id: str) -> None:
    preset = preset_for_mx(mx_hosts)
    assert preset is not None
    assert preset.id == provider_id


@pytest.mark.parametrize(
    "mx_hosts", [[], ["mx.example.org"], ["notgoogle.com"], ["google.com.evil.test"]]
)
def test_unknown_mx_hosts_match_nothing(mx_hosts: list[str]) -> None:
    assert preset_for_mx(mx_hosts) is None


def test_lookups_on_unknown_input() -> None:
    assert preset_for_email("someone@example.org") is None
    assert preset_for_email("no-at-sign") is None
    assert preset_by_id("nope") is None
    assert domain_of("a@B.Example.") == "b.example"


def test_self_hosted_servers_are_named_after_the_domain() -> None:
    zimbra = preset_by_id("zimbra")
    assert zimbra is not None
    assert zimbra.self_hosted
    assert "self-hosted" in zimbra.notes
    assert zimbra.imap_for("Example.COM").host == "mail.example.com"


def test_presets_are_frozen() -> None:
    gmail = preset_by_id("gmail")
    assert gmail is not None
    with pytest.raises(ValueError, match="frozen"):
        gmail.imap.port = 1
    endpoint = gmail.imap_for("gmail.com")
    endpoint.port = 1  # callers get their own copy
    assert gmail.imap.port == 993


@pytest.mark.parametrize(("provider_id", "domain"), SPEC_DOMAINS)
def test_discovery_answers_from_the_table_without_network(provider_id: str, domain: str) -> None:
    """The unit suite forbids sockets: a preset answer must not touch DNS or HTTP."""
    discovery = MailDiscovery(dns.resolver.Resolver(configure=False), FetchPolicy())
    result = discovery.discover(f"jane@{domain}")
    assert result.found
    assert result.source == "preset"
    assert result.provider_id == provider_id
    assert result.imap is not None
    assert result.smtp is not None
    assert [step.method for step in result.steps] == ["preset"]
