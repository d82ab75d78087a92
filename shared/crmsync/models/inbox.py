"""The inbox (SPEC I1): its filters, the index entries a thread has, and the unread counts.

A thread of a user's own mailbox has one index entry per list it can be found in: one per
box it is in and `all`, one per flag (unread, attachments, tracked), linked or unlinked, one
per linked record, per participant address and per search word. Each entry carries what a
second filter needs, so any combination of filters is one Query on the most selective entry
partition with the rest as a server-side FilterExpression (services/inbox.py plans it,
store/inbox.py runs it). Everything here is a pure function of the stored Thread, so the
store can diff the entries of the old and the new thread inside the thread's transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from crmsync.clock import iso
from crmsync.errors import CrmSyncError
from crmsync.mail.parse import normalise_address
from crmsync.models.mail import LinkType, Thread

Folder = Literal["inbox", "sent", "archive", "all"]
FOLDERS: tuple[Folder, ...] = ("inbox", "sent", "archive", "all")
LINK_TYPES: tuple[LinkType, ...] = ("person", "deal", "lead", "project")

MAX_ADDRESSES = 20
"""Participant addresses indexed per thread (the first ones, in order of appearance)."""
MAX_TERMS = 24
"""Search words indexed per thread: subject words first, then participants' words."""
MIN_WORD = 2
MAX_WORD = 64
# Reply/forward prefixes and generic top-level domains would be in nearly every thread.
STOP_WORDS = frozenset({"re", "fw", "fwd", "aw", "wg", "sv", "tr", "com", "net", "org"})
_WORD = re.compile(r"[^\W_]+")


class InvalidFilterError(CrmSyncError):
    status = 422
    title = "Invalid request"


def words(text: str) -> list[str]:
    """The searchable words of a text: lower-cased, accents folded (é → e, ß → ss),
    split on anything that is not a letter or digit; stop words and 1-letter words dropped.
    Words are whole: `acme` finds "Acme, Inc." but not "Acmeco"."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    found = (w[:MAX_WORD] for w in _WORD.findall(plain))
    return list(dict.fromkeys(w for w in found if len(w) >= MIN_WORD and w not in STOP_WORDS))


def thread_terms(thread: Thread) -> list[str]:
    """The words a thread is found by: its subject's, then each participant's name, the
    address's local part and domain labels; at most MAX_TERMS."""
    texts = [thread.subject]
    for participant in thread.participants:
        local, _, domain = participant.email.rpartition("@")
        texts += [participant.name or "", local, _unicode_domain(domain)]
    return list(dict.fromkeys(w for text in texts for w in words(text)))[:MAX_TERMS]


def _unicode_domain(domain: str) -> str:
    """Addresses are stored with IDNA domains; their words are the letters people type."""
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return domain


def thread_addresses(thread: Thread) -> list[str]:
    return list(dict.fromkeys(p.email.lower() for p in thread.participants))[:MAX_ADDRESSES]


def link_value(link_type: str, target_id: str) -> str:
    return f"{link_type}#{target_id}"


def entry_sort_key(thread: Thread) -> str:
    """Newest first by the last message, like GSI1SK of the thread item."""
    return f"{iso(thread.last_message_at)}#{thread.id}"


@dataclass(frozen=True)
class InboxEntries:
    """The entries of one thread: entry name -> attributes; one sort key for all."""

    sort_key: str
    entries: dict[str, dict[str, Any]]


def inbox_entries(thread: Thread | None) -> InboxEntries:
    """Where a thread is listed. A deleted thread (or none) is in no list."""
    if thread is None or thread.deleted:
        return InboxEntries(sort_key="", entries={})
    linked = bool(thread.links)
    common: dict[str, Any] = {
        "thread_id": thread.id,
        "account_id": thread.account_id,
        "boxes": list(thread.boxes),
        "unread": thread.unread_count > 0,
        "linked": linked,
        "attach": thread.has_attachments,
        "tracked": thread.tracked,
    }
    terms = thread_terms(thread)
    addresses = thread_addresses(thread)
    links = [link_value(link.type, link.id) for link in thread.links]
    # Entries a text, participant or link filter picks carry what a second such filter needs.
    rich = {**common, "terms": terms, "addrs": addresses, "links": links}
    entries: dict[str, dict[str, Any]] = {f"BOX#{box}": common for box in [*thread.boxes, "all"]}
    for flag, name in (("unread", "UNREAD"), ("attach", "ATTACH"), ("tracked", "TRACKED")):
        if common[flag]:
            entries[name] = common
    entries["LINKED" if linked else "UNLINKED"] = common
    for value in links:
        entries[f"LINK#{value}"] = rich
    for address in addresses:
        entries[f"ADDR#{address}"] = rich
    for term in terms:
        entries[f"TERM#{term}"] = rich
    return InboxEntries(sort_key=entry_sort_key(thread), entries=entries)


