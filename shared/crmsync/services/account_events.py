"""The events every kind of account (mail, calendar) publishes: one shape, one place."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from crmsync.models.accounts import AccountState, LastError
from crmsync.models.events import DomainEvent


class EventfulAccount(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def company_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def state(self) -> AccountState: ...

    @property
    def last_error(self) -> LastError | None: ...


def account_event(
    detail_type: str,
    account: EventfulAccount,
    at: datetime,
    detail: dict[str, object],
    kind: str | None = None,
) -> DomainEvent:
    """`account.state_changed`, `account.removed`…: ids and states only, never secrets.
    `kind` tells a calendar account's event from a mail account's (absent for mail)."""
    return DomainEvent(
        detail_type=detail_type,
        company_id=account.company_id,
        occurred_at=at,
        detail={
            "account_id": account.id,
            "user_id": account.user_id,
            **({"kind": kind} if kind else {}),
            **detail,
        },
    )


def state_changed(
    account: EventfulAccount, previous: AccountState | None, at: datetime, kind: str | None = None
) -> DomainEvent:
    detail: dict[str, object] = {
        "from": previous.value if previous else None,
        "to": account.state.value,
        "last_error": account.last_error.model_dump(mode="json") if account.last_error else None,
    }
    return account_event("account.state_changed", account, at, detail, kind)
