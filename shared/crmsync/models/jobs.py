"""Jobs carried by the queues. Each has an id so a redelivery can be recognised."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel


class SyncAccount(BaseModel):
    """Sync one mail account now. Sent to the FIFO sync queue, grouped by account."""

    kind: Literal["sync_account"] = "sync_account"
    job_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    reason: Literal["schedule", "manual", "continue", "actions"] = "schedule"
    enqueued_at: datetime


class MailboxActionsJob(BaseModel):
    """Apply the account's pending mailbox actions now (SPEC S9). Same queue and group as
    the account's syncs, so an action and a sync of one account never run at once."""

    kind: Literal["mailbox_actions"] = "mailbox_actions"
    job_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    enqueued_at: datetime


SyncQueueJob = Annotated[SyncAccount | MailboxActionsJob, Field(discriminator="kind")]
"""What the sync queue carries."""


class SyncQueueMessage(RootModel[SyncQueueJob]):
    """A sync queue message body, parsed by its `kind`."""
