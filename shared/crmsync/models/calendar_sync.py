"""What the calendar sync keeps between runs (SPEC C5, C6) and what one run reports.

Keys and access patterns: docs/dynamodb.md, "Calendar sync".
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from crmsync.models.activities import Activity

SkipReason = Literal[
    "before_sync_start",
    "unselected_type",
    "owned_by_someone_else",
    "synced_to_another_account",
]
"""Why an activity the account's user changed did not become an event."""

SyncDirection = Literal["push", "pull"]

SINGLE = "-"
"""The occurrence key of a single (not recurring) event; DynamoDB map keys cannot be empty."""


class StoredMapping(BaseModel):
    """An activity's event (one per activity, whichever calendar account wrote or read it)."""

    activity_id: str
    account_id: str
    calendar_id: str
    uid: str
    href: str
    etag: str | None = None
    recurrence_id: str | None = None
    activity_version: int = 0
    activity_updated_at: datetime | None = None
    event_last_modified: datetime | None = None
    origin: Literal["crm", "calendar"] = "crm"


class EventRef(BaseModel):
    """An event resource the sync knows in the account's calendar, by href: its UID, the
    ETag of the version last written or applied (a change with this ETag is our own), and
    the activities made of it by recurrence id (`SINGLE` for a single event)."""

    href: str
    uid: str
    etag: str | None = None
    recurring: bool = False
    occurrences: dict[str, str] = Field(default_factory=dict)


class PushMarker(BaseModel):
    """An activity of the account's user changed since its last push (written by the
    directory's change hook; removed by the push iff it still holds `changed_at`)."""

    activity_id: str
    changed_at: datetime


class SkippedActivity(BaseModel):
    activity_id: str
    reason: SkipReason
    activity_type: str | None = None
    at: datetime | None = None


class CalendarSyncState(BaseModel):
    """Per calendar account: where the pull is (sync token of the chosen calendar), the
    recurrence window already expanded, the last push and pull, under a version."""

    company_id: str
    account_id: str
    calendar_id: str
    sync_token: str | None = None
    window_until: datetime | None = None
    recurring_hrefs: list[str] = Field(default_factory=list)
    last_push_at: datetime | None = None
    last_pull_at: datetime | None = None
    pushed_total: int = 0
    pulled_total: int = 0
    version: int = 0


class CalendarRun(BaseModel):
    """What one sync of a calendar account did (logged, returned to the handler)."""

    account_id: str
    outcome: Literal["ok", "failed", "not_due"]
    pushed: int = 0
    push_deleted: int = 0
    pulled_created: int = 0
    pulled_updated: int = 0
    pulled_deleted: int = 0
    own_writes_ignored: int = 0
    conflicts: int = 0
    unreadable_events: int = 0
    skipped: list[SkippedActivity] = Field(default_factory=list)
    requests: int = 0
    error_code: str | None = None


class CalendarEventLink(BaseModel):
    """Where an activity is in a calendar: the calendar account and the event's UID."""

    account_id: str
    uid: str


class ActivityListItem(Activity):
    """An activity as `GET /v1/activities` lists it: with its calendar event, if any."""

    calendar_event: CalendarEventLink | None = None
