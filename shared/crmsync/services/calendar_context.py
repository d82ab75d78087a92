"""What the push and the pull of one calendar sync run share: the ports they need beyond
ports.py, the run's context, and the rules both apply (which activities sync, which
modification wins)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from crmsync.models.activities import Activity
from crmsync.models.calendar import CalendarAccount, CalendarInfo
from crmsync.models.calendar_sync import (
    CalendarRun,
    CalendarSyncState,
    EventRef,
    PushMarker,
    SkippedActivity,
    SkipReason,
    StoredMapping,
    SyncDirection,
)
from crmsync.models.directory import Person, Record
from crmsync.models.events import DomainEvent
from crmsync.models.pages import Page
from crmsync.ports import CalendarServer

R = TypeVar("R", bound=Record)


class ActivityRecords(Protocol):
    """The directory's storage, used directly: a change the sync applies must not come back
    to it through the directory's change hook (that would push it straight back)."""

    def get(self, company_id: str, record_type: type[R], record_id: str) -> R | None: ...

    def create(self, company_id: str, record: Record) -> None: ...

    def replace(self, company_id: str, seen: Record, record: Record) -> None: ...

    def delete(self, company_id: str, seen: Record) -> None: ...

    def persons_with_address(
        self,
        company_id: str,
        key: str,
        limit: int,
        cursor: str | None,
        accept: Callable[[Person], bool],
    ) -> Page[Person]: ...


class CalendarSyncStore(Protocol):
    """store/calendar_sync.py; docs/dynamodb.md "Calendar sync"."""

    def state(self, company_id: str, account_id: str) -> CalendarSyncState | None: ...

    def save_state(self, state: CalendarSyncState) -> bool: ...

    def mark_push(
        self, company_id: str, account_id: str, activity_id: str, changed_at: datetime
    ) -> None: ...

    def pending_pushes(self, company_id: str, account_id: str) -> list[PushMarker]: ...

    def clear_push(self, company_id: str, account_id: str, marker: PushMarker) -> bool: ...

    def skipped(self, company_id: str, account_id: str) -> list[SkippedActivity]: ...

    def record_skip(self, company_id: str, account_id: str, skip: SkippedActivity) -> None: ...

    def clear_skip(self, company_id: str, account_id: str, activity_id: str) -> None: ...

    def event_ref(self, company_id: str, account_id: str, href: str) -> EventRef | None: ...

    def event_refs(self, company_id: str, account_id: str) -> dict[str, EventRef]: ...

    def save_event(
        self, company_id: str, account_id: str, ref: EventRef, mappings: Sequence[StoredMapping]
    ) -> None: ...

    def drop_event_ref(self, company_id: str, account_id: str, href: str) -> None: ...

    def mapping(self, company_id: str, activity_id: str) -> StoredMapping | None: ...

    def mappings(
        self, company_id: str, activity_ids: Iterable[str]
    ) -> dict[str, StoredMapping]: ...

    def drop_mappings(self, company_id: str, mappings: Sequence[StoredMapping]) -> None: ...

    def claim_uid(
        self,
        company_id: str,
        calendar_id: str,
        uid: str,
        recurrence_id: str | None,
        activity_id: str,
        account_id: str,
    ) -> str: ...

    def uid_claim(
        self, company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> str | None: ...

    def release_claim(
        self, company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> None: ...


@dataclass
class SyncContext:
    """One run of one account: what it talks to, and what it did so far."""

    account: CalendarAccount
    calendar: CalendarInfo
    server: CalendarServer
    state: CalendarSyncState
    now: datetime
    run: CalendarRun
    events: list[DomainEvent] = field(default_factory=list)
    # Activities the pull found changed in the CRM and newer than their event: pushed now.
    pushes: set[str] = field(default_factory=set)
    # ETags the pull saw, by href: the push's If-Match for those events.
    etags: dict[str, str] = field(default_factory=dict)
    # Events the run dealt with (so the window's re-expansion skips them).
    seen_hrefs: set[str] = field(default_factory=set)

    @property
    def company_id(self) -> str:
        return self.account.company_id

    def synced(self, activity_id: str, uid: str, direction: SyncDirection, action: str) -> None:
        self.events.append(
            DomainEvent(
                detail_type="activity.synced",
                company_id=self.company_id,
                occurred_at=self.now,
                detail={
                    "activity_id": activity_id,
                    "account_id": self.account.id,
                    "uid": uid,
                    "direction": direction,
                    "action": action,
                },
            )
        )


def selected_types(account: CalendarAccount) -> set[str]:
    """The types that sync. In two-way sync the default type of activities made from
    events is one of them, so editing such an activity never removes its event."""
    types = set(account.activity_types)
    if account.sync_type == "two_way":
        types.add(account.default_activity_type)
    return types


def skip_reason(account: CalendarAccount, activity: Activity) -> SkipReason | None:
    """Why this activity does not become an event of the account's calendar, or None.

    Owned by the account's user, of a selected type, and created or updated after the sync
    was set up (the help article: older activities never sync)."""
    if activity.owner_id != account.user_id:
        return "owned_by_someone_else"
    if activity.type not in selected_types(account):
        return "unselected_type"
    if account.sync_since is None or activity.updated_at < account.sync_since:
        return "before_sync_start"
    return None


def event_wins(event_modified: datetime | None, activity_updated: datetime) -> bool:
    """The conflict rule, when both sides changed since the last sync: the later
    modification wins (the event's LAST-MODIFIED against the activity's updated time);
    ties, and events without LAST-MODIFIED, go to the CRM."""
    return event_modified is not None and event_modified > activity_updated


def pulled_activity_id(company_id: str, calendar_id: str, uid: str, recurrence_id: str) -> str:
    """The id of the activity made of an event (occurrence): the same event always gives the
    same id, so a retried pull finds the activity it made instead of making another."""
    text = f"{company_id}\0{calendar_id}\0{uid}\0{recurrence_id}"
    return "ev" + hashlib.sha256(text.encode()).hexdigest()[:30]
