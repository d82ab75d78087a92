"""Who fetched the pixel or followed the link: a person, or a machine acting on the mail.

Machine hits are stored but counted apart from human ones; the sender's own hits too. The
rules, in order (the first that matches decides):

1. **own**: the token's recipient is the sender's own address (the copy in Sent, viewed
   in the sender's mail app or the CRM). Counted as `own`, neither human nor machine.
2. **head_request**: an HTTP HEAD. Browsers and mail apps GET; link checkers HEAD.
3. **no_user_agent**: no User-Agent header at all.
4. User-Agent patterns (case-sensitive substrings unless noted):
   - `gmail_proxy`: "GoogleImageProxy". Gmail loads every image through Google's caching
     proxy (UA `Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com
     GoogleImageProxy)`, darkvisitors.com/agents/googleimageproxy). The fetch happens
     when Gmail caches the message's images, usually when it is opened, but it cannot be
     told apart from a pre-fetch and later views are served from the cache (Validity,
     "Platform Distribution" categories: Apple Privacy Proxy, Google Proxy, Yahoo Proxy).
   - `yahoo_proxy`: "YahooMailProxy" (UA `YahooMailProxy;
     https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html`, Yahoo's and AOL's image
     proxy; botcrawl.com/bots/yahoomailproxy).
   - `apple_mpp`: the User-Agent is exactly `Mozilla/5.0` and nothing else. Apple Mail
     Privacy Protection downloads remote content through Apple's relays (the iCloud
     Private Relay infrastructure, wordtothewise.com/2021/09/apple-mpp-reporting-and-
     geolocation) when the message arrives, opened or not, with exactly that UA
     (ua-parser/uap-core#509, since 2021-09-20). Apple Mail itself sends a full WebKit
     UA (`Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML,
     like Gecko)`), so the bare string is a strong signal. Heuristic only: anything may
     send that UA, and Apple publishes its egress ranges (mask-api.icloud.com) which a
     stricter check could match; we do not fetch them.
   - `office_discovery`: "Microsoft Office Existence Discovery" or "Microsoft Office
     Protocol Discovery": Office apps (Outlook desktop included) probe a link with a
     HEAD/OPTIONS before opening it in the browser (Microsoft's "Office Existence
     Discovery Protocol" note); the browser's own request that follows is the human one.
     A plain "Microsoft Outlook"/"ms-office" UA is Outlook desktop rendering the message
     for its reader, so it counts as human.
   - `link_preview`: "BingPreview" (Outlook.com / Bing link previews), "Slackbot",
     "Twitterbot", "facebookexternalhit", "LinkedInBot", "Discordbot", "TelegramBot",
     "WhatsApp", "SkypeUriPreview".
   - `security_scanner` (case-insensitive): Barracuda, Proofpoint, Mimecast, Symantec,
     Forcepoint, IronPort, Trend Micro, Sophos, FireEye, FortiMail/Fortinet, McAfee,
     Zscaler, Check Point, SafeLinks. Microsoft Defender for Office 365 ("Safe Links",
     "detonation") mostly fetches with an ordinary browser UA from Microsoft's data
     centres (suped.com, "Why is Office365 automatically opening and clicking emails"),
     so a UA cannot catch it: rule 5 does.
   - `bot`: a word ending in "bot"/"Bot" ("Googlebot", "AhrefsBot"; not "CUBOT", a phone
     model), and case-insensitively "crawler", "spider", "curl/", "wget/",
     "python-requests", "python-urllib", "go-http-client", "okhttp", "headlesschrome",
     "phantomjs", "java/", "libwww-perl".
5. **too_soon**: within `scanner_window` (10 s by default) of the send time. Security
   gateways scan a message, pixel and links, on delivery, before any person could have
   read it. Applied to opens and clicks alike.
6. Anything else is **human**.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

HitKind = Literal["open", "click"]
DEFAULT_SCANNER_WINDOW = timedelta(seconds=10)
APPLE_MPP_USER_AGENT = "Mozilla/5.0"

_EXACT_TOKENS: tuple[tuple[str, str, str], ...] = (
    ("GoogleImageProxy", "gmail_proxy", "Gmail image proxy"),
    ("YahooMailProxy", "yahoo_proxy", "Yahoo Mail image proxy"),
    ("Microsoft Office Existence Discovery", "office_discovery", "Office link probe"),
    ("Microsoft Office Protocol Discovery", "office_discovery", "Office link probe"),
    ("BingPreview", "link_preview", "Bing / Outlook.com link preview"),
    ("Slackbot", "link_preview", "Slack link preview"),
    ("Twitterbot", "link_preview", "X link preview"),
    ("facebookexternalhit", "link_preview", "Facebook link preview"),
    ("LinkedInBot", "link_preview", "LinkedIn link preview"),
    ("Discordbot", "link_preview", "Discord link preview"),
    ("TelegramBot", "link_preview", "Telegram link preview"),
    ("WhatsApp", "link_preview", "WhatsApp link preview"),
    ("SkypeUriPreview", "link_preview", "Skype / Teams link preview"),
)
_SCANNERS = re.compile(
    r"barracuda|proofpoint|mimecast|symantec|forcepoint|ironport|trend ?micro|sophos"
    r"|fireeye|fortimail|fortinet|mcafee|zscaler|check ?point|safelinks",
    re.IGNORECASE,
)
_BOTS = re.compile(
    r"crawler|spider|curl/|wget/|python-requests|python-urllib|go-http-client"
    r"|okhttp|headlesschrome|phantomjs|java/|libwww-perl",
    re.IGNORECASE,
)
# "Googlebot", "AhrefsBot", "bot/1.0"; not a phone model in capitals such as "CUBOT".
_BOT_WORD = re.compile(r"[a-z]bot\b|Bot\b|\bbot\b|bot/", re.ASCII)


@dataclass(frozen=True)
class Classification:
    ua_class: str
    machine: bool
    own: bool
    reason: str

    @property
    def human(self) -> bool:
        return not self.machine and not self.own


def _machine(ua_class: str, reason: str) -> Classification:
    return Classification(ua_class=ua_class, machine=True, own=False, reason=reason)


def classify_user_agent(user_agent: str | None) -> Classification | None:
    """The machine class the User-Agent alone gives, or None when it looks like a person."""
    if not user_agent or not user_agent.strip():
        return _machine("no_user_agent", "no User-Agent header")
    agent = user_agent.strip()
    if agent == APPLE_MPP_USER_AGENT:
        return _machine("apple_mpp", "User-Agent is exactly Mozilla/5.0 (Apple Mail Privacy)")
    for token, ua_class, what in _EXACT_TOKENS:
        if token in agent:
            return _machine(ua_class, f"{what} ({token})")
    scanner = _SCANNERS.search(agent)
    if scanner:
        return _machine("security_scanner", f"security scanner ({scanner.group(0)})")
    bot = _BOTS.search(agent) or _BOT_WORD.search(agent)
    if bot:
        return _machine("bot", f"automated client ({bot.group(0)})")
    return None


def classify_hit(
    kind: HitKind,
    *,
    user_agent: str | None,
    method: str,
    own: bool,
    sent_at: datetime,
    at: datetime,
    scanner_window: timedelta = DEFAULT_SCANNER_WINDOW,
) -> Classification:
    """The class of one pixel fetch or link follow (the rules of this module's docstring)."""
    if own:
        return Classification(ua_class="own", machine=False, own=True, reason="sender's own copy")
    if method.upper() == "HEAD":
        return _machine("head_request", "HEAD request (a link checker, not a browser)")
    by_agent = classify_user_agent(user_agent)
    if by_agent is not None:
        return by_agent
    if at - sent_at < scanner_window:
        seconds = max(0.0, (at - sent_at).total_seconds())
        return _machine("too_soon", f"{kind} {seconds:.1f} s after sending (delivery scan)")
    return Classification(ua_class="human", machine=False, own=False, reason="")
