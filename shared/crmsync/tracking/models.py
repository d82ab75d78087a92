"""What tracking stores and reports (SPEC T1-T4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

PixelReason = Literal["plain_text_message", "opens_not_tracked", "not_tracked"]


def normalise_address(address: str) -> str:
    return address.strip().lower()


class TrackedMessage(BaseModel):
    """A sent message whose opens and/or clicks are tracked, registered by the sender
    before it goes out. `message_key` is the CRM message id (`GET /v1/messages/{id}`)."""

    company_id: str = Field(min_length=1)
    message_key: str = Field(min_length=1)
    account_id: str
    thread_id: str | None = None
    owner_user_id: str
    sender_email: str
    recipients: list[str] = Field(default_factory=list)
    sent_at: datetime
    opens: bool
    clicks: bool
    html: bool

    @field_validator("sender_email")
    @classmethod
    def _lower_sender(cls, value: str) -> str:
        return normalise_address(value)

    @field_validator("recipients")
    @classmethod
    def _lower_recipients(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_address(v) for v in value))

    @property
    def pixel(self) -> bool:
        """Opens are tracked only where a pixel can be: in an HTML body."""
        return self.opens and self.html


class TrackingHit(BaseModel):
    """One pixel fetch or link follow, as classified when it came in."""

    kind: Literal["open", "click"]
    recipient: str
    url: str | None = None
    at: datetime
    ua_class: str
    machine: bool
    own: bool = False
    reason: str = ""
    method: str = "GET"
    ip_hash: str | None = None
    user_agent: str | None = Field(default=None, max_length=512)

    @property
    def human(self) -> bool:
        return not self.machine and not self.own


class OpenSummary(BaseModel):
    recipient: str
    human_count: int = 0
    machine_count: int = 0
    own_count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    first_human_at: datetime | None = None
    last_human_at: datetime | None = None


class ClickSummary(BaseModel):
    url: str
    recipient: str
    human_count: int = 0
    machine_count: int = 0
    own_count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None


class TrackingReport(BaseModel):
    """`GET /v1/messages/{id}/tracking`. `opens` lists every tracked recipient (zeros when
    never opened); `clicks` one entry per link and recipient that was followed."""

    message_id: str
    tracked: bool
    pixel: bool
    pixel_reason: PixelReason | None = None
    links_tracked: bool
    opens: list[OpenSummary] = Field(default_factory=list)
    clicks: list[ClickSummary] = Field(default_factory=list)
