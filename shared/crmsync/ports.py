"""The interfaces the domain depends on. Adapters live in store/ and messaging/."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from crmsync.models.accounts import MailAccount
from crmsync.models.events import DomainEvent
from crmsync.models.jobs import SyncAccount
from crmsync.models.pages import Page
from crmsync.models.retention import PurgeReason, PurgeRecord
from crmsync.models.servers import ConnectionProblem
from crmsync.models.sync import SyncRun


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


class PollReport(BaseModel):
    """What one look at the mailbox found (the fetch itself comes with the sync feature)."""

    folders_checked: int
    messages_on_server: int = 0


class MailboxPoller(Protocol):
    def poll(self, account: MailAccount, password: str) -> PollReport:
        """One login, then one STATUS per synced folder. Raises MailServerError."""
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

    job: SyncAccount
    deduplication_id: str


class JobQueue(Protocol):
    def send_syncs(self, jobs: Sequence[QueuedSync]) -> None:
        """Send every job or raise; SQS dedup makes a repeated send of a job harmless."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> None: ...
