"""Calendar sync (SPEC C1-C7): calendar accounts, the calendars a server has, the events the
sync reads and writes, and the CalDAV server port's vocabulary.

The sync keeps, per activity, the event it wrote (UID, href, ETag): `EventMapping`. The UID
is derived from the activity id, so a lost mapping never leads to a second event: the
push finds the event by its UID and adopts it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from crmsync.models.accounts import AccountState, LastError

SyncType = Literal["one_way", "two_way"]
CalendarProvider = Literal["caldav"]


class CalendarInfo(BaseModel):
    """One calendar of the account's calendar home, as the server describes it."""

    id: str  # stable: a digest of its URL
    url: str
    name: str
    color: str | None = None
    writable: bool = True
    supports_events: bool = True

    @staticmethod
    def id_for(url: str) -> str:
        return "cal" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


class CalendarAccount(BaseModel):
    id: str
    company_id: str
    user_id: str
    provider: CalendarProvider = "caldav"
    preset: str | None = None
    url: str
    username: str
    principal_url: str | None = None
    home_url: str | None = None
    calendars: list[CalendarInfo] = Field(default_factory=list)
    calendar_id: str | None = None
    sync_type: SyncType = "one_way"
    activity_types: list[str] = Field(default_factory=lambda: ["meeting", "call"])
    default_activity_type: str = "meeting"
    uses_two_factor: bool = False
    # When the sync was set up (calendar chosen): older activities never become events.
    sync_since: datetime | None = None
    state: AccountState = AccountState.ACTIVE
    last_error: LastError | None = None
    state_changed_at: datetime | None = None
    failures: int = 0
    created_at: datetime
    next_poll_at: datetime | None = None
    last_push_at: datetime | None = None
    last_pull_at: datetime | None = None
    version: int = 0

    @property
    def calendar(self) -> CalendarInfo | None:
        return next((c for c in self.calendars if c.id == self.calendar_id), None)


class RemoteEvent(BaseModel):
    """An event resource on the server: where it is, its ETag, and its iCalendar text
    (None for a deletion reported by sync-collection)."""

    href: str
    etag: str | None = None
    ics: str | None = None


class CollectionChanges(BaseModel):
    """What changed in a calendar since a sync token (RFC 6578), or, on a server without
    sync-collection, every event's href and ETag (`full_listing`): the caller compares.

    `full_listing` means `changed` is the whole calendar: the first sync (no token), a token
    the server no longer accepted (`token_reset`), or a server without sync-collection. Any
    event the caller knows that is not in it was deleted. Changed events carry their data,
    except in the listing of a server without sync-collection (`ics` None: the caller gets
    the events whose ETag it does not know). Hrefs are absolute paths."""

    changed: list[RemoteEvent] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)  # hrefs
    sync_token: str | None = None
    full_listing: bool = False
    token_reset: bool = False


class EventMapping(BaseModel):
    """The event the push wrote for an activity (or the pull created an activity from)."""

    activity_id: str
    calendar_id: str
    uid: str
    href: str
    etag: str | None = None
    recurrence_id: str | None = None
    activity_updated_at: datetime | None = None
    event_last_modified: datetime | None = None
    origin: Literal["crm", "calendar"] = "crm"


def event_uid(company_id: str, activity_id: str) -> str:
    """The stable UID of an activity's event: the same activity always has the same UID."""
    digest = hashlib.sha256(f"{company_id}\0{activity_id}".encode()).hexdigest()[:24]
    return f"crmsync-{digest}@crmsync"


WriteOutcome = Literal["created", "updated", "deleted", "exists", "precondition_failed", "gone"]


class CalendarSyncJob(BaseModel):
    """Sync one calendar account now. Sent to the FIFO calendar sync queue, grouped by
    account, so one account's syncs never run at once. `reason`: `schedule`, `manual`,
    `activity` (an activity changed), `continue` (a run that ran out of time)."""

    kind: Literal["calendar_sync"] = "calendar_sync"
    job_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    reason: str = Field(default="schedule", min_length=1, max_length=32)
    enqueued_at: datetime | None = None
