"""Activities: calls, meetings, tasks… on a user's calendar (shapes as in directory.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from crmsync.models.directory import (
    EmailAddress,
    Input,
    LongText,
    OwnedRecord,
    RecordId,
    Text,
    Visibility,
)

DEFAULT_ACTIVITY_TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")
"""The types every company has; a company may use its own as lower-case slugs."""

ActivityType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
    Field(description=f"One of {', '.join(DEFAULT_ACTIVITY_TYPES)} or a company's own slug."),
]


def _in_utc(moment: datetime) -> datetime:
    """Times are kept in UTC: keys sort by them (docs/dynamodb.md rule 6)."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc
    if not 1900 <= utc.year <= 9999:
        raise ValueError("the year must be between 1900 and 9999")
    return utc


UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A time with a UTC offset (naive times are refused), converted to UTC."""
Minutes = Annotated[int, Field(ge=0, le=60 * 24 * 31)]
MAX_PARTICIPANTS = 200


class Participant(BaseModel):
    """Someone taking part: an address, and the CRM person when one is known."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Text | None = None
    person_id: RecordId | None = None


Participants = Annotated[list[Participant], Field(max_length=MAX_PARTICIPANTS)]


class ActivityCreate(Input):
    type: ActivityType = "task"
    subject: Text
    start: UtcTime = Field(description="With a UTC offset; naive times are refused.")
    duration_minutes: Minutes = 0
    all_day: bool = False
    participants: Participants = Field(default_factory=list)
    location: Text | None = None
    note: LongText | None = None
    busy: bool = Field(default=True, description="Whether the time shows as busy (else free).")
    done: bool = False
    deal_id: RecordId | None = None
    person_id: RecordId | None = None
    lead_id: RecordId | None = None
    project_id: RecordId | None = None
    owner_id: RecordId | None = Field(default=None, description="Defaults to the caller.")
    visibility: Visibility = "company"


class ActivityUpdate(Input):
    type: ActivityType | None = None
    subject: Text | None = None
    start: UtcTime | None = None
    duration_minutes: Minutes | None = None
    all_day: bool | None = None
    participants: Participants | None = None
    location: Text | None = None
    note: LongText | None = None
    busy: bool | None = None
    done: bool | None = None
    deal_id: RecordId | None = None
    person_id: RecordId | None = None
    lead_id: RecordId | None = None
    project_id: RecordId | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class Activity(OwnedRecord):
    type: str = "task"
    subject: str
    start: UtcTime
    duration_minutes: int = 0
    all_day: bool = False
    participants: list[Participant] = Field(default_factory=list)
    location: str | None = None
    note: str | None = None
    busy: bool = True
    done: bool = False
    deal_id: str | None = None
    person_id: str | None = None
    lead_id: str | None = None
    project_id: str | None = None
