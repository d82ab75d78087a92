"""Mail account records as far as polling needs them (connect/settings come with accounts)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class AccountState(StrEnum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    SYNCING = "syncing"
    NEEDS_REAUTH = "needs_reauth"
    CONNECTION_ERROR = "connection_error"
    PERMISSION_DENIED = "permission_denied"
    STOPPED = "stopped"

    @property
    def polls(self) -> bool:
        """Whether the dispatcher keeps scheduling this account."""
        return self in {AccountState.ACTIVE, AccountState.SYNCING, AccountState.CONNECTION_ERROR}


class MailAccount(BaseModel):
    id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    email: str
    state: AccountState = AccountState.ACTIVE
    created_at: datetime
    next_poll_at: datetime | None = None
    last_synced_at: datetime | None = None
