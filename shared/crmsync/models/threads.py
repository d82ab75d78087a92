"""Links of a thread to CRM records, and the threading index entries."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from crmsync.models.mail import LinkReason, LinkType, ThreadLink


class LinkRecord(BaseModel):
    """A stored link. `active=False` is a manual unlink: it stays as a tombstone so that
    automatic linking never adds the link back (SPEC L3)."""

    type: LinkType
    id: str
    reason: LinkReason
    active: bool = True

    @property
    def manual(self) -> bool:
        return self.reason == "manual"

    @property
    def target(self) -> tuple[str, str]:
        return (self.type, self.id)

    def public(self) -> ThreadLink:
        return ThreadLink(type=self.type, id=self.id, reason=self.reason)


class SubjectThread(BaseModel):
    """A thread that a message without usable references may join: same normalised
    subject, a shared participant, and recent enough (SPEC S7 subject fallback)."""

    thread_id: str
    thread_subject: str
    last_message_at: datetime
    addresses: list[str] = Field(default_factory=list, max_length=50)
