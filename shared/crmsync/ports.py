"""The interfaces the domain depends on. Adapters live in store/ and messaging/."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field

from crmsync.models.accounts import MailAccount
from crmsync.models.actions import MailboxAction
from crmsync.models.calendar import (
    CalendarAccount,
    CalendarInfo,
    CalendarSyncJob,
    CollectionChanges,
    RemoteEvent,
    WriteOutcome,
)
from crmsync.models.deals import Deal
from crmsync.models.events import DomainEvent
from crmsync.models.jobs import SyncQueueJob
from crmsync.models.mail import (
    BlockedAddress,
    FolderCheckpoint,
    ProcessMessage,
    RelinkThreads,
    StoredMessage,
    Thread,
    UidEntry,
)
from crmsync.models.outbox import OutboxEntry, OutboxPayload, SendMessageJob
from crmsync.models.pages import Page
from crmsync.models.parsed import Attachment
from crmsync.models.retention import PurgeReason, PurgeRecord
from crmsync.models.servers import ConnectionProblem
from crmsync.models.sync import SyncRun
from crmsync.models.templates import (
    DefaultChange,
    Signature,
    SignatureSet,
    Template,
    TemplateOrder,
    TemplateSummary,
)
from crmsync.models.threads import LinkRecord, SubjectThread

if TYPE_CHECKING:
    from crmsync.mail.connect import SmtpEnvelope, SmtpOutcome
    from crmsync.models.imap import ImapSession
    from crmsync.models.inbox import InboxQuery


class DueAccount(BaseModel):
    """An account whose next poll time has come, as the PollDue index returns it."""

    account_id: str
    company_id: str
    next_poll_at: str


class FolderInfo(BaseModel):
    """A mailbox folder as the server lists it; `special_use` like "\\Sent" (RFC 6154)."""

    name: str
    delimiter: str | None = None
    flags: list[str] = Field(default_factory=list)
    special_use: str | None = None


class MailboxCheck(Protocol):
    def verify(self, account: MailAccount, password: str) -> list[FolderInfo]:
        """Log in for real (IMAP, and SMTP when configured) and list the folders.

        Raises MailServerError with the problem in the user's words.
        """
        ...


class AccountHealth(Protocol):
    """How the sync reads credentials and reports the account's health."""

    def password_for_sync(self, account: MailAccount) -> str: ...

    def record_success(self, account: MailAccount) -> MailAccount: ...

    def record_failure(self, account: MailAccount, problem: ConnectionProblem) -> MailAccount: ...


class SecretBox(Protocol):
    """Seals a password for storage; only the worker that logs in opens it."""

    def seal(self, password: str, context: dict[str, str]) -> dict[str, Any]: ...

    def open(self, sealed: dict[str, Any], context: dict[str, str]) -> str: ...


class AccountRepository(Protocol):
    def get(self, company_id: str, account_id: str) -> MailAccount | None: ...

    def put(self, account: MailAccount, shard_count: int) -> None: ...

    def create(
        self, account: MailAccount, shard_count: int, credentials: dict[str, Any] | None
    ) -> None: ...

    def save(self, account: MailAccount, shard_count: int, expected_version: int) -> bool: ...

    def save_credentials(
        self, company_id: str, account_id: str, sealed: dict[str, Any]
    ) -> None: ...

    def load_credentials(self, company_id: str, account_id: str) -> dict[str, Any] | None: ...

    def list_for_user(self, company_id: str, user_id: str) -> list[MailAccount]: ...

    def list_for_company(self, company_id: str) -> list[MailAccount]: ...

    def delete(
        self, company_id: str, account_id: str, shard_count: int, removed_at: datetime
    ) -> int:
        """Remove the account and its sync state; its synced data waits for the retention
        sweep, which starts counting at `removed_at`."""
        ...

    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]: ...

    def claim_poll(self, due: DueAccount, lease_until: datetime) -> bool:
        """Move next_poll_at forward iff it still holds the value we saw (one claimant wins)."""
        ...

    def finish_poll(
        self, company_id: str, account_id: str, synced_at: datetime, next_poll_at: datetime
    ) -> None: ...


class SyncRunRepository(Protocol):
    def record(self, company_id: str, run: SyncRun) -> bool:
        """Store a run once; False when this run id was already recorded (a redelivery)."""
        ...

    def list(
        self, company_id: str, account_id: str, limit: int, cursor: str | None
    ) -> Page[SyncRun]: ...


