"""CalDAV provider presets (SPEC C1): where each provider's CalDAV service starts, so users
pick "iCloud" instead of typing a URL. Discovery (`current-user-principal`,
`calendar-home-set`) takes it from there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from crmsync.errors import ValidationFailedError
from crmsync.mail.hostnames import normalise_hostname

HOST_PLACEHOLDER = "{host}"


class CalendarPreset(BaseModel):
    """One provider; `url` may contain `{host}` for self-hosted servers (Nextcloud)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    url: str
    requires_app_password: bool = False
    """The provider refuses the account password for CalDAV (two-factor accounts)."""
    oauth_only: bool = False
    """Only OAuth works: a password login is always refused."""
    needs_host: bool = False
    notes: str = ""

    def url_for(self, host: str | None = None) -> str:
        """The start URL; for a self-hosted preset, with the user's server (host[:port])."""
        if not self.needs_host:
            return self.url
        name, _, port = (host or "").strip().partition(":")
        clean = normalise_hostname(name)
        if clean is None or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValidationFailedError(
                f"{self.name} needs the host name of your server, like cloud.example.com."
            )
        return self.url.replace(HOST_PLACEHOLDER, f"{clean}:{int(port)}" if port else clean)


PRESETS: tuple[CalendarPreset, ...] = (
    CalendarPreset(
        id="google",
        name="Google Calendar",
        url="https://apidata.googleusercontent.com/caldav/v2/",
        oauth_only=True,
        notes=(
            "Google's CalDAV accepts only OAuth 2.0 sign-in; user names with passwords and "
            "app passwords are refused. Connecting Google needs the OAuth flow."
        ),
    ),
    CalendarPreset(
        id="icloud",
        name="iCloud",
        url="https://caldav.icloud.com/",
        requires_app_password=True,
        notes=(
            "Sign in with your Apple ID and an app-specific password "
            "(appleid.apple.com > Sign-In and Security > App-Specific Passwords)."
        ),
    ),
    CalendarPreset(
        id="fastmail",
        name="Fastmail",
        url="https://caldav.fastmail.com/",
        requires_app_password=True,
        notes="Create an app password with CalDAV access (Settings > Privacy & Security).",
    ),
    CalendarPreset(
        id="nextcloud",
        name="Nextcloud",
        url="https://{host}/remote.php/dav",
        needs_host=True,
        notes=(
            "Enter your Nextcloud server's host name. With two-factor authentication, "
            "create an app password (Settings > Security > Devices & sessions)."
        ),
    ),
    CalendarPreset(
        id="zoho",
        name="Zoho Calendar",
        url="https://calendar.zoho.com/caldav/",
        requires_app_password=True,
        notes="With two-factor authentication, create an application-specific password.",
    ),
    CalendarPreset(
        id="yahoo",
        name="Yahoo Calendar",
        url="https://caldav.calendar.yahoo.com/",
        requires_app_password=True,
        notes="Generate an app password (Account Security > Generate app password).",
    ),
)

_BY_ID = {preset.id: preset for preset in PRESETS}
if len(_BY_ID) != len(PRESETS):
    raise ValueError("calendar preset ids must be unique")


def calendar_preset(preset_id: str) -> CalendarPreset | None:
    return _BY_ID.get(preset_id.strip().lower())


def all_calendar_presets() -> tuple[CalendarPreset, ...]:
    return PRESETS
