"""What the message processor extracts from raw MIME (`crmsync.mail.parse`).

Every field is already decoded and normalised, so consumers never touch MIME again; what
was wrong with the message is kept as short, stable codes in `ParsedMessage.defects`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Address(BaseModel):
    """A mailbox: `email` lower-cased with an IDNA (punycode) domain, so it compares as-is."""

    email: str
    name: str | None = None


class Attachment(BaseModel):
    """A leaf part shown as a file. `index` counts attachments in MIME order, so the same raw
    bytes always give the same index (`attachment_bytes` finds it again by that number)."""

    index: int
    filename: str | None = None
    content_type: str
    size: int
    content_id: str | None = None
    inline: bool = False
    sha256: str


class CalendarPart(BaseModel):
    """The few fields of a text/calendar part a mail view needs; values are left unparsed."""

    method: str | None = None
    uid: str | None = None
    summary: str | None = None
    start: str | None = None
    size: int


class ParsedMessage(BaseModel):
    """One message, parsed totally: a broken message still yields this, with `defects`."""

    model_config = ConfigDict(populate_by_name=True)

    message_id: str | None
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    subject: str = ""
    thread_subject: str = ""
    from_: Address | None = Field(default=None, alias="from")
    sender: Address | None = None
    reply_to: list[Address] = Field(default_factory=list)
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str | None = None
    snippet: str = ""
    attachments: list[Attachment] = Field(default_factory=list)
    calendar: list[CalendarPart] = Field(default_factory=list)
    defects: list[str] = Field(default_factory=list)
    size: int
    tracking_id: str | None = None


class HeaderSummary(BaseModel):
    """The identity of a message from its headers alone (the sync worker's cheap parse)."""

    message_id: str | None
    date: datetime | None
    subject: str
