"""Human or machine (SPEC T1, T2): proxies, privacy relays, link checkers and scanners are
counted apart; the sender's own copy too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync.tracking.classify import classify_hit, classify_user_agent

SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(minutes=5)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
OUTLOOK_DESKTOP = (
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17328; Pro"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.9.0"
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120 Mobile Safari/537.36"
)

TABLE = [
    # (user agent, class, machine)
    (CHROME, "human", False),
    (APPLE_MAIL, "human", False),
    (IPHONE_MAIL, "human", False),
    (OUTLOOK_DESKTOP, "human", False),
    (THUNDERBIRD, "human", False),
    (CUBOT_PHONE, "human", False),
    (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "gmail_proxy",
        True,
    ),
    (
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "yahoo_proxy",
        True,
    ),
    ("Mozilla/5.0", "apple_mpp", True),
    (" Mozilla/5.0 ", "apple_mpp", True),
    ("Microsoft Office Existence Discovery", "office_discovery", True),
    ("Microsoft Office Protocol Discovery", "office_discovery", True),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "BingPreview/1.0b",
        "link_preview",
        True,
    ),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "link_preview", True),
    ("facebookexternalhit/1.1", "link_preview", True),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "security_scanner", True),
    ("Proofpoint URL Defense", "security_scanner", True),
    ("Mimecast-URL-Protect/1.0", "security_scanner", True),
    ("Symantec WSS Agent", "security_scanner", True),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", True),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0)", "bot", True),
    ("curl/8.5.0", "bot", True),
    ("python-requests/2.32.3", "bot", True),
    ("Go-http-client/1.1", "bot", True),
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36", "bot", True),
    ("", "no_user_agent", True),
    (None, "no_user_agent", True),
]


@pytest.mark.parametrize(("user_agent", "ua_class", "machine"), TABLE)
def test_classification_table(user_agent: str | None, ua_class: str, machine: bool) -> None:
    for kind in ("open", "click"):
        verdict = classify_hit(
            kind, user_agent=user_agent, method="GET", own=False, sent_at=SENT, at=LATER
        )
        assert (verdict.ua_class, verdict.machine, verdict.own) == (ua_class, machine, False)
        assert verdict.human is not machine
        if machine:
            assert verdict.reason


def test_head_request_is_a_machine_whatever_the_user_agent() -> None:
    verdict = classify_hit(
        "click", user_agent=CHROME, method="head", own=False, sent_at=SENT, at=LATER
    )

    assert (verdict.ua_class, verdict.machine) == ("head_request", True)


def test_hits_within_the_scanner_window_are_machines() -> None:
    soon = classify_hit(
        "click",
        user_agent=CHROME,
        method="GET",
        own=False,
        sent_at=SENT,
        at=SENT + timedelta(seconds=3),
    )
    edge = classify_hit(
        "open",
        user_agent=CHROME,
        method="GET",
        own=False,
        sent_at=SENT,
        at=SENT + timedelta(seconds=10),
    )
    custom = classify_hit(
        "open",
        user_agent=CHROME,
        method="GET",
        own=False,
        sent_at=SENT,
        at=SENT + timedelta(seconds=20),
        scanner_window=timedelta(seconds=30),
    )

    assert (soon.ua_class, soon.machine) == ("too_soon", True)
    assert "3.0 s" in soon.reason
    assert (edge.ua_class, edge.machine) == ("human", False)
    assert custom.ua_class == "too_soon"


def test_own_address_wins_over_everything() -> None:
    verdict = classify_hit(
        "open", user_agent="Mozilla/5.0", method="HEAD", own=True, sent_at=SENT, at=SENT
    )

    assert (verdict.ua_class, verdict.own, verdict.machine, verdict.human) == (
        "own",
        True,
        False,
        False,
    )


def test_user_agent_alone() -> None:
    assert classify_user_agent(CHROME) is None
    gmail = classify_user_agent("x GoogleImageProxy y")
    assert gmail is not None
    assert gmail.ua_class == "gmail_proxy"
