"""The interfaces the domain depends on. Adapters live in store/ and messaging/."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from crmsync.models.accounts import MailAccount
from crmsync.models.events import DomainEvent
from crmsync.models.jobs import SyncAccount
from crmsync.models.pages import Page
from crmsync.models.sync import SyncRun


class DueAccount(BaseModel):
    """An account whose next poll time has come, as the PollDue index returns it."""

    account_id: str
    company_id: str
    next_poll_at: str


class AccountRepository(Protocol):
    def get(self, company_id: str, account_id: str) -> MailAccount | None: ...

    def put(self, account: MailAccount, shard_count: int) -> None: ...

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
