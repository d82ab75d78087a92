"""What an IMAP session reports about a folder and its messages (the sync's raw input)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from pydantic import BaseModel, Field

from crmsync.ports import FolderInfo


class FolderStatus(BaseModel):
    """One STATUS answer. `highestmodseq` only when the server has CONDSTORE."""

    name: str
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None


class KnownFolderState(BaseModel):
    """What we knew at the last sync: lets a QRESYNC SELECT report only what changed."""

    uidvalidity: int
    highestmodseq: int
    known_uids: str | None = None  # an IMAP sequence set such as "1:500", optional


class SelectedFolder(BaseModel):
    """The answer to a read-only SELECT (EXAMINE).

    With QRESYNC and a known state: `vanished` holds the UIDs expunged since then and
    `changed_flags` the UIDs whose flags changed (both empty otherwise)."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None = None
    vanished: list[int] = Field(default_factory=list)
    changed_flags: dict[int, list[str]] = Field(default_factory=dict)


class FetchedMessage(BaseModel):
    """One message as FETCH returned it: BODY.PEEK[] (raw bytes), FLAGS, INTERNALDATE, and
    Gmail's X-GM-MSGID / X-GM-THRID / X-GM-LABELS when the server has X-GM-EXT-1."""

    uid: int
    flags: list[str]
    internaldate: datetime | None = None
    raw: bytes
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    gm_labels: list[str] = Field(default_factory=list)


class ImapSession(Protocol):
    """A logged-in IMAP connection. Every failure raises MailServerError."""

    @property
    def capabilities(self) -> frozenset[str]:
        """Upper-case capability names after login, e.g. {"IMAP4REV1", "CONDSTORE"}."""
        ...

    @property
    def condstore(self) -> bool: ...

    @property
    def qresync(self) -> bool: ...

    @property
    def gmail(self) -> bool: ...

    @property
    def commands_sent(self) -> int:
        """IMAP commands sent on this connection so far (LOGIN included)."""
        ...

    def list_folders(self) -> list[FolderInfo]: ...

    def list_status(self) -> list[tuple[FolderInfo, FolderStatus | None]] | None:
        """Every folder with its status in one round trip (LIST-STATUS, RFC 5819); None when
        the server lacks the extension (then LIST and one STATUS per folder)."""
        ...

    def status(self, folder: str) -> FolderStatus:
        """One STATUS (MESSAGES UIDNEXT UIDVALIDITY [HIGHESTMODSEQ])."""
        ...

    def select(self, folder: str, known: KnownFolderState | None = None) -> SelectedFolder:
        """EXAMINE the folder (read-only, so fetching sets no \\Seen). With QRESYNC and
        `known`, one round trip also returns vanished UIDs and changed flags."""
        ...

    def search_uids(
        self, *, min_uid: int = 1, max_uid: int | None = None, since: date | None = None
    ) -> list[int]:
        """UID SEARCH in the selected folder: UIDs in [min_uid, max_uid], optionally SINCE a
        date; sorted ascending."""
        ...

    def fetch_messages(self, uids: list[int]) -> list[FetchedMessage]:
        """UID FETCH BODY.PEEK[] FLAGS INTERNALDATE (+ Gmail items) for these UIDs; messages
        expunged meanwhile are simply absent."""
        ...

    def changed_flags(self, since_modseq: int) -> dict[int, list[str]]:
        """UID FETCH 1:* (FLAGS) (CHANGEDSINCE n): UIDs whose flags changed (CONDSTORE)."""
        ...

    def all_flags(self) -> dict[int, list[str]]:
        """UID FETCH 1:* (FLAGS): every UID in the folder with its flags (the full check on
        servers without CONDSTORE/QRESYNC, also the UID set compare for deletions)."""
        ...

    # -- writes (SPEC S9: the CRM's mailbox actions) -----------------------------------------
    # Each SELECTs the folder read-write; when its UIDVALIDITY is not `uidvalidity` the UIDs
    # belong to another generation and nothing is changed (returns []). Only UIDs the folder
    # still has are touched and returned. Afterwards no folder counts as selected: the next
    # select() EXAMINEs (read-only) as always.

    def store_flags(
        self, folder: str, uidvalidity: int, uids: list[int], add: list[str], remove: list[str]
    ) -> list[int]:
        """UID STORE +FLAGS.SILENT `add`, then -FLAGS.SILENT `remove`; the UIDs changed."""
        ...

    def move(self, folder: str, uidvalidity: int, uids: list[int], target: str) -> list[int]:
        """UID MOVE to `target` (RFC 6851); without MOVE: UID COPY, +FLAGS.SILENT (\\Deleted)
        and UID EXPUNGE (RFC 4315). A server without UIDPLUS cannot expunge only these UIDs,
        so the originals stay, flagged \\Deleted, for the next expunge. The UIDs moved."""
        ...

    def append_message(
        self, folder: str, raw: bytes, flags: list[str], internaldate: datetime
    ) -> tuple[int, int] | None:
        """APPEND (the sender's copy in Sent, SPEC I2): (UIDVALIDITY, UID) from the server's
        APPENDUID (RFC 4315), or None when it does not say."""
        ...

    def store_gmail_labels(
        self, folder: str, uidvalidity: int, uids: list[int], add: list[str], remove: list[str]
    ) -> list[int]:
        """UID STORE +X-GM-LABELS.SILENT / -X-GM-LABELS.SILENT (X-GM-EXT-1 only; a programming
        error elsewhere); the UIDs changed."""
        ...