def folder_counts(thread: Thread | None) -> dict[str, int]:
    """What a thread adds to its account's counters: `{folder}_threads` and
    `{folder}_unread` (a thread with an unread message) for each folder it is listed in."""
    if thread is None or thread.deleted:
        return {}
    counts: dict[str, int] = {}
    for folder in dict.fromkeys([*thread.boxes, "all"]):
        counts[f"{folder}_threads"] = 1
        if thread.unread_count > 0:
            counts[f"{folder}_unread"] = 1
    return counts


def count_delta(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    delta = {name: new.get(name, 0) - old.get(name, 0) for name in {*old, *new}}
    return {name: value for name, value in sorted(delta.items()) if value}


# -- the list's filters --------------------------------------------------------------------
class InboxFilter(BaseModel):
    """GET /v1/threads parameters. Every filter given must hold (AND).

    `since`/`until` bound `last_message_at` as [since, until); a date means its whole day
    in UTC (since: from its start; until: to its end)."""

    model_config = ConfigDict(frozen=True)

    folder: Folder = "all"
    account_id: str | None = None
    unread: bool | None = None
    linked: bool | None = None
    person_id: str | None = None
    deal_id: str | None = None
    lead_id: str | None = None
    project_id: str | None = None
    has_attachments: bool | None = None
    tracked: bool | None = None
    participant: str | None = None
    since: AwareDatetime | date | None = None
    until: AwareDatetime | date | None = None
    q: str | None = Field(default=None, max_length=200)

    @field_validator("participant")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        address = normalise_address(value)
        if address is None:
            raise ValueError("participant must be an email address")
        return address

    @field_validator("q")
    @classmethod
    def _searchable(cls, value: str | None) -> str | None:
        if value is not None and not words(value):
            raise ValueError(f"q needs a word of at least {MIN_WORD} letters or digits")
        return value

    @model_validator(mode="after")
    def _range(self) -> InboxFilter:
        if self.since_at and self.until_at and self.since_at >= self.until_at:
            raise ValueError("since must be before until")
        return self

    @property
    def since_at(self) -> datetime | None:
        return _moment(self.since, end=False)

    @property
    def until_at(self) -> datetime | None:
        return _moment(self.until, end=True)

    @property
    def query_words(self) -> list[str]:
        return words(self.q) if self.q else []

    @property
    def link_targets(self) -> list[str]:
        given = zip(
            LINK_TYPES, (self.person_id, self.deal_id, self.lead_id, self.project_id), strict=True
        )
        return [link_value(t, i) for t, i in given if i is not None]


def _moment(value: datetime | date | None, *, end: bool) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if value else None
    start = datetime.combine(value, time(), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


class Condition(BaseModel):
    """One server-side filter on an entry's attribute: equal, or a list that contains."""

    model_config = ConfigDict(frozen=True)

    attribute: Literal[
        "account_id", "unread", "linked", "attach", "tracked", "boxes", "terms", "addrs", "links"
    ]
    op: Literal["eq", "contains"]
    value: str | bool


class InboxQuery(BaseModel):
    """One Query: the entry partition, the range of its sort key, and the FilterExpression."""

    model_config = ConfigDict(frozen=True)

    entry: str
    since: datetime | None = None
    until: datetime | None = None
    conditions: tuple[Condition, ...] = ()


# -- counts ----------------------------------------------------------------------------------
class FolderCount(BaseModel):
    threads: int = 0
    unread: int = 0


class FolderCounts(BaseModel):
    inbox: FolderCount = Field(default_factory=FolderCount)
    sent: FolderCount = Field(default_factory=FolderCount)
    archive: FolderCount = Field(default_factory=FolderCount)
    all: FolderCount = Field(default_factory=FolderCount)

    @classmethod
    def from_counters(cls, counters: dict[str, int]) -> FolderCounts:
        return cls.model_validate(
            {
                folder: {
                    "threads": counters.get(f"{folder}_threads", 0),
                    "unread": counters.get(f"{folder}_unread", 0),
                }
                for folder in FOLDERS
            }
        )

    def plus(self, other: FolderCounts) -> FolderCounts:
        return FolderCounts.model_validate(
            {
                folder: {
                    "threads": getattr(self, folder).threads + getattr(other, folder).threads,
                    "unread": getattr(self, folder).unread + getattr(other, folder).unread,
                }
                for folder in FOLDERS
            }
        )


class AccountCounts(BaseModel):
    account_id: str
    email: str | None = Field(description="null for a removed account whose mail is kept.")
    folders: FolderCounts


class MailCounts(BaseModel):
    """Threads and unread threads per folder, per own account and in total."""

    accounts: list[AccountCounts]
    total: FolderCounts
