"""Mail accounts: connection settings, personal sync settings, state and the last error."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmsync.models.servers import ConnectionProblem, ServerEndpoint


class AccountState(StrEnum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    SYNCING = "syncing"
    NEEDS_REAUTH = "needs_reauth"
    CONNECTION_ERROR = "connection_error"
    NEEDS_ATTENTION = "needs_attention"
    PERMISSION_DENIED = "permission_denied"
    STOPPED = "stopped"
    # Calendar accounts only: the chosen calendar is gone; polling stops until another is
    # chosen (or resume finds it again). Mail accounts never enter it.
    CALENDAR_MISSING = "calendar_missing"

    @property
    def polls(self) -> bool:
        """Whether the dispatcher keeps scheduling this account (errors at a backed-off pace)."""
        return self in {
            AccountState.ACTIVE,
            AccountState.SYNCING,
            AccountState.CONNECTION_ERROR,
            AccountState.NEEDS_ATTENTION,
        }

    @property
    def inactive(self) -> bool:
        """Whether the retention clock runs (SPEC E7): nothing syncs until the user acts.

        `connecting` is not inactive: an Exchange account waits for its adapter, not for the
        user, and has nothing synced to purge."""
        return self in {
            AccountState.STOPPED,
            AccountState.NEEDS_REAUTH,
            AccountState.PERMISSION_DENIED,
            AccountState.CALENDAR_MISSING,
        }


class AccountKind(StrEnum):
    IMAP = "imap"
    EXCHANGE = "exchange"


SyncStart = Literal["now", "1_month", "3_months", "6_months", "1_year"]


class SyncSettings(BaseModel):
    """What the user chose for this account (SPEC S2, S3, S9, L2, L4, T3, I6)."""

    model_config = ConfigDict(extra="forbid")

    folders: Literal["all", "selected"] = "all"
    selected_folders: list[str] = Field(default_factory=list, max_length=200)
    sync_start: SyncStart = "now"
    historical_scope: Literal["all_people", "crm_contacts"] = "all_people"
    sharing_default: Literal["private", "shared"] = "private"
    deal_linking: Literal["automatic", "manual"] = "automatic"
    track_opens: bool = True
    track_clicks: bool = True
    # SPEC S9: apply the CRM's read / archive / delete to the mail server too.
    read_sync_back: bool = True
    archive_sync_back: bool = False
    delete_sync_back: bool = False
    email_links: Literal["crm", "mail_app"] = "crm"


class SyncSettingsPatch(BaseModel):
    """A partial update of SyncSettings: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    folders: Literal["all", "selected"] | None = None
    selected_folders: list[str] | None = Field(default=None, max_length=200)
    sync_start: SyncStart | None = None
    historical_scope: Literal["all_people", "crm_contacts"] | None = None
    sharing_default: Literal["private", "shared"] | None = None
    deal_linking: Literal["automatic", "manual"] | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    read_sync_back: bool | None = None
    archive_sync_back: bool | None = None
    delete_sync_back: bool | None = None
    email_links: Literal["crm", "mail_app"] | None = None


_EXCHANGE_USER = re.compile(r"^(?:[^@\s\\]+@[^@\s\\]+\.[^@\s\\]+|[A-Za-z0-9._-]+\\[^@\s\\]+)$")


class ExchangeSettings(BaseModel):
    """Exchange on-premises: the user name may differ from the address (SPEC E3)."""

    model_config = ConfigDict(extra="forbid")

    server: str | None = Field(default=None, max_length=253)
    username: str

    @field_validator("username")
    @classmethod
    def _username_format(cls, value: str) -> str:
        if not _EXCHANGE_USER.match(value):
            raise ValueError("use user@domain.com or DOMAIN\\user")
        return value


class LastError(ConnectionProblem):
    at: datetime


class MailAccount(BaseModel):
    id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    email: str
    kind: AccountKind = AccountKind.IMAP
    username: str | None = None
    imap: ServerEndpoint | None = None
    smtp: ServerEndpoint | None = None
    exchange: ExchangeSettings | None = None
    settings: SyncSettings = Field(default_factory=SyncSettings)
    state: AccountState = AccountState.ACTIVE
    last_error: LastError | None = None
    state_changed_at: datetime | None = None
    failures: int = 0
    version: int = 0
    created_at: datetime
    next_poll_at: datetime | None = None
    last_synced_at: datetime | None = None
    # When the retention sweep last purged the synced data (SPEC E7); the account stays.
    data_purged_at: datetime | None = None

    @property
    def login(self) -> str:
        return self.username or self.email

    @property
    def inactive_since(self) -> datetime | None:
        """When the retention clock started; None while the account syncs or once the data
        of this inactive spell was purged (a later change must not purge it twice)."""
        if not self.state.inactive:
            return None
        since = self.state_changed_at or self.created_at
        if self.data_purged_at is not None and self.data_purged_at > since:
            return None
        return since
