"""Data types of the demo mailbox, shared by the generator and its callers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_OWNER = "alex@demo.crmsync.test"
DEFAULT_NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
INBOX = "INBOX"
SENT = "Sent"


@dataclass(frozen=True)
class DemoOrganization:
    """A customer company; the demo creates it in the CRM before syncing."""

    name: str
    domain: str
    locale: str
    industry: str
    city: str


@dataclass(frozen=True)
class DemoPerson:
    """A CRM contact; mail from any of ``emails`` should link to them."""

    name: str
    emails: tuple[str, ...]
    organization: str
    title: str = ""
    locale: str = "en"


@dataclass(frozen=True)
class DemoDeal:
    """A CRM deal, so synced mail has something besides contacts to attach to."""

    title: str
    value: int
    status: str  # open | won | lost
    person_email: str
    organization: str
    currency: str = "EUR"


@dataclass(frozen=True)
class DemoMessage:
    """One message as it will be appended to the IMAP server."""

    folder: str
    raw: bytes
    date: datetime
    flags: tuple[str, ...]
    message_id: str
    thread_key: str


@dataclass(frozen=True)
class DemoMailbox:
    """The generated corpus plus the CRM records it refers to."""

    owner_email: str
    owner_name: str
    now: datetime
    messages: list[DemoMessage]
    people: list[DemoPerson]
    organizations: list[DemoOrganization]
    deals: list[DemoDeal]

    @property
    def folders(self) -> tuple[str, ...]:
        """Folders the caller must create before seeding."""
        present = {m.folder for m in self.messages}
        return tuple(f for f in (INBOX, SENT) if f in present)

    @property
    def thread_keys(self) -> list[str]:
        """Distinct thread keys in generation order."""
        return list(dict.fromkeys(m.thread_key for m in self.messages))
