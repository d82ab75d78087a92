"""Compose and send (SPEC I2, I3, I5): the request, the outbox entry and its states.

An outbox entry is the durable record of one message to send: created by the API (202),
sent by the `mail_sender` worker through the user's own SMTP account, its status readable
at `GET /v1/outbox/{id}`. Bodies and attachments live in S3 (`payload_key`); the entry
holds the state machine: scheduled -> queued -> sending -> sent | failed, and
scheduled -> cancelled.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

OutboxStatus = Literal["queued", "scheduled", "sending", "sent", "failed", "cancelled"]
MAX_RECIPIENTS = 100
MAX_BODY = 5 * 1024 * 1024
MAX_ATTACHMENTS_BASE64 = 14 * 1024 * 1024  # ~10 MB of files once decoded


class OutgoingAttachment(BaseModel):
    """A file of the message, base64 in the request. `inline` with a `content_id` is an
    image the HTML shows with `<img src="cid:…">`."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    content_base64: str
    inline: bool = False
    content_id: str | None = Field(default=None, max_length=255)


class SendRequest(BaseModel):
    """`POST /v1/messages/send`."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1)
    to: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    cc: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    subject: str = Field(default="", max_length=998)
    html: str = Field(default="", max_length=MAX_BODY)
    text: str | None = Field(default=None, max_length=MAX_BODY)
    reply_to_message_id: str | None = None
    template_id: str | None = None
    person_id: str | None = None
    deal_id: str | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    send_at: AwareDatetime | None = None
    # False: none; True: the sender's default signature; an id: that signature (SPEC I4).
    signature: bool | str = False
    attachments: list[OutgoingAttachment] = Field(default_factory=list, max_length=50)

    def fingerprint(self) -> str:
        """What an Idempotency-Key promises stays the same on a retry."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class SendError(BaseModel):
    code: str
    message: str


class OutboxPayload(BaseModel):
    """What the worker sends, kept in S3: the rendered message and its files."""

    from_name: str | None = None
    to: list[str]
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str
    html: str
    text: str
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    attachments: list[OutgoingAttachment] = Field(default_factory=list)


class OutboxEntry(BaseModel):
    id: str
    company_id: str
    user_id: str
    account_id: str
    status: OutboxStatus
    error: SendError | None = None
    message_id: str | None = None
    message_id_header: str
    thread_id: str | None = None
    subject: str = ""
    recipients: list[str] = Field(default_factory=list)
    delivered_to: list[str] = Field(default_factory=list)
    track_opens: bool = False
    track_clicks: bool = False
    has_html: bool = True
    pixel: bool = False
    send_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0
    payload_key: str
    request_fingerprint: str = ""
    version: int = 0


class OutboxView(BaseModel):
    """`GET /v1/outbox/{id}` (the Contract's fields first)."""

    id: str
    status: OutboxStatus
    error: SendError | None
    message_id: str | None
    message_id_header: str
    thread_id: str | None
    send_at: datetime | None
    sent_at: datetime | None
    attempts: int
    track_opens: bool
    track_clicks: bool
    pixel: bool
    pixel_note: str | None = None

    @classmethod
    def of(cls, entry: OutboxEntry) -> OutboxView:
        note = None
        if entry.track_opens and not entry.pixel:
            note = "plain-text message: no open tracking pixel (links are still tracked)"
        return cls(
            id=entry.id,
            status=entry.status,
            error=entry.error,
            message_id=entry.message_id,
            message_id_header=entry.message_id_header,
            thread_id=entry.thread_id,
            send_at=entry.send_at,
            sent_at=entry.sent_at,
            attempts=entry.attempts,
            track_opens=entry.track_opens,
            track_clicks=entry.track_clicks,
            pixel=entry.pixel,
            pixel_note=note,
        )


class Accepted(BaseModel):
    """The 202 answer of `POST /v1/messages/send`."""

    id: str
    status: OutboxStatus
    message_id_header: str
    send_at: datetime | None = None
    pixel: bool = False
    pixel_note: str | None = None


class SendMessageJob(BaseModel):
    """Send one outbox entry now (send queue, FIFO, grouped by account)."""

    kind: Literal["send_message"] = "send_message"
    outbox_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