class PurgeDue(BaseModel):
    """An account whose synced data is due for the retention sweep, as PollDue returns it.

    `since` is the index's sort key as seen: a purge only releases the keys it saw."""

    company_id: str
    account_id: str
    reason: PurgeReason
    since: str


class RetentionRepository(Protocol):
    def due(self, shard: int, inactive_before: datetime) -> Iterator[PurgeDue]:
        """Accounts inactive (or removed) since before `inactive_before`; one Query a page."""
        ...

    def still_due(self, due: PurgeDue) -> bool:
        """Re-read consistently: False when the account was resumed or changed meanwhile."""
        ...

    def purge(self, company_id: str, account_id: str) -> dict[str, int]:
        """Delete the account's synced data; how many items of each kind went."""
        ...

    def record(self, record: PurgeRecord) -> None: ...

    def release(self, due: PurgeDue, purged_at: datetime) -> bool:
        """Take the account out of the retention shards iff the keys are still the ones
        seen, so its data is not purged twice; False when they changed meanwhile."""
        ...


class QueuedSync(BaseModel):
    """A sync job with the FIFO deduplication id it is sent under."""

    job: SyncQueueJob
    deduplication_id: str


class JobQueue(Protocol):
    def send_syncs(self, jobs: Sequence[QueuedSync]) -> None:
        """Send every job or raise; SQS dedup makes a repeated send of a job harmless."""
        ...


class MailboxActionStore(Protocol):
    """Pending mailbox actions of an account (SPEC S9), oldest first."""

    def add(self, action: MailboxAction) -> None: ...

    def pending(self, company_id: str, account_id: str) -> list[MailboxAction]: ...

    def done(self, action: MailboxAction) -> None: ...


class OutboxStore(Protocol):
    """Outbox entries (SPEC I2, I5): created once, then saved under their version."""

    def get(self, company_id: str, outbox_id: str) -> OutboxEntry | None: ...

    def create(self, entry: OutboxEntry) -> bool: ...

    def save(self, entry: OutboxEntry, seen_version: int) -> bool: ...

    def due(self, shard: int, now: datetime) -> Iterator[tuple[str, str]]: ...


class OutboxPayloads(Protocol):
    def put(self, key: str, payload: OutboxPayload) -> None: ...

    def get(self, key: str) -> OutboxPayload: ...


class SendQueue(Protocol):
    def send(self, jobs: Sequence[SendMessageJob]) -> None: ...


# -- calendar sync (SPEC C1-C7) ----------------------------------------------------------------


class CalendarServer(Protocol):
    """One logged-in CalDAV connection. Every failure raises MailServerError whose problem
    is in the user's words: `auth_failed` (401), `permission_denied` (403),
    `calendar_missing` (the calendar is gone), `connection_refused`/`timeout`/`tls_failed`/
    `server_error` (also a hang-up), `host_not_allowed`, `not_caldav`."""

    @property
    def requests_sent(self) -> int: ...

    def calendars(self) -> list[CalendarInfo]:
        """The calendars of the principal's calendar-home-set (name, colour, writable)."""
        ...

    def changes(self, calendar_url: str, sync_token: str | None) -> CollectionChanges:
        """One sync-collection REPORT (RFC 6578) from `sync_token` (None: everything), or,
        on a server without it, one listing of every event's href and ETag."""
        ...

    def get(self, calendar_url: str, href: str) -> RemoteEvent | None: ...

    def find_uid(self, calendar_url: str, uid: str) -> RemoteEvent | None:
        """The event with this UID (a calendar-query REPORT), or None."""
        ...

    def put(
        self, calendar_url: str, href: str, ics: str, etag: str | None
    ) -> tuple[WriteOutcome, str | None]:
        """Create (`etag` None: `If-None-Match: *`) or update (`If-Match: etag`); the
        outcome and the new ETag. `exists`/`precondition_failed` when the condition fails."""
        ...

    def delete(self, calendar_url: str, href: str, etag: str | None) -> WriteOutcome:
        """`deleted`, `gone` (404: nothing to delete) or `precondition_failed` (`If-Match`)."""
        ...


class CalendarConnector(Protocol):
    def open(
        self, url: str, username: str, password: str
    ) -> AbstractContextManager[CalendarServer]:
        """Discover (`/.well-known/caldav`, current-user-principal, calendar-home-set) and
        log in; MailServerError in the user's words."""
        ...


