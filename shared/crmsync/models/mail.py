"""The synced mail: folder checkpoints, the processing jobs, and stored messages and threads."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.clock import iso
from crmsync.models.parsed import Address, Attachment, CalendarPart

LinkType = Literal["person", "deal", "lead", "project"]
LinkReason = Literal["auto:person", "auto:deal", "manual"]
Visibility = Literal["private", "shared"]
FolderRole = Literal["inbox", "sent", "archive", "trash", "junk", "drafts", "all", "other"]
"""What a folder is for: its RFC 6154 special-use flag, else its name (INBOX is always the
inbox). `all` is an "All Mail" folder (Gmail) whose messages carry their labels."""
Box = Literal["inbox", "sent", "archive"]
"""The lists of the inbox API a thread can be in (SPEC I1); every live thread is in `all`."""


def folder_id(name: str) -> str:
    """A key-safe, stable id for a folder or label: its name may hold '#', '/' or anything."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def message_key(
    company_id: str,
    account_id: str,
    *,
    message_id: str | None,
    raw_sha256: str,
    gm_msgid: int | None = None,
) -> str:
    """One id per message of an account, whatever folders or labels it is seen in.

    Gmail's X-GM-MSGID first, then the Message-ID header, then the content hash (a message
    without a Message-ID is the same message only when its bytes are the same)."""
    if gm_msgid is not None:
        basis = f"gm:{gm_msgid}"
    elif message_id:
        basis = f"mid:{message_id}"
    else:
        basis = f"raw:{raw_sha256}"
    digest = hashlib.sha256(f"{company_id}\0{account_id}\0{basis}".encode()).hexdigest()
    return "m" + digest[:31]


def thread_key(company_id: str, account_id: str, root: str) -> str:
    """A thread id derived from what all its messages agree on (the root Message-ID or the
    provider's thread id), so a reply processed before its parent still lands in one thread."""
    digest = hashlib.sha256(f"{company_id}\0{account_id}\0{root}".encode()).hexdigest()
    return "t" + digest[:31]


class FolderCheckpoint(BaseModel):
    """What the sync knows of one folder (SPEC S1, S4, S5): restart resumes, never replays.

    UIDs below `uidnext` that are in scope were fetched, except those still waiting in the
    backfill: UIDs below `backfill_below` dated `since` or later, fetched newest first."""

    folder: str
    folder_id: str
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None
    since: date
    backfill_below: int | None = None
    # UIDVALIDITY values whose UID maps wait to be dropped once the reseed is complete (a
    # second reset during a reseed adds one).
    stale_uidvalidities: list[int] = Field(default_factory=list)
    last_full_check_at: datetime | None = None
    version: int = 0

    @property
    def stale_uidvalidity(self) -> int | None:
        return self.stale_uidvalidities[0] if self.stale_uidvalidities else None


class MessageLocation(BaseModel):
    """Where a message is on the server: one folder, one UID under one UIDVALIDITY."""

    model_config = ConfigDict(frozen=True)

    folder: str
    folder_id: str
    uidvalidity: int
    uid: int
    role: FolderRole | None = None

    @property
    def token(self) -> str:
        return f"{self.folder_id}:{self.uidvalidity}:{self.uid}"


class UidEntry(BaseModel):
    """A synced UID of a folder and the message it is (the sync's map for flags and expunges).

    `internaldate` lets a UIDVALIDITY reseed reach back to every message it had."""

    uid: int
    message_key: str
    flags: list[str] = Field(default_factory=list)
    internaldate: datetime | None = None


class ProcessMessage(BaseModel):
    """One change to one message, for the processing queue (FIFO, grouped by message key).

    `upsert`: the message is in `location` (raw MIME at `raw_key`); `flags`: its flags there
    changed; `removed`: it left `location` (expunged or moved away)."""

    kind: Literal["process_message"] = "process_message"
    op: Literal["upsert", "flags", "removed"]
    company_id: str
    account_id: str
    message_key: str
    location: MessageLocation
    flags: list[str] = Field(default_factory=list)
    raw_key: str | None = None
    raw_sha256: str | None = None
    size: int = 0
    internaldate: datetime | None = None
    gm_thrid: int | None = None
    gm_labels: list[str] = Field(default_factory=list)
    historical: bool = False

    @property
    def deduplication_id(self) -> str:
        flags = ",".join(sorted(self.flags))
        basis = f"{self.op}\0{self.message_key}\0{self.location.token}\0{flags}"
        return hashlib.sha256(basis.encode()).hexdigest()


class RelinkThreads(BaseModel):
    """Re-match threads after the directory changed (SPEC L1): a person gained addresses or
    was deleted. The processor finds the threads and recomputes their automatic links."""

    kind: Literal["relink_threads"] = "relink_threads"
    company_id: str
    job_id: str
    addresses: list[str] = Field(default_factory=list)
    person_ids: list[str] = Field(default_factory=list)
    thread_ids: list[str] = Field(default_factory=list)


class Participant(BaseModel):
    email: str
    name: str | None = None
    person_id: str | None = None


class ThreadLink(BaseModel):
    type: LinkType
    id: str
    reason: LinkReason


class StoredMessage(BaseModel):
    """A message as the CRM keeps it. Bodies are in S3 (`parsed_key`), raw MIME at
    `raw_key`; DynamoDB holds this metadata and the snippet."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    thread_id: str
    account_id: str
    company_id: str
    owner_user_id: str
    message_id_header: str | None = None
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    from_: Address | None = Field(default=None, alias="from")
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    subject: str = ""
    thread_subject: str = ""
    date: datetime
    snippet: str = ""
    unread: bool = True
    flags: list[str] = Field(default_factory=list)
    locations: list[MessageLocation] = Field(default_factory=list)
    direction: Literal["inbound", "outbound"] = "inbound"
    attachments: list[Attachment] = Field(default_factory=list)
    calendar: list[CalendarPart] = Field(default_factory=list)
    defects: list[str] = Field(default_factory=list)
    unparseable: bool = False
    raw_key: str
    parsed_key: str | None = None
    size: int = 0
    gm_thrid: int | None = None
    gm_labels: list[str] = Field(default_factory=list)
    tracked: bool = False

    @property
    def folders(self) -> list[str]:
        return sorted({loc.folder for loc in self.locations})

    @property
    def sort_key(self) -> str:
        return f"MSG#{iso(self.date)}#{self.id}"


class Thread(BaseModel):
    id: str
    account_id: str
    company_id: str
    owner_user_id: str
    subject: str = ""
    thread_subject: str = ""
    message_count: int = 0
    unread_count: int = 0
    participants: list[Participant] = Field(default_factory=list)
    links: list[ThreadLink] = Field(default_factory=list)
    first_message_at: datetime
    last_message_at: datetime
    snippet: str = ""
    has_attachments: bool = False
    tracked: bool = False
    folders: list[str] = Field(default_factory=list)
    boxes: list[Box] = Field(default_factory=list)
    # CRM-side state (SPEC S9): when the user archived or deleted the thread in the CRM. A
    # message that arrives later brings the thread back, as in a mail app.
    archived_at: datetime | None = None
    deleted_at: datetime | None = None
    # Derived: whether the thread is archived / deleted now (no later message brought it back).
    archived: bool = False
    deleted: bool = False
    visibility: Visibility = "private"
    version: int = 0


class BlockedAddress(BaseModel):
    """An exact address (`ann@example.com`) or a whole domain (`@example.com`) (SPEC S8)."""

    address: str
    created_at: datetime
