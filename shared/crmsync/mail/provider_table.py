"""The built-in provider table of SPEC E2, from each provider's published client settings.

Entries whose details could not be checked against the provider's current help pages say so
in `notes` ("unverified"), so support staff know which settings to distrust first.
"""

from __future__ import annotations

from crmsync.mail.preset_model import PresetEndpoint, ProviderPreset
from crmsync.models.servers import Security


def _ep(host: str, port: int, security: Security) -> PresetEndpoint:
    return PresetEndpoint(host=host, port=port, security=security)


def _ssl(host: str, port: int = 993) -> PresetEndpoint:
    return _ep(host, port, "ssl")


def _starttls(host: str, port: int = 587) -> PresetEndpoint:
    return _ep(host, port, "starttls")


PRESETS: tuple[ProviderPreset, ...] = (
    ProviderPreset(
        id="gmail",
        name="Gmail / Google Workspace",
        domains=("gmail.com", "googlemail.com"),
        mx_suffixes=("google.com", "googlemail.com"),
        imap=_ssl("imap.gmail.com"),
        smtp=_ssl("smtp.gmail.com", 465),
        requires_app_password_with_2fa=True,
        saves_sent_copy=True,
        uses_labels=True,
        oauth_recommended=True,
        notes="IMAP must be enabled in Gmail settings. With 2-Step Verification use an app "
        "password or OAuth2 (XOAUTH2); Workspace admins can disable both for their domain.",
    ),
    ProviderPreset(
        id="microsoft365",
        name="Microsoft 365 / Office 365",
        domains=("onmicrosoft.com",),
        mx_suffixes=("protection.outlook.com", "mx.microsoft"),
        imap=_ssl("outlook.office365.com"),
        smtp=_starttls("smtp.office365.com"),
        saves_sent_copy=True,
        oauth_recommended=True,
        notes="Exchange Online refuses basic authentication: IMAP/SMTP need OAuth2 and the "
        "connector should prefer Microsoft Graph (EWS is blocked from 2026-10-01).",
    ),
    ProviderPreset(
        id="outlook",
        name="Outlook.com / Hotmail",
        domains=(
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "passport.com",
            "outlook.fr",
            "outlook.de",
            "outlook.es",
            "outlook.it",
            "hotmail.co.uk",
            "hotmail.fr",
            "hotmail.de",
            "hotmail.es",
            "hotmail.it",
            "live.co.uk",
            "live.fr",
            "live.de",
            "live.nl",
        ),
        mx_suffixes=("olc.protection.outlook.com",),
        imap=_ssl("outlook.office365.com"),
        smtp=_starttls("smtp-mail.outlook.com"),
        requires_app_password_with_2fa=True,
        saves_sent_copy=True,
        oauth_recommended=True,
        notes="Microsoft has been retiring password sign-in for Outlook.com mail apps since "
        "2024: prefer OAuth2; app passwords (with two-step verification) may stop working.",
    ),
    ProviderPreset(
        id="yahoo",
        name="Yahoo Mail",
        domains=(
            "yahoo.com",
            "yahoo.co.uk",
            "yahoo.fr",
            "yahoo.de",
            "yahoo.it",
            "yahoo.es",
            "yahoo.ca",
            "yahoo.com.au",
            "yahoo.co.in",
            "yahoo.com.br",
            "yahoo.com.mx",
            "yahoo.com.ar",
            "yahoo.com.sg",
            "yahoo.co.nz",
            "yahoo.ie",
            "ymail.com",
            "rocketmail.com",
        ),
        mx_suffixes=("yahoodns.net",),
        imap=_ssl("imap.mail.yahoo.com"),
        smtp=_ssl("smtp.mail.yahoo.com", 465),
        requires_app_password_with_2fa=True,
        oauth_recommended=True,
        notes="Sign in with an app password generated in Yahoo account security "
        "(yahoo.co.jp is a different service and is not covered).",
    ),
    ProviderPreset(
        id="icloud",
        name="iCloud Mail",
        domains=("icloud.com", "me.com", "mac.com"),
        mx_suffixes=("mail.icloud.com",),
        imap=_ssl("imap.mail.me.com"),
        smtp=_starttls("smtp.mail.me.com"),
        requires_app_password_with_2fa=True,
        notes="Always needs an app-specific password (appleid.apple.com). If IMAP login with "
        "the full address fails, try only the part before @; SMTP wants the full address.",
    ),
    ProviderPreset(
        id="aol",
        name="AOL Mail",
        domains=("aol.com", "aim.com", "aol.co.uk", "aol.fr", "aol.de", "love.com"),
        imap=_ssl("imap.aol.com"),
        smtp=_ssl("smtp.aol.com", 465),
        requires_app_password_with_2fa=True,
        notes="Sign in with an app password generated in AOL account security.",
    ),
    ProviderPreset(
        id="fastmail",
        name="FastMail",
        domains=(
            "fastmail.com",
            "fastmail.fm",
            "fastmail.net",
            "fastmail.org",
            "fastmail.us",
            "fastmail.cn",
            "messagingengine.com",
        ),
        mx_suffixes=("messagingengine.com",),
        imap=_ssl("imap.fastmail.com"),
        smtp=_ssl("smtp.fastmail.com", 465),
        requires_app_password_with_2fa=True,
        notes="Third-party apps always need an app password (Settings → Privacy & Security).",
    ),
    ProviderPreset(
        id="gandi",
        name="GandiMail",
        mx_suffixes=("gandi.net",),
        imap=_ssl("mail.gandi.net"),
        smtp=_ssl("mail.gandi.net", 465),
        notes="Mailboxes on the customer's own domain; port 587 with STARTTLS also works.",
    ),
    ProviderPreset(
        id="gmx",
        name="GMX",
        domains=("gmx.net", "gmx.de", "gmx.at", "gmx.ch"),
        mx_suffixes=("gmx.net",),
        imap=_ssl("imap.gmx.net"),
        smtp=_starttls("mail.gmx.net"),
        requires_app_password_with_2fa=True,
        notes="Enable 'POP3/IMAP access' in the GMX settings first.",
    ),
    ProviderPreset(
        id="gmx_com",
        name="GMX (international)",
        domains=("gmx.com", "gmx.us", "gmx.co.uk", "gmx.fr", "gmx.es", "gmx.it"),
        mx_suffixes=("gmx.com",),
        imap=_ssl("imap.gmx.com"),
        smtp=_starttls("mail.gmx.com"),
        requires_app_password_with_2fa=True,
        notes="Enable IMAP access in the GMX settings first.",
    ),
    ProviderPreset(
        id="mailru",
        name="Mail.ru",
        domains=("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "mail.ua"),
        mx_suffixes=("mail.ru",),
        imap=_ssl("imap.mail.ru"),
        smtp=_ssl("smtp.mail.ru", 465),
        requires_app_password_with_2fa=True,
        notes="Mail clients need a 'password for external applications' created in the "
        "Mail.ru security settings; the account password is refused.",
    ),
    ProviderPreset(
        id="yandex",
        name="Yandex Mail",
        domains=(
            "yandex.ru",
            "yandex.com",
            "ya.ru",
            "yandex.by",
            "yandex.kz",
            "yandex.ua",
            "yandex.com.tr",
            "narod.ru",
        ),
        mx_suffixes=("yandex.net", "yandex.ru"),
        imap=_ssl("imap.yandex.com"),
        smtp=_ssl("smtp.yandex.com", 465),
        requires_app_password_with_2fa=True,
        notes="Allow access by mail clients (IMAP) in Yandex Mail settings and use an app "
        "password.",
    ),
    ProviderPreset(
        id="godaddy",
        name="GoDaddy Workspace Email",
        mx_suffixes=("secureserver.net",),
        imap=_ssl("imap.secureserver.net"),
        smtp=_ssl("smtpout.secureserver.net", 465),
        notes="European accounts may use imap.europe.secureserver.net. GoDaddy's Microsoft 365 "
        "mailboxes are Microsoft 365 accounts (MX at protection.outlook.com).",
    ),
    ProviderPreset(
        id="hover",
        name="Hover",
        mx_suffixes=("hover.com", "mx.hover.com.cust.hostedemail.com"),
        imap=_ssl("mail.hover.com"),
        smtp=_ssl("mail.hover.com", 465),
    ),
    ProviderPreset(
        id="namecheap",
        name="Namecheap Private Email",
        mx_suffixes=("privateemail.com", "registrar-servers.com"),
        imap=_ssl("mail.privateemail.com"),
        smtp=_ssl("mail.privateemail.com", 465),
        notes="MX at registrar-servers.com is Namecheap's email forwarding: the mailbox may "
        "live at another provider.",
    ),
    ProviderPreset(
        id="bluehost",
        name="Bluehost",
        mx_suffixes=("bluehost.com",),
        imap=_ssl("mail.{domain}"),
        smtp=_ssl("mail.{domain}", 465),
        self_hosted=True,
        notes="Shared hosting: the server is mail.<your domain>, or the box server name "
        "(boxNNNN.bluehost.com) shown in cPanel's email client settings.",
    ),
    ProviderPreset(
        id="soverin",
        name="Soverin",
        domains=("soverin.net",),
        mx_suffixes=("soverin.net",),
        imap=_ssl("imap.soverin.net"),
        smtp=_starttls("smtp.soverin.net"),
        notes="Unverified: SMTP port/security taken as 587 STARTTLS.",
    ),
    ProviderPreset(
        id="zimbra",
        name="Zimbra (self-hosted)",
        imap=_ssl("mail.{domain}"),
        smtp=_starttls("mail.{domain}"),
        self_hosted=True,
        notes="Zimbra is self-hosted: the server name is usually mail.<your domain>; ask your "
        "administrator if that does not connect.",
    ),
    ProviderPreset(
        id="123-reg",
        name="123-reg",
        mx_suffixes=("123-reg.co.uk",),
        imap=_ssl("imap.123-reg.co.uk"),
        smtp=_ssl("smtp.123-reg.co.uk", 465),
        notes="Unverified: SMTP may also be offered on 587 with STARTTLS.",
    ),
    ProviderPreset(
        id="netease126",
        name="126 Mail (NetEase)",
        domains=("126.com",),
        imap=_ssl("imap.126.com"),
        smtp=_ssl("smtp.126.com", 465),
        requires_app_password_with_2fa=True,
        notes="Enable IMAP/SMTP in the web settings and use the authorization code as password.",
    ),
    ProviderPreset(
        id="qq",
        name="QQ Mail",
        domains=("qq.com", "vip.qq.com", "foxmail.com"),
        mx_suffixes=("qq.com",),
        imap=_ssl("imap.qq.com"),
        smtp=_ssl("smtp.qq.com", 465),
        requires_app_password_with_2fa=True,
        notes="QQ Mail: enable IMAP in settings and use the authorization code as password.",
    ),
    ProviderPreset(
        id="tencent_exmail",
        name="Tencent Exmail (QQ business mail)",
        mx_suffixes=("mxbiz1.qq.com", "mxbiz2.qq.com"),
        imap=_ssl("imap.exmail.qq.com"),
        smtp=_ssl("smtp.exmail.qq.com", 465),
        notes="Business mailboxes on a company domain; may need a client-specific password.",
    ),
    ProviderPreset(
        id="aliyun",
        name="Aliyun Mail",
        domains=("aliyun.com",),
        mx_suffixes=("aliyun.com",),
        imap=_ssl("imap.aliyun.com"),
        smtp=_ssl("smtp.aliyun.com", 465),
        notes="Personal Aliyun mail; Alibaba business mail (MX at mxhichina.com) uses "
        "imap.qiye.aliyun.com instead.",
    ),
    ProviderPreset(
        id="netease163",
        name="NetEase 163 Mail",
        domains=("163.com",),
        imap=_ssl("imap.163.com"),
        smtp=_ssl("smtp.163.com", 465),
        requires_app_password_with_2fa=True,
        notes="Enable IMAP/SMTP in the web settings and use the authorization code as password.",
    ),
    ProviderPreset(
        id="yeah",
        name="Yeah.net (NetEase)",
        domains=("yeah.net",),
        imap=_ssl("imap.yeah.net"),
        smtp=_ssl("smtp.yeah.net", 465),
        requires_app_password_with_2fa=True,
        notes="Enable IMAP/SMTP in the web settings and use the authorization code as password.",
    ),
    ProviderPreset(
        id="china_mobile139",
        name="139 Mail (China Mobile)",
        domains=("139.com",),
        imap=_ssl("imap.139.com"),
        smtp=_ssl("smtp.139.com", 465),
        requires_app_password_with_2fa=True,
        notes="Enable IMAP/SMTP in the web settings; unverified whether an authorization "
        "code is needed instead of the password.",
    ),
)