class CalendarAccountRepository(Protocol):
    """Calendar accounts (store/calendar_accounts.py). `save` is versioned; the PollDue keys
    (`CAL#NN`) are written only while the account polls and has a calendar chosen."""

    def get(self, company_id: str, account_id: str) -> CalendarAccount | None: ...

    def create(self, account: CalendarAccount, credentials: dict[str, Any]) -> None: ...

    def save(self, account: CalendarAccount, expected_version: int) -> bool:
        """Replace iff the stored version is `expected_version` (stored as +1)."""
        ...

    def save_credentials(
        self, company_id: str, account_id: str, sealed: dict[str, Any]
    ) -> None: ...

    def load_credentials(self, company_id: str, account_id: str) -> dict[str, Any] | None: ...

    def list_for_user(self, company_id: str, user_id: str) -> list[CalendarAccount]: ...

    def list_for_company(self, company_id: str) -> list[CalendarAccount]: ...

    def delete(self, company_id: str, account_id: str) -> int: ...

    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]: ...

    def claim(self, due: DueAccount, lease_until: datetime) -> bool:
        """Move next_poll_at to the lease iff it still holds the value seen."""
        ...


class CalendarSyncQueue(Protocol):
    def send(self, jobs: Sequence[CalendarSyncJob]) -> None:
        """FIFO, one group per account; the job id deduplicates a repeated send."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> None: ...


# -- mail sync and processing (SPEC S1-S8, L1, L2) ----------------------------------------


class MailSubmission(Protocol):
    def send_mail(self, account: MailAccount, password: str, envelope: SmtpEnvelope) -> SmtpOutcome:
        """One SMTP transaction; the server's refusals in the outcome or SmtpRefusedError,
        connection and login failures as MailServerError."""
        ...


class ImapSessions(Protocol):
    def open_session(
        self, account: MailAccount, password: str
    ) -> AbstractContextManager[ImapSession]:
        """A logged-in session; raises MailServerError in the user's words."""
        ...


class CheckpointStore(Protocol):
    """Folder checkpoints and the UID maps of the synced folders of one account."""

    def checkpoints(self, company_id: str, account_id: str) -> dict[str, FolderCheckpoint]:
        """The account's checkpoints by folder name (one Query)."""
        ...

    def save_checkpoint(
        self, company_id: str, account_id: str, checkpoint: FolderCheckpoint
    ) -> FolderCheckpoint:
        """Write iff the stored version is still `checkpoint.version`; returns it bumped.

        Raises CheckpointConflict when another writer got there first."""
        ...

    def uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        uids: Sequence[int] | None = None,
    ) -> dict[int, UidEntry]:
        """The map entries for these UIDs (all of the folder's when None)."""
        ...

    def put_uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        entries: Sequence[UidEntry],
    ) -> None: ...

    def delete_uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        uids: Sequence[int],
    ) -> None: ...


class CheckpointConflict(RuntimeError):
    """Another worker saved the folder checkpoint first (should not happen: FIFO groups)."""


class RawMailStore(Protocol):
    def put_raw(self, company_id: str, account_id: str, raw: bytes) -> tuple[str, str]:
        """Store raw MIME under its content hash; returns (key, sha256). Idempotent."""
        ...

    def get_raw(self, key: str) -> bytes: ...

    def put_parsed(self, company_id: str, account_id: str, message_key: str, body: bytes) -> str:
        """Store the parsed bodies (JSON) of a message; returns the key."""
        ...

    def get_parsed(self, key: str) -> bytes: ...

    def attachment_url(
        self,
        company_id: str,
        account_id: str,
        message_key: str,
        raw_key: str,
        attachment: Attachment,
    ) -> str:
        """A short-lived download link to the attachment; its bytes are cut from the raw
        MIME at `raw_key` and stored once. LookupError when the message has no such part."""
        ...


class ProcessQueue(Protocol):
    def send_messages(self, jobs: Sequence[ProcessMessage]) -> None:
        """FIFO, grouped by message key: the changes of one message apply in order."""
        ...

    def send_relinks(self, jobs: Sequence[RelinkThreads]) -> None: ...


class AddressOwner(BaseModel):
    """Who in the CRM has an address: persons (contacts) and whether a company user does."""

    person_ids: list[str] = Field(default_factory=list)
    user: bool = False


class ContactDirectory(Protocol):
    def address_owners(self, company_id: str, addresses: Sequence[str]) -> dict[str, AddressOwner]:
        """Owners of each normalised address that has any (one Query per address)."""
        ...

    def open_deals(self, company_id: str, person_ids: Sequence[str]) -> list[Deal]:
        """The open deals of these persons."""
        ...


