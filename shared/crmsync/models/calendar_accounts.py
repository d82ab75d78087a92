"""Calendar accounts over HTTP: what the routes take, and why a calendar is refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from crmsync.errors import CrmSyncError
from crmsync.models.activities import ActivityType
from crmsync.models.calendar import CalendarInfo, CalendarProvider, SyncType
from crmsync.models.servers import MailServerError


class CalendarConnect(BaseModel):
    """POST /v1/calendar-accounts: a CalDAV server (its URL, or a provider preset with, for a
    self-hosted one, the `host`) and the login. `uses_two_factor` only shapes the advice
    when the password is refused."""

    model_config = ConfigDict(extra="forbid")

    provider: CalendarProvider = "caldav"
    url: str | None = Field(
        default=None, min_length=8, max_length=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"
    )
    preset: str | None = Field(default=None, min_length=1, max_length=64)
    host: str | None = Field(
        default=None, min_length=1, max_length=260, description="A self-hosted preset's server."
    )
    username: str = Field(min_length=1, max_length=254)
    password: SecretStr = Field(min_length=1, max_length=1024)
    uses_two_factor: bool = False


class CalendarAccountPatch(BaseModel):
    """PATCH /v1/calendar-accounts/{id}: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    calendar_id: str | None = Field(default=None, min_length=1, max_length=64)
    sync_type: SyncType | None = None
    activity_types: list[ActivityType] | None = Field(default=None, max_length=50)
    default_activity_type: ActivityType | None = None

    @field_validator("activity_types")
    @classmethod
    def _once_each(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None


class CalendarReauthenticate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: SecretStr | None = Field(default=None, min_length=1, max_length=1024)


class CalendarServerError(MailServerError):
    """The calendar server refused or failed; `code` and `action` as for mail servers."""

    title = "Calendar server problem"


class CalendarChoiceError(CrmSyncError):
    """The chosen calendar cannot be synced (unknown, read-only, holds no events)."""

    status = 422
    title = "Calendar cannot be used"

    def __init__(self, code: str, message: str, action: str) -> None:
        super().__init__(f"{message} {action}")
        self.code = code
        self.action = action

    def extensions(self) -> dict[str, str]:
        return {"code": self.code, "action": self.action}


def check_usable(calendar: CalendarInfo | None, calendar_id: str) -> None:
    """The rule for the calendar a sync writes to: known, holding events, writable."""
    if calendar is None:
        raise CalendarChoiceError(
            "calendar_not_found",
            f"The server has no calendar {calendar_id} for this account.",
            "Choose one of the account's `calendars` (GET the account to see them).",
        )
    if not calendar.supports_events:
        raise CalendarChoiceError(
            "calendar_without_events",
            f"The calendar “{calendar.name}” cannot hold events (it is a task list).",
            "Choose a calendar that holds events.",
        )
    if not calendar.writable:
        raise CalendarChoiceError(
            "calendar_read_only",
            f"The calendar “{calendar.name}” is read-only for this account, and the sync "
            "writes the CRM's activities to it.",
            "Choose a writable calendar, or give this account read and write access to it "
            "(ask your IT administrator if it is a company calendar).",
        )
