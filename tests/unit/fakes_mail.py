"""In-memory fakes of the mail sync and processing ports (crmsync.ports, models.imap).

They keep the semantics of the real adapters that the domain relies on:

- `FakeImapServer`/`FakeImapSession`: folders with UIDVALIDITY/UIDNEXT, per-message MODSEQ
  and an expunge log, so QRESYNC (VANISHED + changed flags at SELECT), CONDSTORE
  (CHANGEDSINCE) and plain servers answer as a real one does. `commands_sent` counts as
  imaplib's tag counter in mail/imap_session.py does: 2 at open (CAPABILITY + LOGIN), then
  one per protocol call that talks to the server (LIST, LIST-STATUS, STATUS, EXAMINE, UID
  SEARCH, UID FETCH), plus one ENABLE QRESYNC before the session's first EXAMINE on a
  QRESYNC server; calls the real session answers without a command (an empty FETCH set,
  the flags of an empty folder) cost none. `fail_after_fetches = N` hangs up on the Nth
  `fetch_messages` call of a session: it raises MailServerError("server_error") and every
  later command on that session raises too. Writes (store_flags, move,
  store_gmail_labels) cost what the real session sends: SELECT (+ ENABLE first), UID SEARCH
  for the UIDs still there, then one UID STORE per direction, or UID MOVE (without MOVE:
  UID COPY + UID STORE, + UID EXPUNGE with UIDPLUS). On a `gmail` server labels belong to
  the message (every copy with its X-GM-MSGID): removing \\Inbox takes the copy out of
  INBOX, adding it puts one there, and a move from the \\All folder to the trash removes
  every other copy.
- `FakeProcessQueue`: like the SQS FIFO queue, `sent` holds every job the code sent and
  `delivered` what the queue accepted (a repeated deduplication id is dropped).
- `FakeCheckpointStore`: conditional checkpoint writes (store/checkpoints.py).
- `FakeThreadStore`: the single-table layout of store/threads.py: a message item lives in
  its thread's partition under `MSG#{date}#{id}`, a pointer per message key finds it and
  stays as a tombstone when the message is deleted; thread writes are conditional on the
  version; only active links are in the "threads of a record" index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

from crmsync.mail.parse import attachment_bytes
from crmsync.models.accounts import MailAccount
from crmsync.models.deals import Deal
from crmsync.models.imap import (
    FetchedMessage,
    FolderStatus,
    KnownFolderState,
    SelectedFolder,
)
from crmsync.models.jobs import SyncAccount
from crmsync.models.mail import (
    BlockedAddress,
    FolderCheckpoint,
    ProcessMessage,
    RelinkThreads,
    StoredMessage,
    Thread,
    UidEntry,
    folder_id,
)
from crmsync.models.parsed import Attachment
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.models.sync import SyncRun
from crmsync.models.threads import LinkRecord, SubjectThread
from crmsync.ports import AddressOwner, CheckpointConflict, FolderInfo
from crmsync.services.folder_sync import FolderSync, SyncLimits
from crmsync.services.mail_sync import MailSync
from tests.unit.fakes import (
    FakeAccountRepository,
    FakeClock,
    FakeEventPublisher,
    FakeJobQueue,
    FakeSyncRunRepository,
)

DEFAULT_DATE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def problem(code: str) -> ConnectionProblem:
    messages = {
        "auth_failed": ("The mail server refused the user name or password.", "Re-authenticate."),
        "timeout": ("The mail server did not answer in time.", "Try again later."),
        "server_error": ("The mail server closed the connection.", "Try again later."),
    }
    message, action = messages.get(code, ("Something went wrong.", "Try again."))
    return ConnectionProblem(code=code, message=message, action=action)


# -- IMAP ---------------------------------------------------------------------------------
@dataclass
class FakeMessage:
    uid: int
    raw: bytes
    flags: list[str]
    internaldate: datetime
    modseq: int
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    gm_labels: list[str] = field(default_factory=list)


@dataclass
class FakeFolder:
    name: str
    special_use: str | None
    flags: list[str]
    uidvalidity: int
    uidnext: int = 1
    highestmodseq: int = 1
    messages: dict[int, FakeMessage] = field(default_factory=dict)
    # (modseq of the expunge, uid): what QRESYNC reports as VANISHED (EARLIER)
    expunged: list[tuple[int, int]] = field(default_factory=list)

    def info(self) -> FolderInfo:
        flags = list(self.flags)
        if self.special_use and self.special_use not in flags:
            flags.append(self.special_use)
        return FolderInfo(name=self.name, delimiter="/", flags=flags, special_use=self.special_use)


class FakeImapServer:
    """One mailbox. Toggle `condstore`, `qresync`, `gmail`, `list_status`, `has_move`,
    `uidplus` per test."""

    def __init__(
        self,
        *,
        condstore: bool = True,
        qresync: bool = True,
        gmail: bool = False,
        list_status: bool = False,
        has_move: bool = True,
        uidplus: bool = True,
        password: str = "secret",
    ) -> None:
        self.condstore = condstore
        self.qresync = qresync
        self.gmail = gmail
        self.list_status = list_status
        self.has_move = has_move
        self.uidplus = uidplus
        self.password = password
        self.folders: dict[str, FakeFolder] = {}
        self._modseq = 1
        self._uidvalidity = 1000
        self.fail_after_fetches: int | None = None
        self.fetched: list[tuple[str, int]] = []  # (folder, uid) of every message sent
        self.sessions_opened = 0
        self.add_folder("INBOX")

    # -- setup and changes ----------------------------------------------------------------
    def _tick(self, folder: FakeFolder) -> int:
        self._modseq += 1
        folder.highestmodseq = self._modseq
        return self._modseq

    def add_folder(
        self, name: str, special_use: str | None = None, flags: Sequence[str] = ()
    ) -> FakeFolder:
        self._uidvalidity += 1
        folder = FakeFolder(
            name=name,
            special_use=special_use,
            flags=list(flags),
            uidvalidity=self._uidvalidity,
            highestmodseq=self._modseq,
        )
        self.folders[name] = folder
        return folder

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[str] = (),
        internaldate: datetime | None = None,
        *,
        gm_msgid: int | None = None,
        gm_thrid: int | None = None,
        gm_labels: Sequence[str] = (),
    ) -> int:
        """APPEND (or delivery): the next UID; `internaldate` None means DEFAULT_DATE."""
        box = self.folders[folder]
        uid = box.uidnext
        box.uidnext += 1
        box.messages[uid] = FakeMessage(
            uid=uid,
            raw=raw,
            flags=list(flags),
            internaldate=internaldate or DEFAULT_DATE,
            modseq=self._tick(box),
            gm_msgid=gm_msgid,
            gm_thrid=gm_thrid,
            gm_labels=list(gm_labels),
        )
        return uid

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        box = self.folders[folder]
        message = box.messages[uid]
        message.flags = list(flags)
        message.modseq = self._tick(box)

    def expunge(self, folder: str, uid: int) -> FakeMessage:
        box = self.folders[folder]
        message = box.messages.pop(uid)
        box.expunged.append((self._tick(box), uid))
        return message

    def move(self, source: str, uid: int, target: str) -> int:
        """UID MOVE: a new UID in the target, an expunge in the source."""
        message = self.expunge(source, uid)
        return self.append(
            target,
            message.raw,
            flags=message.flags,
            internaldate=message.internaldate,
            gm_msgid=message.gm_msgid,
            gm_thrid=message.gm_thrid,
            gm_labels=message.gm_labels,
        )

    def change_flags(
        self, folder: str, uid: int, add: Sequence[str], remove: Sequence[str]
    ) -> None:
        """UID STORE +FLAGS / -FLAGS on one message: a new MODSEQ when the flags change."""
        box = self.folders[folder]
        message = box.messages[uid]
        flags = [f for f in message.flags if f not in remove]
        flags += [f for f in dict.fromkeys(add) if f not in flags]
        if flags != message.flags:
            message.flags = flags
            message.modseq = self._tick(box)

    def change_gmail_labels(
        self, folder: str, uid: int, add: Sequence[str], remove: Sequence[str]
    ) -> None:
        """+X-GM-LABELS / -X-GM-LABELS: the labels of every copy of the message change, and
        \\Inbox decides whether INBOX has a copy."""
        source = self.folders[folder].messages[uid]
        labels = [label for label in source.gm_labels if label not in remove]
        labels += [label for label in dict.fromkeys(add) if label not in labels]
        if labels == source.gm_labels:
            return
        for box, copy in self._copies(source):
            copy.gm_labels = list(labels)
            copy.modseq = self._tick(box)
        in_inbox = [u for u, m in self.folders["INBOX"].messages.items() if self._same(m, source)]
        if "\\Inbox" in remove:
            for inbox_uid in in_inbox:
                self.expunge("INBOX", inbox_uid)
        if "\\Inbox" in add and not in_inbox:
            self._append_copy(source, "INBOX")

    def _same(self, message: FakeMessage, other: FakeMessage) -> bool:
        if message is other:
            return True
        return self.gmail and message.gm_msgid is not None and message.gm_msgid == other.gm_msgid

    def _copies(self, message: FakeMessage) -> list[tuple[FakeFolder, FakeMessage]]:
        return [
            (box, copy)
            for box in self.folders.values()
            for copy in box.messages.values()
            if self._same(copy, message)
        ]

    def _append_copy(self, message: FakeMessage, target: str) -> int:
        return self.append(
            target,
            message.raw,
            flags=message.flags,
            internaldate=message.internaldate,
            gm_msgid=message.gm_msgid,
            gm_thrid=message.gm_thrid,
            gm_labels=message.gm_labels,
        )

    def move_to(self, source: str, uid: int, target: str) -> int:
        """UID MOVE as the session does it; on Gmail a move from the \\All folder to the
        trash deletes every label, so every other copy goes too."""
        message = self.folders[source].messages[uid]
        everywhere = (
            self.gmail
            and self.folders[source].special_use == "\\All"
            and self.folders[target].special_use == "\\Trash"
        )
        new_uid = self.move(source, uid, target)
        if everywhere:
            for box, copy in self._copies(message):
                if box.name != target:
                    self.expunge(box.name, copy.uid)
        return new_uid

    def reset_uidvalidity(self, folder: str) -> None:
        """The server renumbered the folder: same messages, new UIDs, new UIDVALIDITY."""
        box = self.folders[folder]
        self._uidvalidity += 1
        old = [box.messages[uid] for uid in sorted(box.messages)]
        box.uidvalidity = self._uidvalidity
        box.messages = {}
        box.expunged = []
        box.uidnext = 1
        for message in old:
            uid = box.uidnext
            box.uidnext += 1
            message.uid = uid
            message.modseq = self._tick(box)
            box.messages[uid] = message

    # -- what a session reads -------------------------------------------------------------
    def status(self, name: str) -> FolderStatus:
        box = self._folder(name)
        return FolderStatus(
            name=name,
            uidvalidity=box.uidvalidity,
            uidnext=box.uidnext,
            messages=len(box.messages),
            highestmodseq=box.highestmodseq if self.condstore else None,
        )

    def _folder(self, name: str) -> FakeFolder:
        box = self.folders.get(name)
        if box is None:
            raise MailServerError(problem("folder_missing"))
        return box


class FakeImapSession:
    """ImapSession over a FakeImapServer; reads the server live (changes show at once)."""

    def __init__(self, server: FakeImapServer) -> None:
        self._server = server
        self._commands = 2  # CAPABILITY + LOGIN
        self._selected: FakeFolder | None = None
        self._enabled = False
        self.hung_up = False
        self.fetches = 0
        self.batches: list[list[int]] = []  # the UIDs asked for by each fetch_messages
        self.calls: list[str] = []

    def _command(self, name: str) -> None:
        if self.hung_up:
            raise MailServerError(problem("server_error"))
        self._commands += 1
        self.calls.append(name)

    @property
    def capabilities(self) -> frozenset[str]:
        names = {"IMAP4REV1"}
        if self.condstore:
            names.add("CONDSTORE")
        if self.qresync:
            names |= {"QRESYNC", "ENABLE"}
        if self.gmail:
            names.add("X-GM-EXT-1")
        if self._server.list_status:
            names.add("LIST-STATUS")
        if self._server.has_move:
            names.add("MOVE")
        if self._server.uidplus:
            names.add("UIDPLUS")
        return frozenset(names)

    @property
    def condstore(self) -> bool:
        return self._server.condstore or self._server.qresync

    @property
    def qresync(self) -> bool:
        return self._server.qresync

    @property
    def gmail(self) -> bool:
        return self._server.gmail

    @property
    def commands_sent(self) -> int:
        return self._commands

    def list_folders(self) -> list[FolderInfo]:
        self._command("LIST")
        return [box.info() for box in self._server.folders.values()]

    def list_status(self) -> list[tuple[FolderInfo, FolderStatus | None]] | None:
        if not self._server.list_status:
            return None
        self._command("LIST-STATUS")
        listed: list[tuple[FolderInfo, FolderStatus | None]] = []
        for box in self._server.folders.values():
            info = box.info()
            selectable = not any(f.lower() == "\\noselect" for f in info.flags)
            listed.append((info, self._status(box.name) if selectable else None))
        return listed

    def _status(self, folder: str) -> FolderStatus:
        status = self._server.status(folder)
        if not self.condstore:
            status = status.model_copy(update={"highestmodseq": None})
        return status

    def status(self, folder: str) -> FolderStatus:
        self._command("STATUS")
        return self._status(folder)

    def select(self, folder: str, known: KnownFolderState | None = None) -> SelectedFolder:
        if self.qresync and not self._enabled:
            self._command("ENABLE")  # QRESYNC must be enabled before the first EXAMINE
            self._enabled = True
        self._command("EXAMINE")
        box = self._server._folder(folder)
        self._selected = box
        vanished: list[int] = []
        changed: dict[int, list[str]] = {}
        if known is not None and self.qresync and known.uidvalidity == box.uidvalidity:
            since = known.highestmodseq
            vanished = sorted(uid for modseq, uid in box.expunged if modseq > since)
            changed = {
                uid: list(m.flags) for uid, m in sorted(box.messages.items()) if m.modseq > since
            }
        return SelectedFolder(
            name=folder,
            uidvalidity=box.uidvalidity,
            uidnext=box.uidnext,
            exists=len(box.messages),
            highestmodseq=box.highestmodseq if self.condstore else None,
            vanished=vanished,
            changed_flags=changed,
        )

    def _box(self) -> FakeFolder:
        if self._selected is None:
            raise RuntimeError("select() a folder before searching or fetching in it")
        return self._selected

    def search_uids(
        self, *, min_uid: int = 1, max_uid: int | None = None, since: date | None = None
    ) -> list[int]:
        box = self._box()
        low = max(min_uid, 1)
        if max_uid is not None and max_uid < low:
            return []  # an empty range: the real session sends nothing
        self._command("SEARCH")
        # A server answers `UID SEARCH UID n:*` with the highest UID even when it is below n
        # (`*` is that UID); the protocol promises results in [min_uid, max_uid] only.
        top = max_uid if max_uid is not None else max(box.messages, default=0)
        answer = {uid for uid in box.messages if low <= uid <= top}
        if max_uid is None and box.messages:
            answer.add(max(box.messages))
        return sorted(
            uid
            for uid in answer
            if low <= uid <= top
            and (since is None or box.messages[uid].internaldate.astimezone(UTC).date() >= since)
        )

    def fetch_messages(self, uids: list[int]) -> list[FetchedMessage]:
        box = self._box()
        if not any(uid > 0 for uid in uids):
            return []  # nothing to ask for: the real session sends no command
        self._command("FETCH")
        self.fetches += 1
        self.batches.append(list(uids))
        limit = self._server.fail_after_fetches
        if limit is not None and self.fetches >= limit:
            self.hung_up = True  # the connection is gone: nothing more on this session
            raise MailServerError(problem("server_error"))
        found: list[FetchedMessage] = []
        for uid in sorted(set(uids)):
            message = box.messages.get(uid)
            if message is None:
                continue
            self._server.fetched.append((box.name, uid))
            found.append(
                FetchedMessage(
                    uid=uid,
                    flags=list(message.flags),
                    internaldate=message.internaldate,
                    raw=message.raw,
                    gm_msgid=message.gm_msgid if self.gmail else None,
                    gm_thrid=message.gm_thrid if self.gmail else None,
                    gm_labels=list(message.gm_labels) if self.gmail else [],
                )
            )
        return found

    def changed_flags(self, since_modseq: int) -> dict[int, list[str]]:
        if not self.condstore:
            raise RuntimeError("CHANGEDSINCE without CONDSTORE")
        box = self._box()
        if not box.messages:
            return {}
        self._command("FETCH CHANGEDSINCE")
        return {
            uid: list(m.flags) for uid, m in sorted(box.messages.items()) if m.modseq > since_modseq
        }

    def append_message(
        self, folder: str, raw: bytes, flags: list[str], internaldate: datetime
    ) -> tuple[int, int] | None:
        self._command("APPEND")
        uid = self._server.append(folder, raw, flags=flags, internaldate=internaldate)
        if not self._server.uidplus:
            return None
        return self._server.folders[folder].uidvalidity, uid

    def all_flags(self) -> dict[int, list[str]]:
        box = self._box()
        if not box.messages:
            return {}
        self._command("FETCH FLAGS")
        return {uid: list(m.flags) for uid, m in sorted(box.messages.items())}

    # -- writes ---------------------------------------------------------------------------
    def store_flags(
        self, folder: str, uidvalidity: int, uids: list[int], add: list[str], remove: list[str]
    ) -> list[int]:
        found = self._select_for_write(folder, uidvalidity, uids)
        if found and add:
            self._command("STORE +FLAGS")
            for uid in found:
                self._server.change_flags(folder, uid, add, [])
        if found and remove:
            self._command("STORE -FLAGS")
            for uid in found:
                self._server.change_flags(folder, uid, [], remove)
        return found

    def move(self, folder: str, uidvalidity: int, uids: list[int], target: str) -> list[int]:
        found = self._select_for_write(folder, uidvalidity, uids)
        if not found:
            return []
        self._server._folder(target)
        if self._server.has_move:
            self._command("MOVE")
            for uid in found:
                self._server.move_to(folder, uid, target)
            return found
        self._command("COPY")
        box = self._server.folders[folder]
        for uid in found:
            self._server._append_copy(box.messages[uid], target)
        self._command("STORE +FLAGS")
        for uid in found:
            self._server.change_flags(folder, uid, ["\\Deleted"], [])
        if self._server.uidplus:
            self._command("EXPUNGE")
            for uid in found:
                self._server.expunge(folder, uid)
        return found

    def store_gmail_labels(
        self, folder: str, uidvalidity: int, uids: list[int], add: list[str], remove: list[str]
    ) -> list[int]:
        if not self.gmail:
            raise RuntimeError("X-GM-LABELS needs a server with X-GM-EXT-1 (Gmail)")
        found = self._select_for_write(folder, uidvalidity, uids)
        if found and add:
            self._command("STORE +X-GM-LABELS")
            for uid in found:
                self._server.change_gmail_labels(folder, uid, add, [])
        if found and remove:
            self._command("STORE -X-GM-LABELS")
            for uid in found:
                if uid in self._server.folders[folder].messages:  # removing \Inbox empties INBOX
                    self._server.change_gmail_labels(folder, uid, [], remove)
        return found

    def _select_for_write(self, folder: str, uidvalidity: int, uids: list[int]) -> list[int]:
        wanted = {uid for uid in uids if uid > 0}
        if not wanted:
            return []
        if self.qresync and not self._enabled:
            self._command("ENABLE")
            self._enabled = True
        self._command("SELECT")
        self._selected = None  # reads need a select() (an EXAMINE) again
        box = self._server._folder(folder)
        if box.uidvalidity != uidvalidity or not box.messages:
            return []
        self._command("SEARCH")
        return sorted(wanted.intersection(box.messages))


class FakeImapSessions:
    """ImapSessions: `fail_with` = "auth_failed" / "timeout" / ... makes the open fail."""

    def __init__(self, server: FakeImapServer) -> None:
        self.server = server
        self.fail_with: str | None = None
        self.opened: list[FakeImapSession] = []

    @contextmanager
    def open_session(self, account: MailAccount, password: str) -> Iterator[FakeImapSession]:
        if self.fail_with is not None:
            raise MailServerError(problem(self.fail_with))
        if password != self.server.password:
            raise MailServerError(problem("auth_failed"))
        session = FakeImapSession(self.server)
        self.server.sessions_opened += 1
        self.opened.append(session)
        yield session


class FakeAccountHealth:
    """AccountHealth that records what the sync reported; success of a healthy account
    returns the same object (the real service writes nothing then)."""

    def __init__(self, password: str = "secret") -> None:
        self.password = password
        self.failures: list[ConnectionProblem] = []
        self.successes = 0

    def password_for_sync(self, account: MailAccount) -> str:
        return self.password

    def record_success(self, account: MailAccount) -> MailAccount:
        self.successes += 1
        return account

    def record_failure(self, account: MailAccount, problem: ConnectionProblem) -> MailAccount:
        self.failures.append(problem)
        return account


# -- checkpoints, raw mail, queues ----------------------------------------------------------
class FakeCheckpointStore:
    def __init__(self) -> None:
        self._checkpoints: dict[tuple[str, str], dict[str, FolderCheckpoint]] = {}
        self._maps: dict[tuple[str, str, str], dict[tuple[int, int], UidEntry]] = {}
        self.writes = 0

    def checkpoints(self, company_id: str, account_id: str) -> dict[str, FolderCheckpoint]:
        found = self._checkpoints.get((company_id, account_id), {})
        return {name: cp.model_copy(deep=True) for name, cp in found.items()}

    def checkpoint(self, company_id: str, account_id: str, folder: str) -> FolderCheckpoint:
        return self._checkpoints[(company_id, account_id)][folder].model_copy(deep=True)

    def save_checkpoint(
        self, company_id: str, account_id: str, checkpoint: FolderCheckpoint
    ) -> FolderCheckpoint:
        stored = self._checkpoints.setdefault((company_id, account_id), {})
        current = next((c for c in stored.values() if c.folder_id == checkpoint.folder_id), None)
        if (current.version if current else 0) != checkpoint.version:
            raise CheckpointConflict(checkpoint.folder)
        saved = checkpoint.model_copy(update={"version": checkpoint.version + 1}, deep=True)
        stored[checkpoint.folder] = saved
        self.writes += 1
        return saved.model_copy(deep=True)

    def uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        uids: Sequence[int] | None = None,
    ) -> dict[int, UidEntry]:
        entries = self._maps.get((company_id, account_id, folder_id), {})
        wanted = None if uids is None else set(uids)
        return {
            uid: entry.model_copy(deep=True)
            for (validity, uid), entry in entries.items()
            if validity == uidvalidity and (wanted is None or uid in wanted)
        }

    def all_uid_entries(
        self, company_id: str, account_id: str, folder_id: str
    ) -> dict[tuple[int, int], UidEntry]:
        return dict(self._maps.get((company_id, account_id, folder_id), {}))

    def put_uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        entries: Sequence[UidEntry],
    ) -> None:
        partition = self._maps.setdefault((company_id, account_id, folder_id), {})
        for entry in entries:
            partition[(uidvalidity, entry.uid)] = entry.model_copy(deep=True)

    def delete_uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        uids: Sequence[int],
    ) -> None:
        partition = self._maps.get((company_id, account_id, folder_id), {})
        for uid in uids:
            partition.pop((uidvalidity, uid), None)


class FakeRawStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.raw_puts = 0
        self.attachment_puts = 0

    def put_raw(self, company_id: str, account_id: str, raw: bytes) -> tuple[str, str]:
        sha = hashlib.sha256(raw).hexdigest()
        key = f"raw/{company_id}/{account_id}/{sha}.eml"
        self.objects[key] = bytes(raw)
        self.raw_puts += 1
        return key, sha

    def get_raw(self, key: str) -> bytes:
        return self.objects[key]

    def put_parsed(self, company_id: str, account_id: str, message_key: str, body: bytes) -> str:
        key = f"parsed/{company_id}/{account_id}/{message_key}.json"
        self.objects[key] = bytes(body)
        return key

    def get_parsed(self, key: str) -> bytes:
        return self.objects[key]

    def attachment_url(
        self,
        company_id: str,
        account_id: str,
        message_key: str,
        raw_key: str,
        attachment: Attachment,
    ) -> str:
        """Like S3: the bytes are cut from the raw MIME and stored on the first call only;
        the link names the object (`attachment_puts` counts the stores)."""
        key = f"attachments/{company_id}/{account_id}/{message_key}/{attachment.index}"
        if key not in self.objects:
            _, self.objects[key] = attachment_bytes(self.objects[raw_key], attachment.index)
            self.attachment_puts += 1
        return f"https://raw-mail.s3.test/{key}?expires=300"


class FakeProcessQueue:
    """The processing queue as SQS FIFO keeps it (messaging/sqs.py): `sent` is every job the
    code sent, in order, a repeated send included (what "sent exactly once" is checked on);
    `delivered` is what the queue accepted: a job whose deduplication id (job_id for a
    relink) was seen before is dropped, as SQS does within its window (here: the test)."""

    def __init__(self) -> None:
        self.sent: list[ProcessMessage] = []
        self.delivered: list[ProcessMessage] = []
        self.relinks: list[RelinkThreads] = []
        self.duplicates = 0
        self._seen: set[str] = set()

    def _accept(self, deduplication_id: str) -> bool:
        if deduplication_id in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(deduplication_id)
        return True

    def send_messages(self, jobs: Sequence[ProcessMessage]) -> None:
        for job in jobs:
            self.sent.append(job.model_copy(deep=True))
            if self._accept(job.deduplication_id):
                self.delivered.append(job.model_copy(deep=True))

    def send_relinks(self, jobs: Sequence[RelinkThreads]) -> None:
        self.relinks.extend(job.model_copy(deep=True) for job in jobs if self._accept(job.job_id))

    def of(self, op: str) -> list[ProcessMessage]:
        """The sent jobs of one kind."""
        return [job for job in self.sent if job.op == op]

    def take(self) -> list[ProcessMessage]:
        """The jobs sent since the last take, forgetting them (not their deduplication ids,
        as SQS does not)."""
        jobs, self.sent, self.delivered = self.sent, [], []
        return jobs


# -- directory and blocked list -------------------------------------------------------------
class FakeContactDirectory:
    def __init__(self) -> None:
        self.persons: dict[str, set[str]] = {}
        self.users: dict[str, str] = {}
        self.deals: dict[str, Deal] = {}

    def add_person(self, person_id: str, *addresses: str) -> None:
        self.persons.setdefault(person_id, set()).update(a.lower() for a in addresses)

    def remove_person(self, person_id: str) -> None:
        self.persons.pop(person_id, None)

    def add_user(self, user_id: str, address: str) -> None:
        self.users[user_id] = address.lower()

    def add_deal(self, deal: Deal) -> None:
        self.deals[deal.id] = deal

    def address_owners(self, company_id: str, addresses: Sequence[str]) -> dict[str, AddressOwner]:
        found: dict[str, AddressOwner] = {}
        for address in dict.fromkeys(addresses):
            persons = sorted(p for p, owned in self.persons.items() if address in owned)
            user = address in self.users.values()
            if persons or user:
                found[address] = AddressOwner(person_ids=persons, user=user)
        return found

    def open_deals(self, company_id: str, person_ids: Sequence[str]) -> list[Deal]:
        wanted = set(person_ids)
        return [
            deal
            for deal in self.deals.values()
            if deal.status == "open" and deal.person_id in wanted
        ]


class FakeBlockedStore:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], dict[str, BlockedAddress]] = {}

    def blocked_among(self, company_id: str, user_id: str, addresses: Sequence[str]) -> set[str]:
        entries = self._entries.get((company_id, user_id), {})
        return {
            address
            for address in addresses
            if address in entries or "@" + address.rpartition("@")[2] in entries
        }

    def list(self, company_id: str, user_id: str) -> list[BlockedAddress]:
        return sorted(self._entries.get((company_id, user_id), {}).values(), key=_address)

    def add(self, company_id: str, user_id: str, entry: BlockedAddress) -> bool:
        entries = self._entries.setdefault((company_id, user_id), {})
        if entry.address in entries:
            return False
        entries[entry.address] = entry
        return True

    def remove(self, company_id: str, user_id: str, address: str) -> bool:
        return self._entries.get((company_id, user_id), {}).pop(address, None) is not None


def _address(entry: BlockedAddress) -> str:
    return entry.address


# -- threads --------------------------------------------------------------------------------
@dataclass
class _Pointer:
    thread_id: str
    account_id: str
    sk: str | None
    deleted: bool = False


@dataclass
class _Partition:
    thread: Thread | None = None
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    links: dict[tuple[str, str], LinkRecord] = field(default_factory=dict)
    # what the link items carry beside the record (copied from the thread at save time)
    link_meta: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


class FakeThreadStore:
    def __init__(self) -> None:
        self.pointers: dict[tuple[str, str], _Pointer] = {}
        self.partitions: dict[tuple[str, str], _Partition] = {}
        self.msgid_refs: dict[tuple[str, str, str], str] = {}
        self.subjects: dict[tuple[str, str, str], dict[str, SubjectThread]] = {}
        self.participants: dict[tuple[str, str], dict[str, str]] = {}
        self.thread_saves = 0
        self.save_conflicts = 0

    def _partition(self, company_id: str, thread_id: str) -> _Partition:
        return self.partitions.setdefault((company_id, thread_id), _Partition())

    # -- messages -------------------------------------------------------------------------
    def find_message(self, company_id: str, message_key: str) -> StoredMessage | None:
        pointer = self.pointers.get((company_id, message_key))
        if pointer is None or pointer.deleted or pointer.sk is None:
            return None
        part = self.partitions.get((company_id, pointer.thread_id))
        item = part.messages.get(pointer.sk) if part else None
        return item.model_copy(deep=True) if item else None

    def message_thread(self, company_id: str, message_key: str) -> str | None:
        pointer = self.pointers.get((company_id, message_key))
        return pointer.thread_id if pointer else None

    def insert_message(self, message: StoredMessage) -> bool:
        key = (message.company_id, message.id)
        pointer = self.pointers.get(key)
        if pointer is not None and not pointer.deleted:
            return False
        self.pointers[key] = _Pointer(message.thread_id, message.account_id, message.sort_key)
        self._put_message(message)
        return True

    def update_message(self, message: StoredMessage) -> None:
        self._put_message(message)

    def _put_message(self, message: StoredMessage) -> None:
        part = self._partition(message.company_id, message.thread_id)
        part.messages[message.sort_key] = message.model_copy(deep=True)

    def delete_message(self, message: StoredMessage) -> None:
        self.pointers[(message.company_id, message.id)] = _Pointer(
            message.thread_id, message.account_id, None, deleted=True
        )
        part = self.partitions.get((message.company_id, message.thread_id))
        if part is not None:
            part.messages.pop(message.sort_key, None)

    def all_messages(self, company_id: str | None = None) -> list[StoredMessage]:
        """Every message item in every partition (a message stored twice shows twice)."""
        return [
            message.model_copy(deep=True)
            for (company, _), part in sorted(self.partitions.items())
            if company_id is None or company == company_id
            for _, message in sorted(part.messages.items())
        ]

    def all_threads(self, company_id: str | None = None) -> list[Thread]:
        return [
            part.thread.model_copy(deep=True)
            for (company, _), part in sorted(self.partitions.items())
            if part.thread is not None and (company_id is None or company == company_id)
        ]

    # -- threading indexes ----------------------------------------------------------------
    def threads_of_message_ids(
        self, company_id: str, account_id: str, message_ids: Sequence[str]
    ) -> dict[str, str]:
        return {
            mid: self.msgid_refs[(company_id, account_id, mid)]
            for mid in message_ids
            if (company_id, account_id, mid) in self.msgid_refs
        }

    def claim_message_ids(
        self, company_id: str, account_id: str, message_ids: Sequence[str], thread_id: str
    ) -> None:
        for mid in dict.fromkeys(message_ids):
            self.msgid_refs.setdefault((company_id, account_id, mid), thread_id)

    def subject_threads(
        self, company_id: str, account_id: str, thread_subject: str
    ) -> list[SubjectThread]:
        entries = self.subjects.get((company_id, account_id, thread_subject), {})
        return [entries[t].model_copy(deep=True) for t in sorted(entries)]

    def remember_subject(self, company_id: str, account_id: str, entry: SubjectThread) -> None:
        entries = self.subjects.setdefault((company_id, account_id, entry.thread_subject), {})
        entries[entry.thread_id] = entry.model_copy(deep=True)

    def index_participants(self, company_id: str, thread: Thread, addresses: Sequence[str]) -> None:
        for address in addresses:
            self.participants.setdefault((company_id, address), {})[thread.id] = thread.account_id

    def threads_with_participant(self, company_id: str, address: str) -> list[tuple[str, str]]:
        found = self.participants.get((company_id, address), {})
        return [(account_id, thread_id) for thread_id, account_id in sorted(found.items())]

    def threads_linked_to(
        self, company_id: str, link_type: str, target_id: str
    ) -> list[tuple[str, str]]:
        return [
            (meta["account_id"], meta["thread_id"])
            for meta in self._link_index(company_id, link_type, target_id)
        ]

    def _link_index(self, company_id: str, link_type: str, target_id: str) -> list[dict[str, Any]]:
        """The GSI2 items of a record: active links only, newest thread first."""
        items = [
            meta
            for (company, _), part in self.partitions.items()
            if company == company_id
            for target, meta in part.link_meta.items()
            if target == (link_type, target_id) and part.links[target].active
        ]
        return sorted(items, key=lambda m: (m["last_message_at"], m["thread_id"]), reverse=True)

    # -- threads --------------------------------------------------------------------------
    def thread(self, company_id: str, thread_id: str) -> Thread | None:
        part = self.partitions.get((company_id, thread_id))
        return part.thread.model_copy(deep=True) if part and part.thread else None

    def threads(self, company_id: str, thread_ids: Sequence[str]) -> dict[str, Thread]:
        found = (self.thread(company_id, t) for t in dict.fromkeys(thread_ids))
        return {thread.id: thread for thread in found if thread is not None}

    def thread_messages(self, company_id: str, thread_id: str) -> list[StoredMessage]:
        part = self.partitions.get((company_id, thread_id))
        if part is None:
            return []
        return [part.messages[sk].model_copy(deep=True) for sk in sorted(part.messages)]

    def thread_links(self, company_id: str, thread_id: str) -> list[LinkRecord]:
        part = self.partitions.get((company_id, thread_id))
        if part is None:
            return []
        return [part.links[t].model_copy(deep=True) for t in sorted(part.links)]

    def save_thread(
        self,
        thread: Thread,
        previous: Thread | None,
        links: Sequence[LinkRecord],
        dropped: Sequence[LinkRecord],
    ) -> bool:
        part = self._partition(thread.company_id, thread.id)
        current = part.thread
        expected_version = previous.version if previous is not None else None
        if (expected_version is None and current is not None) or (
            expected_version is not None
            and (current is None or current.version != expected_version)
        ):
            self.save_conflicts += 1
            return False
        part.thread = thread.model_copy(deep=True)
        for link in links:
            part.links[link.target] = link.model_copy(deep=True)
            part.link_meta[link.target] = {
                "thread_id": thread.id,
                "account_id": thread.account_id,
                "owner_user_id": thread.owner_user_id,
                "visibility": thread.visibility,
                "last_message_at": thread.last_message_at,
                "data": link.model_dump(mode="json"),
            }
        for link in dropped:
            part.links.pop(link.target, None)
            part.link_meta.pop(link.target, None)
        self.thread_saves += 1
        return True

    def delete_thread(self, thread: Thread, links: Sequence[LinkRecord]) -> bool:
        part = self.partitions.get((thread.company_id, thread.id))
        if part is None or part.thread is None or part.thread.version != thread.version:
            self.save_conflicts += 1
            return False
        part.thread = None
        for link in links:
            part.links.pop(link.target, None)
            part.link_meta.pop(link.target, None)
        return True

    # -- pages ----------------------------------------------------------------------------
    def linked_threads(
        self, company_id: str, link_type: str, target_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        items = self._link_index(company_id, link_type, target_id)
        start = int(cursor) if cursor else 0
        page = [
            {k: v for k, v in meta.items() if k != "last_message_at"}
            for meta in items[start : start + limit]
        ]
        more = start + limit < len(items)
        return page, str(start + limit) if more else None


# -- MIME -----------------------------------------------------------------------------------
def mime(
    *,
    message_id: str | None,
    subject: str = "Quote",
    sender: str | tuple[str, str] = "ann@example.com",
    to: Sequence[str | tuple[str, str]] = ("me@example.com",),
    cc: Sequence[str | tuple[str, str]] = (),
    sent: datetime = DEFAULT_DATE,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    body: str = "Hello.",
) -> bytes:
    """A small text/plain message; names and subject may hold any Unicode (RFC 2047)."""

    def one(value: str | tuple[str, str]) -> str:
        name, address = ("", value) if isinstance(value, str) else value
        return formataddr((name, address), charset="utf-8") if name else address

    lines = []
    if message_id is not None:
        lines.append(f"Message-ID: <{message_id}>")
    lines += [
        f"Date: {format_datetime(sent)}",
        f"From: {one(sender)}",
        f"To: {', '.join(one(a) for a in to)}",
    ]
    if cc:
        lines.append(f"Cc: {', '.join(one(a) for a in cc)}")
    lines.append(f"Subject: {Header(subject, 'utf-8').encode() if subject else ''}")
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        lines.append("References: " + " ".join(f"<{r}>" for r in references))
    lines += [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


# -- a whole sync over the fakes ------------------------------------------------------------
RIG_NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class SyncRig:
    """MailSync over a FakeImapServer and in-memory stores, for account "a1" of "c1"."""

    def __init__(
        self,
        *,
        now: datetime = RIG_NOW,
        batch_size: int = 50,
        full_check_every: timedelta = timedelta(hours=1),
        poll_interval: timedelta = timedelta(minutes=5),
        condstore: bool = True,
        qresync: bool = True,
        gmail: bool = False,
        list_status: bool = False,
    ) -> None:
        self.clock = FakeClock(now)
        self.server = FakeImapServer(
            condstore=condstore, qresync=qresync, gmail=gmail, list_status=list_status
        )
        self.sessions = FakeImapSessions(self.server)
        self.accounts = FakeAccountRepository()
        self.runs = FakeSyncRunRepository()
        self.events = FakeEventPublisher()
        self.health = FakeAccountHealth(self.server.password)
        self.checkpoints = FakeCheckpointStore()
        self.raw = FakeRawStore()
        self.queue = FakeProcessQueue()
        self.sync_queue = FakeJobQueue()
        self.limits = SyncLimits(batch_size=batch_size, full_check_every=full_check_every)
        self.sync = MailSync(
            self.accounts,
            self.runs,
            self.events,
            self.clock,
            poll_interval=poll_interval,
            sessions=self.sessions,
            health=self.health,
            checkpoints=self.checkpoints,
            raw=self.raw,
            process_queue=self.queue,
            sync_queue=self.sync_queue,
            limits=self.limits,
        )
        self._jobs = 0

    def add_account(self, **changes: Any) -> MailAccount:
        fields: dict[str, Any] = {
            "id": "a1",
            "company_id": "c1",
            "user_id": "u1",
            "email": "me@example.com",
            "created_at": self.clock.now() - timedelta(days=30),
            "next_poll_at": self.clock.now(),
        }
        account = MailAccount.model_validate({**fields, **changes})
        self.accounts.put(account, 8)
        return account

    def account(self) -> MailAccount:
        account = self.accounts.get("c1", "a1")
        assert account is not None
        return account

    def job(self) -> SyncAccount:
        self._jobs += 1
        return SyncAccount(
            job_id=f"a1:job{self._jobs}",
            account_id="a1",
            company_id="c1",
            enqueued_at=self.clock.now(),
        )

    def run(self, out_of_time: Callable[[], bool] | None = None) -> SyncRun:
        return self.sync.run(self.job(), out_of_time=out_of_time or (lambda: False))

    def folder_sync(
        self, session: FakeImapSession, out_of_time: Callable[[], bool] | None = None
    ) -> FolderSync:
        return FolderSync(
            session,
            self.account(),
            self.checkpoints,
            self.raw,
            self.queue,
            self.clock,
            self.limits,
            out_of_time or (lambda: False),
        )

    def checkpoint(self, folder: str = "INBOX") -> FolderCheckpoint:
        return self.checkpoints.checkpoint("c1", "a1", folder)

    def uid_map(self, folder: str = "INBOX") -> dict[tuple[int, int], UidEntry]:
        return self.checkpoints.all_uid_entries("c1", "a1", folder_id(folder))