class BlockedAddressStore(Protocol):
    def blocked_among(self, company_id: str, user_id: str, addresses: Sequence[str]) -> set[str]:
        """Which of these addresses the user blocked, exactly or by their domain."""
        ...

    def list(self, company_id: str, user_id: str) -> list[BlockedAddress]: ...

    def add(self, company_id: str, user_id: str, entry: BlockedAddress) -> bool:
        """False when it was blocked already."""
        ...

    def remove(self, company_id: str, user_id: str, address: str) -> bool: ...


class ThreadStore(Protocol):
    def find_message(self, company_id: str, message_key: str) -> StoredMessage | None: ...

    def message_thread(self, company_id: str, message_key: str) -> str | None: ...

    def insert_message(self, message: StoredMessage) -> bool: ...

    def update_message(self, message: StoredMessage) -> None: ...

    def delete_message(self, message: StoredMessage) -> None: ...

    def threads_of_message_ids(
        self, company_id: str, account_id: str, message_ids: Sequence[str]
    ) -> dict[str, str]: ...

    def claim_message_ids(
        self, company_id: str, account_id: str, message_ids: Sequence[str], thread_id: str
    ) -> None: ...

    def subject_threads(
        self, company_id: str, account_id: str, thread_subject: str
    ) -> list[SubjectThread]: ...

    def remember_subject(self, company_id: str, account_id: str, entry: SubjectThread) -> None: ...

    def index_participants(
        self, company_id: str, thread: Thread, addresses: Sequence[str]
    ) -> None: ...

    def threads_with_participant(self, company_id: str, address: str) -> list[tuple[str, str]]: ...

    def threads_linked_to(
        self, company_id: str, link_type: str, target_id: str
    ) -> list[tuple[str, str]]: ...

    def thread(self, company_id: str, thread_id: str) -> Thread | None: ...

    def threads(self, company_id: str, thread_ids: Sequence[str]) -> dict[str, Thread]: ...

    def thread_messages(self, company_id: str, thread_id: str) -> list[StoredMessage]: ...

    def thread_links(self, company_id: str, thread_id: str) -> list[LinkRecord]: ...

    def save_thread(
        self,
        thread: Thread,
        previous: Thread | None,
        links: Sequence[LinkRecord],
        dropped: Sequence[LinkRecord],
    ) -> bool:
        """Write the thread iff the stored one is still `previous` (None: not stored yet),
        with its links and its inbox entries and counts, diffed against `previous`; False
        when another writer got there first."""
        ...

    def delete_thread(self, thread: Thread, links: Sequence[LinkRecord]) -> bool:
        """Delete the thread iff still at its version, with its links, entries and counts."""
        ...

    def linked_threads(
        self, company_id: str, link_type: str, target_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...


class InboxIndex(Protocol):
    def entries(
        self,
        company_id: str,
        user_id: str,
        query: InboxQuery,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[tuple[str, str]], str | None]:
        """Up to `limit` matching entries, newest first, as (thread id, sort key), and the
        cursor of the next page (None at the end)."""
        ...

    def counters(self, company_id: str, user_id: str) -> dict[str, dict[str, int]]:
        """The user's counters by account id (one Query)."""
        ...


# -- templates and signatures (SPEC I4) ------------------------------------------------------


class TemplateStore(Protocol):
    def get(self, company_id: str, template_id: str) -> Template | None: ...

    def create(self, company_id: str, template: Template) -> None:
        """ConflictError when the id is taken."""
        ...

    def replace(self, company_id: str, seen: Template, template: Template) -> None:
        """ConflictError when the stored version is no longer `seen.version`."""
        ...

    def delete(self, company_id: str, seen: Template) -> None: ...

    def list(
        self,
        company_id: str,
        order: TemplateOrder,
        limit: int,
        cursor: str | None,
        accept: Callable[[TemplateSummary], bool],
    ) -> Page[TemplateSummary]: ...


class SignatureStore(Protocol):
    """A user's signatures; each write carries the default pointer's change, if any, and
    raises ConflictError when the signature or the pointer changed since read."""

    def signatures(self, company_id: str, user_id: str) -> SignatureSet: ...

    def create(
        self, company_id: str, user_id: str, signature: Signature, default: DefaultChange | None
    ) -> None: ...

    def replace(
        self,
        company_id: str,
        user_id: str,
        seen: Signature,
        signature: Signature,
        default: DefaultChange | None,
    ) -> None: ...

    def delete(
        self, company_id: str, user_id: str, seen: Signature, default: DefaultChange | None
    ) -> None: ...
